package radix

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// sortType mirrors the comparator table of Spark's RadixSortSuite
// (core/src/test/scala/org/apache/spark/util/collection/unsafe/sort/RadixSortSuite.scala).
type sortType struct {
	name                string
	startByte, endByte  int
	desc, signed        bool
	referenceComparator func(a, b int64) int
}

func unsigned(a, b int64) int { return cmp.Compare(uint64(a), uint64(b)) }
func signed(a, b int64) int   { return cmp.Compare(a, b) }
func reverse(f func(a, b int64) int) func(a, b int64) int {
	return func(a, b int64) int { return f(b, a) }
}

var sortTypes = []sortType{
	{"unsigned binary data asc", 0, 7, false, false, unsigned},
	{"unsigned binary data desc", 0, 7, true, false, reverse(unsigned)},
	{"twos complement asc", 0, 7, false, true, signed},
	{"twos complement desc", 0, 7, true, true, reverse(signed)},
	{"binary data partial", 2, 4, false, false, func(a, b int64) int {
		return unsigned(a&0xffffff0000, b&0xffffff0000)
	}},
}

const n = 10_000

func newRand(t *testing.T, seed uint64) *rand.Rand {
	t.Helper()
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// randomKeys returns n random words, each the AND of masks random words when masks > 0 (the
// fuzz tests' random bit masks, which leave some bytes constant and exercise byte skipping).
func randomKeys(r *rand.Rand, masks int) []int64 {
	keys := make([]int64, n)
	for i := range keys {
		keys[i] = int64(r.Uint64())
	}
	for range masks {
		m := int64(r.Uint64())
		for i := range keys {
			keys[i] &= m
		}
	}
	return keys
}

// checkSort is RS-02 / RS-04: Sort's result equals a sort by the reference comparator.
func checkSort(t *testing.T, st sortType, keys []int64) {
	t.Helper()
	buf := make([]int64, 2*len(keys))
	copy(buf, keys)
	start := Sort(buf, len(keys), st.startByte, st.endByte, st.desc, st.signed)
	want := slices.Clone(keys)
	slices.SortStableFunc(want, st.referenceComparator)
	got := buf[start : start+len(keys)]
	// Bytes outside the range do not take part in the order: compare by the reference
	// comparator, then as multisets.
	for i := range got {
		require.Zero(t, st.referenceComparator(got[i], want[i]), "%s: position %d", st.name, i)
	}
	slices.Sort(got)
	slices.Sort(want)
	require.Equal(t, want, got, st.name)
}

// checkSortKeyPrefix is RS-03 / RS-05: the (pointer, prefix) records after the sort equal a stable
// sort by prefix, pointers included.
func checkSortKeyPrefix(t *testing.T, st sortType, prefixes []int64) {
	t.Helper()
	type rec struct{ ptr, prefix int64 }
	recs := make([]rec, len(prefixes))
	buf := make([]int64, 4*len(prefixes))
	for i, p := range prefixes {
		recs[i] = rec{int64(i), p}
		buf[2*i], buf[2*i+1] = int64(i), p
	}
	start := SortKeyPrefixArray(buf, 0, len(prefixes), st.startByte, st.endByte, st.desc, st.signed)
	slices.SortStableFunc(recs, func(a, b rec) int { return st.referenceComparator(a.prefix, b.prefix) })
	want := make([]int64, 0, 2*len(recs))
	for _, r := range recs {
		want = append(want, r.ptr, r.prefix)
	}
	require.Equal(t, want, buf[start:start+2*len(prefixes)], st.name)
}

// RS-02 sort <type>.
func TestRS02Sort(t *testing.T) {
	for _, st := range sortTypes {
		t.Run(st.name, func(t *testing.T) {
			checkSort(t, st, randomKeys(newRand(t, 123), 0))
		})
	}
}

// RS-03 sort key prefix <type>: prefixes rand & 0xff, so many ties test stability.
func TestRS03SortKeyPrefix(t *testing.T) {
	for _, st := range sortTypes {
		t.Run(st.name, func(t *testing.T) {
			keys := randomKeys(newRand(t, 123), 0)
			for i := range keys {
				keys[i] &= 0xff
			}
			checkSortKeyPrefix(t, st, keys)
		})
	}
}

// RS-04 fuzz test <type> with random bitmasks.
func TestRS04FuzzWithRandomBitmasks(t *testing.T) {
	for _, st := range sortTypes {
		t.Run(st.name, func(t *testing.T) {
			for seed := range uint64(11) {
				r := newRand(t, seed)
				checkSort(t, st, randomKeys(r, 1+r.IntN(5)))
			}
		})
	}
}

// RS-05 fuzz test key prefix <type> with random bitmasks.
func TestRS05FuzzKeyPrefixWithRandomBitmasks(t *testing.T) {
	for _, st := range sortTypes {
		t.Run(st.name, func(t *testing.T) {
			for seed := range uint64(11) {
				r := newRand(t, seed)
				checkSortKeyPrefix(t, st, randomKeys(r, 1+r.IntN(5)))
			}
		})
	}
}

func TestEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		keys []int64
	}{
		{"empty", []int64{}},
		{"one", []int64{42}},
		{"all equal: no pass, data in place", []int64{7, 7, 7, 7}},
		{"extremes", []int64{-1, 0, 1, -1 << 63, 1<<63 - 1, 256, -256}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, st := range sortTypes {
				checkSort(t, st, tc.keys)
				checkSortKeyPrefix(t, st, tc.keys)
			}
		})
	}
	buf := []int64{7, 7, 7, 7, 0, 0, 0, 0}
	require.Zero(t, Sort(buf, 4, 0, 7, false, false), "no byte differs: no pass")
}

