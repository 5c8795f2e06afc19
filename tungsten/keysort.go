package tungsten

import (
	"slices"

	"github.com/spillway/spillway/internal/radix"
	"github.com/spillway/spillway/memory"
)

// sortByKey sorts (address, prefix) pairs of map records (addresses of their total-length word)
// by key, the prefixes being the keys' first 8 bytes: a radix sort of the prefixes, then, within
// each run of equal prefixes, a radix sort of the keys' next 8 bytes, and so on (a multikey radix
// sort, 8 bytes a level). Keys sharing a long start (such as "user-1000…") then cost one record
// load per key and level, where a comparison sort loads two records per comparison. Not stable;
// the prefixes are left as they were.
func (b *base) sortByKey(a []int64) {
	radix.SortKeyPrefixInPlace(a, len(a)/2)
	b.refineTies(a, 1)
}

// refineTies sorts, within every run of a (sorted by the prefix at level-1, bytes 8·(level−1)
// on), the keys by their bytes from 8·level on, restoring the run's prefix afterwards.
func (b *base) refineTies(a []int64, level int) {
	n := len(a) / 2
	for i := 0; i < n; {
		j := i + 1
		for j < n && a[2*j+1] == a[2*i+1] {
			j++
		}
		if j-i > 1 {
			b.sortRun(a[2*i:2*j], level)
		}
		i = j
	}
}

// sortRun sorts a run of keys equal in their first 8·level bytes (zero-padded).
func (b *base) sortRun(run []int64, level int) {
	shared, from := run[1], 8*level
	longer := false
	for i := 0; i < len(run); i += 2 {
		k := b.mapKey(run[i])
		if len(k) > from {
			longer = true
			run[i+1] = BytesPrefix(k[from:])
		} else {
			run[i+1] = 0
		}
	}
	if longer {
		radix.SortKeyPrefixInPlace(run, len(run)/2)
		b.refineTies(run, level+1)
	} else { // equal but for trailing zero bytes: by length
		ps := pairs(run)
		slices.SortFunc(ps, func(x, y pair) int { return len(b.mapKey(x.addr)) - len(b.mapKey(y.addr)) })
	}
	for i := 1; i < len(run); i += 2 {
		run[i] = shared
	}
}

// mapKey is the key of the map record whose total-length word is at addr.
func (b *base) mapKey(addr int64) []byte {
	data := b.table[memory.DecodePageNumber(addr)]
	off := memory.DecodeOffset(addr)
	klen := int64(order.Uint32(data[off+uao:]) &^ deadKey)
	return data[off+2*uao : off+2*uao+klen]
}
