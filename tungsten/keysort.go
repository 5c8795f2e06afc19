package tungsten

import (
	"encoding/binary"
	"math/bits"
	"slices"

	"github.com/spillway/spillway/internal/radix"
	"github.com/spillway/spillway/memory"
)

// sortByKey sorts (address, prefix) pairs of map records (addresses of their total-length word)
// by key, every key sharing its first from bytes and the prefixes being the keys' 8 bytes from
// there on (BytesPrefix(key[from:])): a radix sort of the prefixes, then, within each run of
// equal prefixes, a radix sort of the keys' next 8 bytes, and so on (a multikey radix sort, 8
// bytes a level). Keys sharing a long start (such as "user-1000…") then cost one record load per
// key and level, where a comparison sort loads two records per comparison; a start that every key
// shares costs none when from skips it. Not stable; the prefixes are left in an order-preserving
// form (radix.SortKeyPrefixDense): equal where they were equal.
func (b *base) sortByKey(a []int64, from int) {
	radix.SortKeyPrefixDense(a)
	b.refineTies(a, from+8)
}

// refineTies sorts, within every run of a (sorted by a prefix of the keys' bytes up to from), the
// keys by their bytes from from on, restoring the run's prefix afterwards.
func (b *base) refineTies(a []int64, from int) {
	n := len(a) / 2
	for i := 0; i < n; {
		j := i + 1
		for j < n && a[2*j+1] == a[2*i+1] {
			j++
		}
		if j-i > 1 {
			b.sortRun(a[2*i:2*j], from)
		}
		i = j
	}
}

// sortRun sorts a run of keys equal in their first from bytes (zero-padded).
func (b *base) sortRun(run []int64, from int) {
	shared := run[1]
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
		radix.SortKeyPrefixDense(run)
		b.refineTies(run, from+8)
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

// commonPrefixLen is the length of the longest common start of a and b.
func commonPrefixLen(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for ; i < n && a[i] == b[i]; i++ {
	}
	return i
}
