package collection

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
	"github.com/spillway/spillway/storage/faultfs"
)

// overlapSorter returns an overlapped sorter ordering int64 keys in 3 partitions, with spill's
// forced spills, whose spill jobs
// each wait, before they start, for a value on the returned channel (closing it lets every job
// through): the tests decide when a job runs.
func overlapSorter(t *testing.T, tm *memory.TaskManager, fs storage.FS, spill SpillConfig) (*int64Sorter, chan struct{}) {
	t.Helper()
	// The records' memory (at least InitialThreshold) must exceed the spill writer's (about
	// 2.5 batches and a file buffer), else the job runs at once (see handOff).
	spill.InitialThreshold, spill.BatchBytes = 1<<20, 1<<10
	scope := newTestScope(t, fs)
	s := newInt64Sorter(t, tm, scope, sorterCases[2], 3, SorterConfig[int64, int64, int64]{Overlap: OverlapOn, Spill: spill})
	release := make(chan struct{})
	s.jobStart = func() { <-release }
	return s, release
}

// handOffNow hands the sorter's in-memory records to a spill job, as a spill due while inserting
// does, and returns the job.
func handOffNow(t *testing.T, s *int64Sorter) *spillJob[int64, int64] {
	t.Helper()
	s.sp.Lock()
	defer s.sp.Unlock()
	require.NoError(t, s.sp.spillNow(s.collectionSize(), func() (int64, error) { return s.handOff(context.Background()) }))
	require.NotNil(t, s.job)
	return s.job
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestSorterOverlapInsertsWhileSpilling: the caller goes on inserting while a spill job is held
// back (the first job starts only once the input has gone 1000 records past the first spill,
// which would deadlock if inserting waited for it), and the output is the input's.
func TestSorterOverlapInsertsWhileSpilling(t *testing.T) {
	const n, every = 10000, 2000
	in := pairsOf(n, func(i int) int64 { return int64(i*7919) % 5000 }, func(i int) int64 { return int64(i) })
	tm := newTestTask(t, 64<<20)
	s, release := overlapSorter(t, tm, nil, SpillConfig{ForceSpillElements: every})
	past := make(chan struct{})
	first := true
	s.jobStart = func() {
		if first {
			first = false
			<-past
		}
		<-release
	}
	close(release)
	var once sync.Once
	src := &hookIterator[Pair[int64, int64]]{Iterator: SliceIterator(in), every: every + 1000,
		hook: func() error { once.Do(func() { close(past) }); return nil }}
	require.NoError(t, s.InsertAll(context.Background(), src))
	require.Equal(t, n/every-1, s.NumSpills(), "InsertAll waits for the last spill")
	require.Nil(t, s.job)
	checkPartitions(t, sorterCases[2], expectPartitions(in, 3, false), readPartitions(t, s))
	require.Zero(t, s.Used())
}

// TestSorterOverlapForcedSpill: another consumer's demand, while a spill job holds the memory of
// the records it writes, waits for the job and gets that memory.
func TestSorterOverlapForcedSpill(t *testing.T) {
	const budget = 8 << 20
	in := pairsOf(20000, func(i int) int64 { return int64(i) }, func(i int) int64 { return int64(i) })
	tm := newTestTask(t, budget)
	s, release := overlapSorter(t, tm, nil, SpillConfig{})
	require.NoError(t, s.InsertAll(context.Background(), SliceIterator(in)))
	require.Zero(t, s.NumSpills())
	j := handOffNow(t, s)
	require.Positive(t, j.held)
	require.Equal(t, j.held, s.Used(), "the job holds the memory of the records it writes")

	other := newTestConsumer(tm)
	want := budget - tm.Manager().ExecutionUsed() + j.held + j.writer
	got := make(chan int64)
	go func() {
		n, err := other.base.Acquire(context.Background(), want)
		if err != nil {
			n = -1
		}
		got <- n
	}()
	close(release) // whether the job ends before or while the demand waits for it
	require.Equal(t, want, <-got)
	require.True(t, closed(j.done))
	require.Zero(t, s.Used())
	other.free(want)

	checkPartitions(t, sorterCases[2], expectPartitions(in, 3, false), readPartitions(t, s))
	require.Equal(t, 2, s.NumSpills(), "the job's, and the in-memory records' that PartitionedIterator spills")
}

// TestSorterOverlapJobError: a spill job that fails (the disk fails) breaks the sorter: the error
// comes from the next call — or from Close when nothing collected it — with no memory held and
// no file left.
func TestSorterOverlapJobError(t *testing.T) {
	in := pairsOf(5000, func(i int) int64 { return int64(i) }, func(i int) int64 { return int64(i) })
	for _, next := range []string{"InsertAll", "Iterator", "Close"} {
		t.Run(next, func(t *testing.T) {
			tm := newTestTask(t, 64<<20)
			fs := faultfs.New(nil, 1, faultfs.Rule{Op: faultfs.Write, Prob: 1})
			s, release := overlapSorter(t, tm, fs, SpillConfig{})
			require.NoError(t, s.InsertAll(context.Background(), SliceIterator(in)))
			j := handOffNow(t, s)
			close(release)
			<-j.done
			require.ErrorIs(t, j.err, faultfs.ErrInjected)
			require.Zero(t, s.Used(), "the job gave its memory back")
			require.Zero(t, s.io.Used())
			var err error
			switch next {
			case "InsertAll":
				err = s.InsertAll(context.Background(), SliceIterator(in))
			case "Iterator":
				_, err = s.Iterator(context.Background())
			case "Close":
				err = s.Close()
			}
			require.ErrorIs(t, err, faultfs.ErrInjected)
			require.Zero(t, s.Used())
			require.NoError(t, s.Close())
			require.Zero(t, s.io.Used())
			require.Zero(t, tm.Manager().ExecutionUsed())
		})
	}
}

// TestSorterOverlapCancel: a read whose context is cancelled while a spill job runs returns the
// context's error, and Close stops the job, waits for it and leaves no memory and no file.
func TestSorterOverlapCancel(t *testing.T) {
	in := pairsOf(5000, func(i int) int64 { return int64(i) }, func(i int) int64 { return int64(i) })
	tm := newTestTask(t, 64<<20)
	s, release := overlapSorter(t, tm, nil, SpillConfig{})
	require.NoError(t, s.InsertAll(context.Background(), SliceIterator(in)))
	j := handOffNow(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Iterator(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, s.InsertAll(ctx, SliceIterator(in)), context.Canceled)
	require.False(t, closed(j.done), "the job waits for its release")
	close(release)
	require.NoError(t, s.Close())
	require.True(t, closed(j.done), "no job outlives Close")
	require.Zero(t, s.Used())
	require.Zero(t, s.io.Used())
	require.Zero(t, tm.Manager().ExecutionUsed())
}
