package shuffle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// shuffleCase is one way of running a shuffle of (int, int64) records.
type shuffleCase struct {
	writer     string // "bypass", "sort", "serialized" or "auto" (RunMapStage with NewWriter's choice)
	partitions int
	agg        bool
	mapSide    bool
	ordered    bool
}

func (c shuffleCase) String() string {
	return fmt.Sprintf("%s/p%d/agg=%v/mapside=%v/ordered=%v", c.writer, c.partitions, c.agg, c.mapSide, c.ordered)
}

// shuffleResult is what every reduce task read.
type shuffleResult struct {
	parts  [][]collection.Pair[int, int64]
	reads  []ReadMetrics
	writes []WriteMetrics
	inputs [][]collection.Pair[int, int64]
	dep    *Dependency[int, int64, int64]
}

// runShuffle writes inputs through the case's writer and reads every reduce partition back.
func runShuffle(t *testing.T, e *testEnv, c shuffleCase, inputs [][]collection.Pair[int, int64]) shuffleResult {
	t.Helper()
	ctx := context.Background()
	dep := intDep(e.runner, c.partitions, c.agg, c.mapSide, c.ordered)
	res := shuffleResult{dep: dep, inputs: inputs}
	switch c.writer {
	case "auto":
		var err error
		res.writes, err = RunMapStage(ctx, e.runner, dep, len(inputs), func(_ context.Context, _ *TaskContext, m int) (collection.Iterator[collection.Pair[int, int64]], error) {
			return collection.SliceIterator(inputs[m]), nil
		})
		require.NoError(t, err)
	case "bypass", "sort", "serialized":
		res.writes = make([]WriteMetrics, len(inputs))
		writeMapOutputs(t, e, dep.ShuffleID, c.partitions, inputs, func(tc *TaskContext, m int) (Writer[int, int64], error) {
			var w Writer[int, int64]
			var err error
			switch c.writer {
			case "bypass":
				w, err = NewBypassMergeWriter(tc, dep, m)
			case "serialized":
				w, err = NewSerializedWriter(tc, dep, m)
			default:
				w, err = NewSortWriter(tc, dep, m)
			}
			return &metricsWriter{Writer: w, into: &res.writes[m]}, err
		})
	}
	res.parts = make([][]collection.Pair[int, int64], c.partitions)
	res.reads = make([]ReadMetrics, c.partitions)
	err := e.runner.Run(ctx, c.partitions, func(ctx context.Context, tc *TaskContext, p int) error {
		r, err := NewReader(ctx, tc, dep, p)
		if err != nil {
			return err
		}
		defer r.Close()
		for r.Next() {
			res.parts[p] = append(res.parts[p], r.Value())
		}
		res.reads[p] = r.Metrics()
		return r.Err()
	})
	require.NoError(t, err)
	return res
}

// metricsWriter copies a writer's metrics out after Write.
type metricsWriter struct {
	Writer[int, int64]
	into *WriteMetrics
}

func (w *metricsWriter) Write(ctx context.Context, records collection.Iterator[collection.Pair[int, int64]]) (MapStatus, error) {
	st, err := w.Writer.Write(ctx, records)
	*w.into = w.Writer.Metrics()
	return st, err
}

// check compares the result with a model computed from the inputs.
func (res shuffleResult) check(t *testing.T, c shuffleCase) {
	t.Helper()
	part := res.dep.Partitioner
	var records int64
	for _, in := range res.inputs {
		records += int64(len(in))
	}
	if c.agg {
		sums := map[int]int64{}
		for _, in := range res.inputs {
			for _, kv := range in {
				sums[kv.Key] += kv.Value
			}
		}
		seen := 0
		for p, got := range res.parts {
			for i, kv := range got {
				require.Equal(t, p, part.Partition(kv.Key), "key %d in partition %d", kv.Key, p)
				want, ok := sums[kv.Key]
				require.True(t, ok, "key %d never written", kv.Key)
				require.Equal(t, want, kv.Value, "sum of key %d", kv.Key)
				if c.ordered && i > 0 {
					require.Less(t, got[i-1].Key, kv.Key, "partition %d not sorted by key", p)
				}
			}
			seen += len(got)
		}
		require.Equal(t, len(sums), seen, "every key once")
	} else {
		byKey := func(a, b collection.Pair[int, int64]) int {
			return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Value, b.Value))
		}
		for p, got := range res.parts {
			want := partitionModel(res.dep, res.inputs, p)
			if c.ordered {
				require.True(t, slices.IsSortedFunc(got, func(a, b collection.Pair[int, int64]) int { return cmp.Compare(a.Key, b.Key) }),
					"partition %d not sorted by key", p)
			}
			got = slices.Clone(got)
			slices.SortFunc(got, byKey)
			slices.SortFunc(want, byKey)
			require.Equal(t, want, got, "partition %d", p)
		}
	}
	var read, written, bytesRead, bytesWritten int64
	for _, m := range res.reads {
		read += m.RecordsRead
		bytesRead += m.BytesRead
	}
	for _, m := range res.writes {
		bytesWritten += m.BytesWritten
	}
	require.Equal(t, bytesWritten, bytesRead, "every byte written is read once")
	for _, m := range res.writes {
		written += m.RecordsWritten
	}
	require.Equal(t, records, written, "records written")
	if !c.mapSide {
		require.Equal(t, records, read, "records read")
	}
}

