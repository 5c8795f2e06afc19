package tungsten

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// sortInPlace orders a map's records as bytes.Compare orders their keys, for keys sharing long
// starts and differing in trailing zero bytes or length only (sortByKey's level by level radix
// sort, and its end by length).
func TestSortByKey(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 4))
	for _, mode := range modes {
		tm, scope := newTask(t, mode, 64*mib, mib), newScope(t)
		m, err := NewBytesToBytesMap(ctx, tm, scope, MapConfig{})
		require.NoError(t, err)
		alphabet := []byte{0, 1, 'a'}
		want := 0
		for range 5000 {
			k := []byte("user-1000")[:r.IntN(10)]
			for range r.IntN(20) {
				k = append(k, alphabet[r.IntN(len(alphabet))])
			}
			if loc := m.Lookup(k); !loc.IsDefined() {
				ok, err := loc.Append(ctx, k, int4(len(k)))
				require.NoError(t, err)
				require.True(t, ok)
				want++
			}
		}
		ps, err := m.sortInPlace(ctx, false)
		require.NoError(t, err)
		require.Len(t, ps, want)
		for i := 1; i < len(ps); i++ {
			prev, cur := m.mapKey(ps[i-1].addr), m.mapKey(ps[i].addr)
			require.Negative(t, bytes.Compare(prev, cur), "keys %q and %q out of order at %d", prev, cur, i)
			require.Equal(t, BytesPrefix(cur), ps[i].prefix, "prefix of %q", cur)
		}
		m.reset(true)
		require.NoError(t, m.Close())
	}
}
