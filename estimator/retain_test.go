package estimator_test

import (
	"runtime"
	"testing"
	"weak"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/estimator"
)

type retainNode struct {
	next *retainNode
	data []int64
}

// TestEstimatorDoesNotRetainValues: an Estimator reuses its walkers between calls; nothing it
// keeps may hold on to what it measured, or a collection's spilled table would stay reachable
// through its size tracker. A sampled slice (more than 400 elements) is measured and dropped;
// its backing array and every element must be collected by the next collection.
func TestEstimatorDoesNotRetainValues(t *testing.T) {
	var e estimator.Estimator
	build := func() []weak.Pointer[retainNode] {
		big := make([]retainNode, 5000)
		for i := range big {
			big[i] = retainNode{next: &retainNode{data: make([]int64, 8)}}
		}
		require.Positive(t, e.Estimate(big))
		weaks := []weak.Pointer[retainNode]{weak.Make(&big[0])} // the backing array
		for i := range big {
			weaks = append(weaks, weak.Make(big[i].next))
		}
		return weaks
	}
	weaks := build()
	// One collection, not a loop: a sync.Pool drops what it holds at the second collection, so
	// a pooled walker that pinned the value would only be caught here.
	runtime.GC()
	for i, w := range weaks {
		require.Nil(t, w.Value(), "object %d (0: the backing array) is still reachable", i)
	}
	require.Positive(t, e.Estimate(&retainNode{}), "the Estimator still works")
}
