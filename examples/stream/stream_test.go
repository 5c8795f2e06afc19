package stream

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func uniform(r *rand.Rand) func() uint64 { return r.Uint64 }

func TestRangeIsCutAnywhere(t *testing.T) {
	all := slices.Collect(Range(5, 0, 3*ChunkLen+17, uniform))
	require.Len(t, all, 3*ChunkLen+17)
	for _, r := range [][2]int64{{0, 0}, {1, 2}, {ChunkLen - 1, ChunkLen + 1}, {100, 3*ChunkLen + 17}} {
		got := append([]uint64{}, slices.Collect(Range(5, r[0], r[1], uniform))...)
		require.Equal(t, all[r[0]:r[1]], got, "range %v", r)
	}
	for _, n := range []int{1, 2, 5, 100} {
		var joined []uint64
		for i := range n {
			from, to := SplitRange(int64(len(all)), i, n)
			joined = slices.AppendSeq(joined, Range(5, from, to, uniform))
		}
		require.Equal(t, all, joined, "%d splits", n)
	}
	require.NotEqual(t, all[:10], slices.Collect(Range(6, 0, 10, uniform)))
	require.Panics(t, func() { Range(1, 3, 2, uniform) })
	require.Panics(t, func() { SplitRange(10, 2, 2) })
}

func TestRangeStopsEarly(t *testing.T) {
	var n int
	for range Range(1, 0, 10*ChunkLen, uniform) {
		if n++; n == 3 {
			break
		}
	}
	require.Equal(t, 3, n)
}
