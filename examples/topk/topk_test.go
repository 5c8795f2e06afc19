package topk

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPushKeepsTheBestK(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	desc := func(a, b int) int { return cmp.Compare(b, a) }
	for _, k := range []int{1, 3, 10, 100} {
		var top, all []int
		for range 500 {
			v := rng.IntN(50)
			all = append(all, v)
			top = Push(top, v, k, desc)
		}
		slices.SortStableFunc(all, desc)
		require.Equal(t, all[:k], top, "k=%d", k)
	}
	require.Empty(t, Push[int](nil, 1, 0, desc), "k=0 keeps nothing")
}
