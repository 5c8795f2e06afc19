package collection

import (
	"cmp"
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzAppendOnlyMap runs operations decoded from the fuzz input against an AppendOnlyMap and a
// built-in map and checks they agree after every step and at the end, through one of the
// destructive iterators.
//
// Input layout: byte 0 picks the hasher (seeded, constant, or 4 values — forced collisions),
// byte 1 the initial capacity (1..256), byte 2 the final iterator; then 3 bytes per operation:
// kind, key, value.
func FuzzAppendOnlyMap(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 2, 1, 1, 3, 2, 1, 0})
	f.Add([]byte{1, 3, 1, 0, 9, 9, 1, 9, 1, 0, 10, 10, 1, 10, 5, 2, 9, 0, 3, 0, 0})
	f.Add([]byte{2, 255, 2, 1, 200, 7, 1, 201, 8, 0, 202, 9, 4, 0, 0, 2, 201, 0})
	seq := []byte{0, 0, 1}
	for i := range 120 {
		seq = append(seq, byte(i%3), byte(i*7), byte(i))
	}
	f.Add(seq)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 3 {
			return
		}
		var h Hasher[uint16]
		switch in[0] % 3 {
		case 0:
			h = NewHasher[uint16]()
		case 1:
			h = HasherFunc(func(uint16) uint64 { return 7 })
		case 2:
			h = HasherFunc(func(k uint16) uint64 { return uint64(k % 4) })
		}
		m := NewAppendOnlyMapWithHasher[uint16, uint32](int(in[1])+1, h)
		final := in[2] % 3
		model := map[uint16]uint32{}
		ops := in[3:]
		for len(ops) >= 3 {
			kind, k, v := ops[0]%5, uint16(ops[1])|uint16(ops[0]&0xE0)<<3, uint32(ops[2])
			ops = ops[3:]
			switch kind {
			case 0:
				require.NoError(t, m.Update(k, v))
				model[k] = v
			case 1:
				old, had := model[k]
				got, err := m.ChangeValue(k, func(mhad bool, mold uint32) uint32 {
					require.Equal(t, had, mhad)
					require.Equal(t, old, mold)
					return mold*31 + v
				})
				require.NoError(t, err)
				model[k] = old*31 + v
				require.Equal(t, model[k], got)
			case 2:
				got, ok := m.Get(k)
				want, had := model[k]
				require.Equal(t, had, ok)
				require.Equal(t, want, got)
			case 3:
				require.Equal(t, model, maps.Collect(m.All()))
			case 4:
				require.Equal(t, len(model), m.Len())
				require.LessOrEqual(t, m.Len(), int(loadFactor*float64(m.Capacity())))
			}
		}
		require.Equal(t, len(model), m.Len())
		var it Iterator[Pair[uint16, uint32]]
		switch final {
		case 0:
			it = m.DestructiveIterator()
		case 1:
			it = m.DestructiveSortedIterator(cmp.Compare[uint16])
		case 2:
			it = m.DestructiveSortedByHash()
		}
		pairs, err := Collect(it)
		require.NoError(t, err)
		got := map[uint16]uint32{}
		for _, p := range pairs {
			got[p.Key] = p.Value
		}
		require.Len(t, pairs, len(model), "no key twice")
		require.Equal(t, model, got)
		switch final {
		case 1:
			require.True(t, slices.IsSortedFunc(pairs, func(a, b Pair[uint16, uint32]) int { return cmp.Compare(a.Key, b.Key) }))
		case 2:
			require.True(t, slices.IsSortedFunc(pairs, func(a, b Pair[uint16, uint32]) int {
				return cmp.Compare(h.Hash(a.Key), h.Hash(b.Key))
			}))
		}
	})
}
