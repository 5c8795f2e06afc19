package pagerank

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/examples/pagerank/graphgen"
)

// TestPlainByHand checks Plain against ranks computed by hand: duplicates count once, a page
// without incoming links (4) drops out after the first iteration and contributes no more.
func TestPlainByHand(t *testing.T) {
	edges := edgeList(1, 2, 1, 3, 2, 3, 3, 1, 1, 2, 4, 1)
	tests := []struct {
		iterations int
		want       map[int64]float64
	}{
		{1, map[int64]float64{1: 1.85, 2: 0.575, 3: 1.425}},
		{2, map[int64]float64{1: 1.36125, 2: 0.93625, 3: 1.425}},
	}
	for _, tt := range tests {
		got := Plain(edges, tt.iterations)
		require.Len(t, got, len(tt.want))
		for v, r := range tt.want {
			require.InDelta(t, r, got[v], 1e-12, "vertex %d after %d iterations", v, tt.iterations)
		}
	}
	require.Empty(t, Plain(nil, 3))
}

// edgeList makes edges of consecutive (src, dst) ids.
func edgeList(ids ...int64) []graphgen.Edge {
	edges := make([]graphgen.Edge, 0, len(ids)/2)
	for i := 0; i+1 < len(ids); i += 2 {
		edges = append(edges, graphgen.Edge{Src: ids[i], Dst: ids[i+1]})
	}
	return edges
}