func TestShuffleRoundTrip(t *testing.T) {
	var cases []shuffleCase
	for _, writer := range []string{"bypass", "sort", "serialized", "auto"} {
		for _, partitions := range []int{1, 13, 230} {
			for _, mode := range []struct{ agg, mapSide bool }{{false, false}, {true, false}, {true, true}} {
				for _, ordered := range []bool{false, true} {
					if (writer == "bypass" || writer == "serialized") && mode.mapSide {
						continue
					}
					cases = append(cases, shuffleCase{writer, partitions, mode.agg, mode.mapSide, ordered})
				}
			}
		}
	}
	seed := uint64(7)
	t.Logf("seed %d", seed)
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			e := newTestEnv(t, 64<<20, RunnerConfig{Shuffle: Config{Spill: collection.SpillConfig{BatchSize: 64}}})
			inputs := make([][]collection.Pair[int, int64], 3)
			for m := range inputs {
				inputs[m] = genRecords(seed, m, 400*(m+1), 150) // 150 keys: some of 230 partitions stay empty
			}
			res := runShuffle(t, e, c, inputs)
			res.check(t, c)
			if c.writer == "auto" {
				want := "sort"
				switch {
				case !c.mapSide && c.partitions <= DefaultBypassMergeThreshold:
					want = "bypass-merge"
				case !c.mapSide:
					want = "serialized"
				}
				for _, w := range res.writes {
					require.Equal(t, want, w.Writer)
				}
			}
		})
	}
}

// TestShuffleLargerThanMemory sends partitions larger than the memory budget through a whole
// shuffle: every map task (ExternalSorter) and every reduce task (ExternalAppendOnlyMap, and the
// sorter when ordered) must spill, and the result must still equal the model.
//
// The budget is derived from the data, so that the spills do not depend on how the concurrent
// tasks are scheduled: a first run with memory to spare measures every task's peak execution
// memory (deterministic: each task's records come in a fixed order and nothing spills), and the
// real run gets half of the smallest peak. A task alone holds at most the whole budget, and
// others running beside it only leave it less; if a task did not spill, its collections would
// go through the same sizes as in the first run, where one of them (a reduce task's peak sums
// its map's and its sorter's, hence the half) grew past the budget. So each task spills under
// any interleaving, even when it runs alone.
func TestShuffleLargerThanMemory(t *testing.T) {
	seed := uint64(11)
	t.Logf("seed %d", seed)
	inputs := make([][]collection.Pair[int, int64], 2)
	for m := range inputs {
		inputs[m] = genRecords(seed, m, 200_000, 150_000)
	}
	// Small batches: under Strict accounting every record reader's and writer's buffers come out
	// of the budget, which is derived from the data below.
	spill := collection.SpillConfig{InitialThreshold: collection.NoInitialThreshold, BatchBytes: 32 << 10}
	for _, c := range []shuffleCase{
		{writer: "auto", partitions: 2, agg: true, mapSide: true},
		{writer: "sort", partitions: 2, agg: true},
		{writer: "auto", partitions: 3, agg: true, mapSide: true, ordered: true},
	} {
		t.Run(c.String(), func(t *testing.T) {
			free := runShuffle(t, newTestEnv(t, 256<<20, RunnerConfig{Shuffle: Config{Spill: spill}}), c, inputs)
			minPeak := int64(math.MaxInt64)
			for _, w := range free.writes {
				require.Zero(t, w.Spills, "spills with memory to spare")
				minPeak = min(minPeak, w.PeakExecutionBytes)
			}
			for _, r := range free.reads {
				require.Zero(t, r.Spills, "spills with memory to spare")
				minPeak = min(minPeak, r.PeakExecutionBytes)
			}
			budget := minPeak / 2
			t.Logf("smallest peak of a task %d bytes: budget %d bytes", minPeak, budget)

			res := runShuffle(t, newTestEnv(t, budget, RunnerConfig{Shuffle: Config{Spill: spill}}), c, inputs)
			res.check(t, c)
			for m, w := range res.writes {
				t.Logf("map %d: %d spills, %d bytes", m, w.Spills, w.DiskBytesSpilled)
				require.Positive(t, w.Spills, "map %d spills", m)
				require.Positive(t, w.DiskBytesSpilled, "map %d", m)
			}
			for p, r := range res.reads {
				t.Logf("reduce %d: %d spills, %d bytes", p, r.Spills, r.DiskBytesSpilled)
				require.Positive(t, r.Spills, "reduce %d spills", p)
				require.Positive(t, r.DiskBytesSpilled, "reduce %d", p)
				require.Positive(t, r.PeakExecutionBytes)
			}
		})
	}
}

