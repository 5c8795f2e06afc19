package spillbeam

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// randomValues returns n values whose keys are drawn from distinct keys (so some repeat) and
// whose values are unique strings of about size bytes.
func randomValues(seed uint64, n, distinct, size int) []KV[string, string] {
	r := rand.New(rand.NewPCG(seed, 42))
	pad := strings.Repeat("x", max(size-16, 0))
	out := make([]KV[string, string], n)
	for i := range out {
		out[i] = KV[string, string]{
			Key:   fmt.Sprintf("k%06d", r.IntN(distinct)),
			Value: fmt.Sprintf("%08d%s", i, pad),
		}
	}
	return out
}

// valuesIter returns a GroupByKey-style iterator over values.
func valuesIter[K2, V any](values []KV[K2, V]) func(*KV[K2, V]) bool {
	i := 0
	return func(kv *KV[K2, V]) bool {
		if i == len(values) {
			return false
		}
		*kv = values[i]
		i++
		return true
	}
}

// collect returns a SortGroup callback appending to *out.
func collect[K2, V any](out *[]KV[K2, V]) func(K2, V) error {
	return func(k K2, v V) error {
		*out = append(*out, KV[K2, V]{k, v})
		return nil
	}
}

// referenceSort is the in-memory reference for string keys: sorted by key bytes, and, since
// values of equal keys come in no particular order, by value among equal keys.
func referenceSort(values []KV[string, string]) []KV[string, string] {
	out := slices.Clone(values)
	slices.SortFunc(out, compareKV)
	return out
}

func compareKV(a, b KV[string, string]) int {
	return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.Value, b.Value))
}

// normalize sorts the runs of equal keys of a sorted output by value, for comparing with
// referenceSort; it reports whether the keys were in order.
func normalize(got []KV[string, string]) bool {
	if !slices.IsSortedFunc(got, func(a, b KV[string, string]) int { return strings.Compare(a.Key, b.Key) }) {
		return false
	}
	slices.SortStableFunc(got, compareKV)
	return true
}
