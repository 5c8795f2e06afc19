package estimator

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestKeySetMatchesMap checks keySet against a Go map on random keys, some drawn from a small
// range so many are repeated, across growth and reset.
func TestKeySetMatchesMap(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	var s keySet
	for round, n := range []int{0, 1, 63, 64, 1000, 20_000} {
		s.reset()
		want := map[uint64]struct{}{}
		for range n {
			k := rng.Uint64N(uint64(2*n)) + 1
			if rng.IntN(4) == 0 {
				k = rng.Uint64() | 1 // an arbitrary key, as addresses are
			}
			_, had := want[k]
			want[k] = struct{}{}
			require.Equal(t, !had, s.add(k), "round %d: add(%d)", round, k)
			require.Equal(t, len(want), s.len())
		}
		for k := range want {
			require.False(t, s.add(k), "round %d: %d lost", round, k)
		}
		require.LessOrEqual(t, 2*s.len(), len(s.t.keys), "at most half full")
	}
}

// TestKeyTableMatchesMap checks keyTable's values against a Go map: insert keeps the first
// value stored under a key, get finds it, and absent keys are not found.
func TestKeyTableMatchesMap(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	var s keyTable[int32]
	for round, n := range []int{0, 1, 100, 5000} {
		s.reset()
		want := map[uint64]int32{}
		for i := range n {
			k := rng.Uint64N(uint64(2*n)) + 1
			first, had := want[k]
			if !had {
				want[k], first = int32(i), int32(i)
			}
			v, added := s.insert(k, int32(i))
			require.Equal(t, !had, added, "round %d: insert(%d)", round, k)
			require.Equal(t, first, v)
		}
		for k, v := range want {
			got, ok := s.get(k)
			require.True(t, ok, "round %d: %d lost", round, k)
			require.Equal(t, v, got)
		}
		_, ok := s.get(uint64(2*n) + 1)
		require.False(t, ok, "absent key")
	}
}