// endlessInput yields records until ctx ends (a well-behaved input, like Spark's
// InterruptibleIterator), signalling started once.
func endlessInput(ctx context.Context, started chan<- struct{}) collection.Iterator[collection.Pair[int, int64]] {
	i := 0
	return storage.FuncIterator(func() (collection.Pair[int, int64], bool, error) {
		if i == 1000 {
			started <- struct{}{}
		}
		if err := ctx.Err(); err != nil {
			return collection.Pair[int, int64]{}, false, err
		}
		i++
		return collection.Pair[int, int64]{Key: i % 5000, Value: 1}, true, nil
	}, nil)
}

// TestRunMapStageFailureLeavesNothing: a map function fails (or the run is cancelled) while
// other maps spill and hold memory; the stage returns the error and leaves no memory, lock or
// file behind, not even the outputs of the maps that succeeded.
func TestRunMapStageFailureLeavesNothing(t *testing.T) {
	injected := errors.New("injected map failure")
	for _, tc := range []struct {
		name   string
		writer int // BypassMergeThreshold
		cancel bool
	}{
		{"sort writer, failing map", NoBypassMerge, false},
		{"bypass writer, failing map", 0, false},
		{"sort writer, cancelled", NoBypassMerge, true},
		{"bypass writer, cancelled", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, 2<<20, RunnerConfig{Cores: 2, Shuffle: Config{
				BypassMergeThreshold: tc.writer,
				Spill:                collection.SpillConfig{InitialThreshold: collection.NoInitialThreshold},
			}})
			dep := intDep(e.runner, 4, false, false, false)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			started := make(chan struct{}, 8)
			errc := make(chan error, 1)
			go func() {
				_, err := RunMapStage(ctx, e.runner, dep, 6, func(ctx context.Context, tc2 *TaskContext, m int) (collection.Iterator[collection.Pair[int, int64]], error) {
					if tc.cancel {
						return endlessInput(ctx, started), nil
					}
					if m == 3 {
						return failingInput(20000, injected), nil
					}
					return collection.SliceIterator(genRecords(3, m, 20000, 20000)), nil
				})
				errc <- err
			}()
			if tc.cancel {
				<-started
				<-started
				cancel()
			}
			var err error
			select {
			case err = <-errc:
			case <-time.After(time.Minute): // a safety net only
				t.Fatal("RunMapStage did not return")
			}
			if tc.cancel {
				require.Equal(t, context.Canceled, err)
			} else {
				require.ErrorIs(t, err, injected)
			}
			require.Zero(t, e.mm.ExecutionUsed())
			require.Zero(t, e.mm.StorageUsed())
			require.Zero(t, e.disk.Files(), "block files left")
			require.Zero(t, countFiles(t, e.disk.LocalDirs()), "files left in the local dirs")
			_, err = e.runner.registry.MapStatuses(dep.ShuffleID)
			require.ErrorIs(t, err, ErrUnknownShuffle, "the failed shuffle is unregistered")
		})
	}
}

// A Reader closed early, or not closed at all, leaves no prefetching goroutine and no memory.
func TestReaderEarlyCloseAndForgottenClose(t *testing.T) {
	e := newTestEnv(t, 64<<20, RunnerConfig{Shuffle: Config{MaxBytesInFlight: 16 << 10}})
	inputs := make([][]collection.Pair[int, int64], 20)
	for m := range inputs {
		inputs[m] = genRecords(5, m, 2000, 1<<20)
	}
	dep := intDep(e.runner, 2, false, false, false)
	_, err := RunMapStage(context.Background(), e.runner, dep, len(inputs), func(_ context.Context, _ *TaskContext, m int) (collection.Iterator[collection.Pair[int, int64]], error) {
		return collection.SliceIterator(inputs[m]), nil
	})
	require.NoError(t, err)
	for _, forget := range []bool{false, true} {
		err := e.runner.Run(context.Background(), 1, func(ctx context.Context, tc *TaskContext, p int) error {
			r, err := NewReader(ctx, tc, dep, p)
			if err != nil {
				return err
			}
			for range 100 {
				require.True(t, r.Next())
			}
			require.Equal(t, 1, prefetchers())
			if !forget {
				require.NoError(t, r.Close())
				requireNoPrefetchers(t, "a closed reader's prefetching goroutine left behind")
				require.False(t, r.Next())
			}
			return nil
		})
		require.NoError(t, err)
		requireNoPrefetchers(t, "the task's end closes a forgotten reader")
	}
}
