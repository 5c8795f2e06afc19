package radix

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

const benchN = 1 << 20

func benchKeys(mask int64) []int64 {
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]int64, benchN)
	for i := range keys {
		keys[i] = int64(r.Uint64()) & mask
	}
	return keys
}

// BenchmarkSort compares Sort with slices.Sort / slices.SortFunc on 1 Mi random words, all 8
// bytes significant and only the low 3 bytes (partition-id-like keys, 3 passes).
func BenchmarkSort(b *testing.B) {
	for _, c := range []struct {
		name string
		mask int64
	}{{"8bytes", -1}, {"3bytes", 0xffffff}} {
		keys := benchKeys(c.mask)
		buf := make([]int64, 2*benchN)
		b.Run(c.name+"/radix", func(b *testing.B) {
			b.SetBytes(8 * benchN)
			for b.Loop() {
				copy(buf, keys)
				Sort(buf, benchN, 0, 7, false, true)
			}
		})
		b.Run(c.name+"/slices.SortFunc", func(b *testing.B) {
			b.SetBytes(8 * benchN)
			for b.Loop() {
				copy(buf, keys)
				slices.SortFunc(buf[:benchN], cmp.Compare[int64])
			}
		})
	}
}

// BenchmarkSortKeyPrefixArray compares SortKeyPrefixArray with slices.SortStableFunc and
// slices.SortFunc over (pointer, prefix) pairs.
func BenchmarkSortKeyPrefixArray(b *testing.B) {
	keys := benchKeys(-1)
	type pair struct{ ptr, prefix int64 }
	pairs := make([]pair, benchN)
	buf := make([]int64, 4*benchN)
	b.Run("radix", func(b *testing.B) {
		b.SetBytes(16 * benchN)
		for b.Loop() {
			for i, k := range keys {
				buf[2*i], buf[2*i+1] = int64(i), k
			}
			SortKeyPrefixArray(buf, 0, benchN, 0, 7, false, true)
		}
	})
	b.Run("in-place", func(b *testing.B) {
		b.SetBytes(16 * benchN)
		for b.Loop() {
			for i, k := range keys {
				buf[2*i], buf[2*i+1] = int64(i), k
			}
			SortKeyPrefixInPlace(buf, benchN)
		}
	})
	b.Run("slices.SortFunc", func(b *testing.B) {
		b.SetBytes(16 * benchN)
		for b.Loop() {
			for i, k := range keys {
				pairs[i] = pair{int64(i), k}
			}
			slices.SortFunc(pairs, func(x, y pair) int { return cmp.Compare(x.prefix, y.prefix) })
		}
	})
	b.Run("slices.SortStableFunc", func(b *testing.B) {
		b.SetBytes(16 * benchN)
		for b.Loop() {
			for i, k := range keys {
				pairs[i] = pair{int64(i), k}
			}
			slices.SortStableFunc(pairs, func(x, y pair) int { return cmp.Compare(x.prefix, y.prefix) })
		}
	})
}

// BenchmarkSortKeyPrefixWithin sorts 1 Mi pairs whose prefixes vary in their low 20 bits (a
// million keys) with no scratch, with half the array's length, and with all of it.
func BenchmarkSortKeyPrefixWithin(b *testing.B) {
	keys := benchKeys(1<<20 - 1)
	buf := make([]int64, 4*benchN)
	for _, spare := range []int{0, benchN, 2 * benchN} {
		b.Run(fmt.Sprintf("spare=%d", spare), func(b *testing.B) {
			b.SetBytes(16 * benchN)
			for b.Loop() {
				for i, k := range keys {
					buf[2*i], buf[2*i+1] = int64(i), k
				}
				SortKeyPrefixWithin(buf[:2*benchN+spare], benchN)
			}
		})
	}
}
