package pagerank

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBatches: batches hands out every element in order, in full batches but the last, and
// stops the underlying sequence when the puller stops early.
func TestBatches(t *testing.T) {
	for _, tc := range []struct{ n, size int }{{0, 4}, {1, 4}, {3, 4}, {4, 4}, {5, 4}, {1000, 256}} {
		want := make([]int, tc.n)
		for i := range want {
			want[i] = i
		}
		got := []int{}
		for b := range batches(slices.Values(want), make([]int, 0, tc.size)) {
			require.NotEmpty(t, b, "n=%d: empty batch", tc.n)
			if len(got)+len(b) < tc.n {
				require.Len(t, b, tc.size, "n=%d: short batch before the last", tc.n)
			}
			got = append(got, b...)
		}
		require.Equal(t, want, got, "n=%d", tc.n)
	}
	drawn := 0
	seq := func(yield func(int) bool) {
		for i := 0; ; i++ {
			drawn++
			if !yield(i) {
				return
			}
		}
	}
	for b := range batches(seq, make([]int, 0, 8)) {
		require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7}, b)
		break
	}
	require.Equal(t, 8, drawn, "the sequence stops with the puller")
}
