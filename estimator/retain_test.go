package estimator_test

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
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

// TestEstimateLeavesNothingLive: the package-level Estimate builds a throwaway Estimator per
// call; nothing of it may stay reachable after the call. (A walker returned to its sync.Pool
// would: the runtime keeps every pool that was Put to until two collections have passed, so a
// caller estimating every record kept each call's walker and layouts live, megabytes between
// two collections.) With the collector off during the calls, the one collection after them
// must find about the live heap it found before.
func TestEstimateLeavesNothingLive(t *testing.T) {
	v := make([]*retainNode, 300) // below the sampling threshold: every object is walked
	for i := range v {
		v[i] = &retainNode{data: make([]int64, 2)}
	}
	live := func() int64 {
		runtime.GC()
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		return int64(s[0].Value.Uint64())
	}
	before := live()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for range 1000 {
		require.Positive(t, estimator.Estimate(v))
	}
	grew := live() - before
	require.Less(t, grew, int64(1<<20), "the live heap grew by %d bytes after 1000 calls of Estimate", grew)
	runtime.KeepAlive(v)
}