func TestKeyPrefixAtOffset(t *testing.T) {
	// Pairs start at 3 (as UnsafeInMemorySorter's non-null pairs start after the nulls).
	buf := []int64{-9, -9, -9, 100, 3, 101, 1, 102, 2, 0, 0, 0, 0, 0, 0}
	start := SortKeyPrefixArray(buf, 3, 3, 0, 7, false, false)
	require.Equal(t, []int64{101, 1, 102, 2, 100, 3}, buf[start:start+6])
	require.Equal(t, []int64{-9, -9, -9}, buf[:3], "words before start are untouched")
}

func TestMisusePanics(t *testing.T) {
	require.PanicsWithValue(t, "radix: byte range 3..2 (must satisfy 0 <= start <= end <= 7)", func() {
		Sort(make([]int64, 4), 2, 3, 2, false, false)
	})
	require.PanicsWithValue(t, "radix: byte range 0..8 (must satisfy 0 <= start <= end <= 7)", func() {
		Sort(make([]int64, 4), 2, 0, 8, false, false)
	})
	require.PanicsWithValue(t, "radix: Sort of 3 words needs an array of at least 6 words, got 5", func() {
		Sort(make([]int64, 5), 3, 0, 7, false, false)
	})
	require.PanicsWithValue(t, "radix: SortKeyPrefixArray of 2 records at 1 needs an array of at least 9 words, got 8", func() {
		SortKeyPrefixArray(make([]int64, 8), 1, 2, 0, 7, false, false)
	})
}

// SortKeyPrefixInPlace and SortKeyPrefixWithin, with no scratch, some (so that buckets below a
// size go through it) and enough for the whole array, order the pairs by prefix and keep each
// pointer with its prefix.
func TestSortKeyPrefixWithin(t *testing.T) {
	for seed := range uint64(11) {
		r := newRand(t, seed)
		keys := randomKeys(r, int(seed%4))
		switch {
		case seed == 10:
			keys = keys[:20] // insertion sort only
		case seed < 4: // buckets larger than minLSDRecords go through a spare of n/2 words
			for range 4 {
				keys = append(keys, randomKeys(r, int(seed%4))...)
			}
		}
		for _, spare := range []int{-1, 0, 3, len(keys) / 2, 2 * len(keys)} {
			buf := make([]int64, 2*len(keys)+max(spare, 3))
			for i, k := range keys {
				buf[2*i], buf[2*i+1] = int64(i), k
			}
			if spare < 0 {
				SortKeyPrefixInPlace(buf, len(keys))
			} else {
				SortKeyPrefixWithin(buf[:2*len(keys)+spare], len(keys))
			}
			got := pairsOf(buf[:2*len(keys)])
			require.True(t, slices.IsSortedFunc(got, func(a, b [2]int64) int { return unsigned(a[1], b[1]) }), "spare %d", spare)
			seen := make([]bool, len(keys))
			for _, p := range got {
				if keys[p[0]] != p[1] || seen[p[0]] {
					require.Failf(t, "records lost", "spare %d: record %d has prefix %#x (want %#x), or comes twice", spare, p[0], p[1], keys[p[0]])
				}
				seen[p[0]] = true
			}
			require.Len(t, got, len(keys))
		}
	}
}

func pairsOf(a []int64) [][2]int64 {
	var out [][2]int64
	for i := 0; i < len(a); i += 2 {
		out = append(out, [2]int64{a[i], a[i+1]})
	}
	return out
}
