package radix

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// SortKeyPrefixDense orders pairs by unsigned prefix, leaving in their place numbers equal where the
// prefixes were equal and ordered as they were, whichever bits the prefixes differ in.
func TestSortKeyPrefixDense(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 5))
	digits := func() uint64 { // 8 ASCII digits
		var p uint64
		for range 8 {
			p = p<<8 | uint64('0'+r.IntN(10))
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		n      int
		prefix func() uint64
	}{
		{"empty", 0, r.Uint64},
		{"one", 1, r.Uint64},
		{"few random", 31, r.Uint64},
		{"random", 10_000, r.Uint64},
		{"random, many equal", 10_000, func() uint64 { return r.Uint64N(50) << 40 }},
		{"all equal", 10_000, func() uint64 { return 0x7573_6572_2d31_3030 }},
		{"digits", 100_000, digits},
		{"digits and a top bit", 100_000, func() uint64 { return digits() | uint64(r.IntN(2))<<63 }},
		{"two values", 10_000, func() uint64 { return uint64(r.IntN(2)) * 0x8000_0000_0000_0001 }},
		{"small", 3000, func() uint64 { return r.Uint64N(1000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := make([]int64, 2*tc.n)
			for i := range tc.n {
				a[2*i], a[2*i+1] = int64(i), int64(tc.prefix())
			}
			orig := slices.Clone(a)
			SortKeyPrefixDense(a)
			seen := make([]bool, tc.n)
			for i := range tc.n {
				addr := a[2*i]
				if seen[addr] {
					require.Failf(t, "record twice", "address %d twice", addr)
				}
				seen[addr] = true
				if i == 0 {
					continue
				}
				prevAddr := a[2*i-2]
				was, is := uint64(orig[2*prevAddr+1]), uint64(orig[2*addr+1])
				if was > is || (was == is) != (a[2*i-1] == a[2*i+1]) || (was < is) != (uint64(a[2*i-1]) < uint64(a[2*i+1])) {
					require.Failf(t, "order lost", "at %d: prefixes %#x, %#x have dense forms %#x, %#x: want the prefixes ordered, and the "+
						"dense forms equal and ordered as they are", i, was, is, a[2*i-1], a[2*i+1])
				}
			}
		})
	}
}

func TestExtract8(t *testing.T) {
	for mask := range 256 {
		for v := range 256 {
			var want, bit uint8
			for i := range 8 {
				if mask>>i&1 == 1 {
					want |= uint8(v>>i&1) << bit
					bit++
				}
			}
			require.Equal(t, want, extract8(uint8(v), uint8(mask)))
		}
	}
}
