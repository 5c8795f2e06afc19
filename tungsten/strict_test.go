package tungsten

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
)

// spillRuns inserts runs × perRun numbers into a sorter, spilling after each group, plus one
// more number left in memory.
func spillRuns(t *testing.T, s *ExternalSorter, runs, perRun int) {
	for i := range runs {
		for j := range perRun {
			insertNumber(t, s, (j*7+i)%100_000)
		}
		spill(t, s)
	}
	insertNumber(t, s, 5)
}

// In memory.Strict accounting a merge opens only the readers the task grants: the other runs
// are merged in rounds first, whatever the merge factor, and the readers' memory is charged to
// the sorter's spill I/O consumer while they are open. With memory.SparkAllowances the same
// merge opens every run at once and charges nothing but the pages and array.
func TestStrictMergeIsBoundedByMemory(t *testing.T) {
	const runs, perRun = 40, 5000 // readers of about 100 KiB each (32 KiB batches)
	for _, acc := range []memory.Accounting{memory.Strict, memory.SparkAllowances} {
		t.Run(acc.String(), func(t *testing.T) {
			tm, scope := newTaskWith(t, memory.OnHeap, 2*mib, 64<<10, acc), newScope(t)
			cfg := uesConfig(true)
			cfg.MergeFactor = -1 // no bound but the memory
			s := newSorter(t, tm, scope, cfg)
			spillRuns(t, s, runs, perRun)
			it := sorted(t, s)
			require.True(t, it.Next())
			io := s.writer.io.Used()
			t.Logf("%s: %d merge passes, spill I/O holds %d bytes while reading", acc, s.Metrics().MergePasses, io)
			if acc == memory.Strict {
				require.Positive(t, s.Metrics().MergePasses, "40 readers do not fit half of 2 MiB")
				require.Positive(t, io)
				require.LessOrEqual(t, io, int64(2*mib))
			} else {
				require.Zero(t, s.Metrics().MergePasses)
				require.Zero(t, io)
			}
			values, _ := drain(t, it)
			require.Len(t, values, runs*perRun)
			require.IsNonDecreasing(t, values)
			require.NoError(t, it.Close())
			require.NoError(t, s.Close())
			require.Zero(t, tm.Manager().ExecutionUsedForTask(tm.ID()))
			require.Zero(t, scope.Files())
		})
	}
}

// A merge that cannot get two readers and a writer, because a consumer that cannot spill holds
// the rest of the task's memory, fails with memory.ErrOutOfMemory and deletes every run.
func TestStrictMergeOutOfMemory(t *testing.T) {
	tm, scope := newTask(t, memory.OnHeap, 2*mib, 64<<10), newScope(t)
	s := newSorter(t, tm, scope, uesConfig(true))
	spillRuns(t, s, 4, 200)
	spill(t, s)
	h := newStubborn(tm)
	h.use(t, 2*mib-tm.Manager().ExecutionUsedForTask(tm.ID()))
	defer h.free()
	_, err := s.SortedIterator(ctx)
	require.ErrorIs(t, err, memory.ErrOutOfMemory)
	require.ErrorContains(t, err, "merging 5 spill files")
	require.Zero(t, scope.Files())
}

// The readers of Iterator (runs in spill order) are opened one at a time, each with its memory.
func TestStrictIteratorOpensOneRunAtATime(t *testing.T) {
	tm, scope := newTask(t, memory.OnHeap, 2*mib, 64<<10), newScope(t)
	s := newSorter(t, tm, scope, uesConfig(true))
	spillRuns(t, s, 10, 200)
	it, err := s.Iterator(ctx, 0)
	require.NoError(t, err)
	var most int64
	n := 0
	for ; it.Next(); n++ {
		most = max(most, s.writer.io.Used())
	}
	require.NoError(t, it.Err())
	require.Equal(t, 10*200+1, n)
	// The writer's reservation and one reader.
	require.Less(t, most, 2*writerCost(s.spill, 4))
	require.NoError(t, it.Close())
}

// An Aggregator whose map holds the memory its merge's readers need spills the map first; its
// result is the same and everything is given back.
func TestStrictAggregatorMergeMakesRoom(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			tm, scope := newTask(t, mode, 2*mib, 64<<10), newScope(t)
			a, err := NewAggregator(ctx, tm, scope, Int64Key{}, Int64Key{}, sum, AggregatorConfig{MergeFactor: -1})
			require.NoError(t, err)
			const keys = 200_000
			for i := range 2 * keys {
				require.NoError(t, a.Insert(ctx, int64(i%keys), 1))
			}
			it, err := a.Iterator(ctx)
			require.NoError(t, err)
			got := collect(t, it)
			require.Len(t, got, keys)
			for i, p := range got {
				require.Equal(t, Pair[int64, int64]{Key: int64(i), Value: 2}, p)
			}
			t.Logf("%s: %+v", mode, a.Metrics())
			require.NoError(t, a.Close())
			require.Zero(t, tm.Manager().ExecutionUsedForTask(tm.ID()))
		})
	}
}

// The map's iterators stop with ctx's error.
func TestMapIteratorContext(t *testing.T) {
	tm, scope := newTask(t, memory.OnHeap, 16*mib, 1*mib), newScope(t)
	m := newMap(t, tm, scope, MapConfig{})
	for i := range 5000 {
		require.True(t, appendKV(t, m, long(i), long(i)))
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	for _, it := range []*MapIterator{m.Iterator(c), m.DestructiveIterator(c)} {
		n := 0
		for it.Next() {
			n++
		}
		require.ErrorIs(t, it.Err(), context.Canceled)
		require.Less(t, n, 5000)
		require.NoError(t, it.Close())
	}
}

// When the task cannot grant the merge's readers beside the map (here a consumer that cannot
// spill holds the rest), the Aggregator spills the map as one more run before it merges.
func TestStrictAggregatorSpillsBeforeMerging(t *testing.T) {
	tm, scope := newTask(t, memory.OnHeap, 2*mib, 64<<10), newScope(t)
	a, err := NewAggregator(ctx, tm, scope, Int64Key{}, Int64Key{}, sum, AggregatorConfig{})
	require.NoError(t, err)
	const keys = 100_000
	for i := range keys + 10_000 {
		require.NoError(t, a.Insert(ctx, int64(i%keys), 1))
	}
	spills := a.Metrics().Spills
	require.Positive(t, spills)
	h := newStubborn(tm)
	h.use(t, 2*mib-tm.Manager().ExecutionUsedForTask(tm.ID()))
	it, err := a.Iterator(ctx)
	require.NoError(t, err)
	require.Equal(t, spills+1, a.Metrics().Spills, "the map went to disk before the merge")
	require.Zero(t, a.Used(), "pages and slot array freed")
	h.free()
	got := collect(t, it)
	require.Len(t, got, keys)
	for i, p := range got {
		require.Equal(t, Pair[int64, int64]{Key: int64(i), Value: 1 + int64(min(1, max(0, 10_000-i)))}, p)
	}
	require.NoError(t, a.Close())
}
