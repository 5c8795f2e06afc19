package estimator

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSortByStart compares sortByStart with slices.SortFunc on random, sorted, reversed and
// heavily repeated addresses of every length up to 300 (the sort is not stable, so only the
// order of starts is compared, and that the same objects are there).
func TestSortByStart(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	byStart := func(x, y object) int {
		return cmp.Or(cmp.Compare(x.start, y.start), cmp.Compare(x.size, y.size))
	}
	for n := range 300 {
		for _, order := range []string{"random", "sorted", "reversed", "repeated"} {
			objs := make([]object, n)
			for i := range objs {
				objs[i] = object{start: uintptr(rng.Uint64N(1 << 40)), size: int64(i)}
				switch order {
				case "sorted":
					objs[i].start = uintptr(i * 16)
				case "reversed":
					objs[i].start = uintptr((n - i) * 16)
				case "repeated":
					objs[i].start = uintptr(rng.IntN(3) * 16)
				}
			}
			want := slices.Clone(objs)
			slices.SortFunc(want, byStart)
			sortByStart(objs)
			require.True(t, slices.IsSortedFunc(objs, func(x, y object) int { return cmp.Compare(x.start, y.start) }),
				"%s n=%d not sorted", order, n)
			slices.SortFunc(objs, byStart)
			require.Equal(t, want, objs, "%s n=%d: objects changed", order, n)
		}
	}
}
