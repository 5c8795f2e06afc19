package shuffle

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/memory/memtest"
	"github.com/spillway/spillway/storage"
)

// reduceTask is a TaskManager of its own on a manager of budget bytes (Strict accounting), with
// a shuffle fetch consumer; its cleanup checks that the task leaks nothing.
func reduceTask(t *testing.T, budget int64) (*memory.TaskManager, *bufferConsumer) {
	t.Helper()
	mm, err := memory.NewUnifiedManager(memory.Config{
		SystemMemory: budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 1,
	})
	require.NoError(t, err)
	tm := memory.NewTaskManager(mm, 1, memory.TaskConfig{})
	mem := newBufferConsumer(tm, "shuffle fetch")
	require.NotNil(t, mem, "Strict accounting is the default")
	t.Cleanup(func() {
		require.Zero(t, mem.Used(), "fetch consumer still holds memory")
		require.Zero(t, tm.Close(), "leak")
		require.Zero(t, mm.ExecutionUsed())
	})
	return tm, mem
}

// Under Strict accounting a reduce task whose memory is below MaxBytesInFlight fetches fewer
// segments at once: its fetch consumer never holds more than the task can be granted, the
// prefetcher waits for the consumer to release segments, and the records come out whole.
func TestStrictFetchBudgetBelowMaxBytesInFlight(t *testing.T) {
	e := newTestEnv(t, 64<<20, RunnerConfig{Shuffle: Config{Spill: collection.SpillConfig{Compression: storage.CompressionNone}}})
	dep, inputs := bypassShuffle(t, e, 1, 40, 1000, 1<<20) // 40 segments of about 4 KiB
	blocks, err := e.runner.registry.MapSizesByReduce(dep.ShuffleID, 0)
	require.NoError(t, err)
	var total, largest int64
	for _, b := range blocks {
		total, largest = total+b.Size, max(largest, b.Size)
	}
	for _, tc := range []struct {
		name   string
		budget int64
	}{
		{"a quarter of the data", total / 4},
		{"three segments", 3*largest + readerBytes(largest, 32<<10, storage.CompressionNone)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const maxInFlight = 48 << 20
			require.Less(t, tc.budget, int64(maxInFlight))
			tm, mem := reduceTask(t, tc.budget)
			waits := make(chan [2]int64, 4*len(blocks))
			lim := fetchLimits{maxInFlight: maxInFlight, maxToMem: DefaultMaxBlockSizeFetchToMem, mem: mem,
				decode: readerBytes(largest, 32<<10, storage.CompressionNone)}
			f := newStoppedFetcher(e.disk, blocks, 1, lim)
			f.onWait = func(inFlight, size int64) { waits <- [2]int64{inFlight, size} }
			ctx := context.Background()
			require.NoError(t, f.start(ctx, blocks, lim.decode))
			// Nothing is consumed yet: the prefetcher must stop when the task's memory is held.
			w := <-waits
			require.Positive(t, w[0], "it waits with segments loaded")
			require.LessOrEqual(t, lim.decode+w[0], tc.budget)
			it := newRecordIterator(ctx, f, dep.KeyCodec, dep.ValueCodec)
			got, err := collection.Collect[collection.Pair[int, int64]](it)
			require.NoError(t, err)
			require.Equal(t, partitionModel(dep, inputs, 0), got)
			c := it.counters()
			t.Logf("budget %d: peak in flight %d of %d bytes, %d loaded, %d streamed", tc.budget, c.peakInFlight, total, c.blocks, c.streamed)
			require.LessOrEqual(t, lim.decode+c.peakInFlight, tc.budget)
			require.LessOrEqual(t, tm.PeakExecution(memory.OnHeap), tc.budget, "the consumer held no more than granted")
			require.GreaterOrEqual(t, tm.PeakExecution(memory.OnHeap), lim.decode+c.peakInFlight, "every loaded byte was acquired")
			require.Equal(t, int64(len(blocks)), c.blocks, "every segment fits alone: none streamed")
			require.Less(t, c.peakInFlight, total)
		})
	}
}

// A segment larger than the task can acquire is streamed from its file through the record
// reader's buffers; so is one above the in-flight bound, which under Strict accounting is memory.
func TestStrictFetchStreamsSegmentsItCannotHold(t *testing.T) {
	e := newTestEnv(t, 64<<20, RunnerConfig{Shuffle: Config{Spill: collection.SpillConfig{Compression: storage.CompressionNone, BatchBytes: 4 << 10}}})
	dep, inputs := bypassShuffle(t, e, 1, 3, 30000, 1<<20) // 3 segments of about 150 KiB
	blocks, err := e.runner.registry.MapSizesByReduce(dep.ShuffleID, 0)
	require.NoError(t, err)
	var largest int64
	for _, b := range blocks {
		largest = max(largest, b.Size)
	}
	decode := readerBytes(largest, 4<<10, storage.CompressionNone)
	for _, tc := range []struct {
		name                string
		budget, maxInFlight int64
	}{
		{"larger than the task's memory", decode + largest/2, 48 << 20},
		{"larger than MaxBytesInFlight", 64 << 20, largest / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm, mem := reduceTask(t, tc.budget)
			f, err := newFetcher(context.Background(), e.disk, blocks, 1,
				fetchLimits{maxInFlight: tc.maxInFlight, maxToMem: DefaultMaxBlockSizeFetchToMem, mem: mem, decode: decode})
			require.NoError(t, err)
			it := newRecordIterator(context.Background(), f, dep.KeyCodec, dep.ValueCodec)
			got, err := collection.Collect[collection.Pair[int, int64]](it)
			require.NoError(t, err)
			require.Equal(t, partitionModel(dep, inputs, 0), got)
			c := it.counters()
			require.Equal(t, int64(len(blocks)), c.streamed)
			require.Zero(t, c.blocks)
			require.Zero(t, c.peakInFlight, "nothing loaded")
			require.LessOrEqual(t, tm.PeakExecution(memory.OnHeap), tc.budget)
		})
	}
}

// The record reader's buffers are acquired before fetching starts; a task that cannot hold them
// gets ErrOutOfMemory naming the sizes, and holds nothing.
func TestStrictFetchReaderBuffersDoNotFit(t *testing.T) {
	e := newTestEnv(t, 64<<20, RunnerConfig{})
	dep, _ := bypassShuffle(t, e, 1, 2, 1000, 1<<20)
	blocks, err := e.runner.registry.MapSizesByReduce(dep.ShuffleID, 0)
	require.NoError(t, err)
	_, mem := reduceTask(t, 16<<10)
	_, err = newFetcher(context.Background(), e.disk, blocks, 1, fetchLimits{maxInFlight: 1 << 20, maxToMem: 1 << 20, mem: mem, decode: 64 << 10})
	require.ErrorIs(t, err, memory.ErrOutOfMemory)
	require.ErrorContains(t, err, "64 KiB")
}

// Closing a fetcher early, or cancelling it, releases every byte its consumer acquired.
func TestStrictFetchEarlyCloseReleases(t *testing.T) {
	e := newTestEnv(t, 64<<20, RunnerConfig{})
	dep, _ := bypassShuffle(t, e, 2, 30, 1000, 1<<20)
	blocks, err := e.runner.registry.MapSizesByReduce(dep.ShuffleID, 0)
	require.NoError(t, err)
	for _, cancelled := range []bool{false, true} {
		t.Run(fmt.Sprintf("cancelled=%v", cancelled), func(t *testing.T) {
			tm, mem := reduceTask(t, 256<<10)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f, err := newFetcher(ctx, e.disk, blocks, 2, fetchLimits{maxInFlight: 1 << 20, maxToMem: 1 << 20, mem: mem, decode: 40 << 10})
			require.NoError(t, err)
			it := newRecordIterator(ctx, f, dep.KeyCodec, dep.ValueCodec)
			for range 10 {
				require.True(t, it.Next())
			}
			require.Positive(t, mem.Used())
			if cancelled {
				cancel()
				for it.Next() {
				}
				require.ErrorIs(t, it.Err(), context.Canceled)
			}
			require.NoError(t, it.Close())
			require.Zero(t, mem.Used())
			require.Zero(t, tm.Manager().ExecutionUsed())
			_, open := <-f.results
			require.False(t, open, "the prefetcher ended")
		})
	}
}

// With a budget far below the data and below the default writer and reader buffers, a shuffle
// still completes under Strict accounting: writers take smaller batches (the bypass-merge writer
// may fall back to the sort writer, depending on what the concurrent maps hold), readers fetch
// little at once, and the collections spill.
func TestStrictShuffleTinyBudget(t *testing.T) {
	const budget = 512 << 10
	inputs := make([][]collection.Pair[int, int64], 4)
	for m := range inputs {
		inputs[m] = genRecords(21, m, 20000, 5000)
	}
	for _, c := range []shuffleCase{
		{writer: "auto", partitions: 3, agg: true, mapSide: true},
		{writer: "auto", partitions: 3, agg: true, ordered: true},
		{writer: "bypass", partitions: 8},
	} {
		t.Run(c.String(), func(t *testing.T) {
			// One task at a time: a task is sure of only 1/2N of the memory, and its unspillable
			// buffers need more than that of this budget.
			e := newTestEnv(t, budget, RunnerConfig{Cores: 1, Shuffle: Config{
				Spill: collection.SpillConfig{InitialThreshold: collection.NoInitialThreshold},
			}})
			res := runShuffle(t, e, c, inputs)
			res.check(t, c)
			for p, r := range res.reads {
				t.Logf("reduce %d: %d loaded, %d streamed, peak in flight %d, %d spills", p, r.BlocksFetched, r.BlocksStreamed, r.PeakBytesInFlight, r.Spills)
				require.LessOrEqual(t, r.PeakBytesInFlight, int64(budget)/4, "at most a quarter of the task's share")
			}
			for m, w := range res.writes {
				t.Logf("map %d: %s writer, %d spills", m, w.Writer, w.Spills)
			}
		})
	}
}

// The bypass-merge writer acquires its partition writers' buffers before it writes: with memory
// to spare it keeps 32 KiB batches, with less it takes smaller ones, and with too little it
// writes with the sort writer. The memory is released after the write.
func TestStrictBypassWriterBuffers(t *testing.T) {
	const partitions = 16
	small := writerBytes(storage.RecordWriterConfig{BatchBytes: minWriterBatchBytes})
	for _, tc := range []struct {
		name   string
		budget int64
		writer string
		batch  int
	}{
		{"room for all", 64 << 20, "bypass-merge", 32 << 10},
		{"smaller batches", partitions*writerBytes(storage.RecordWriterConfig{BatchBytes: 8 << 10}) + storage.DefaultBufferSize, "bypass-merge", 8 << 10},
		{"sort writer instead", partitions * small, "sort", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, tc.budget, RunnerConfig{Cores: 1})
			dep := intDep(e.runner, partitions, false, false, false)
			inputs := [][]collection.Pair[int, int64]{genRecords(4, 0, 5000, 1000)}
			var w *BypassMergeWriter[int, int64]
			writeMapOutputs(t, e, dep.ShuffleID, partitions, inputs, func(tc *TaskContext, m int) (Writer[int, int64], error) {
				var err error
				w, err = NewBypassMergeWriter(tc, dep, m)
				return w, err
			})
			require.Equal(t, tc.writer, w.Metrics().Writer)
			if tc.batch > 0 {
				require.Equal(t, tc.batch, w.records.BatchBytes)
			}
			require.Zero(t, e.mm.ExecutionUsed())
			got, _, err := readSegments(t, e, dep.ShuffleID, 3, dep.ValueCodec)
			require.NoError(t, err)
			require.ElementsMatch(t, partitionModel(dep, inputs, 3), got)
		})
	}
}

// The sort writer acquires its data file writer's buffers; when even the smallest batches do not
// fit, the map fails with ErrOutOfMemory naming the sizes and leaves nothing behind.
func TestStrictSortWriterBuffersDoNotFit(t *testing.T) {
	e := newTestEnv(t, 32<<10, RunnerConfig{Cores: 1})
	dep := intDep(e.runner, 2, true, true, false)
	_, err := RunMapStage(context.Background(), e.runner, dep, 1, func(_ context.Context, _ *TaskContext, m int) (collection.Iterator[collection.Pair[int, int64]], error) {
		return collection.SliceIterator(genRecords(1, m, 100, 10)), nil
	})
	require.ErrorIs(t, err, memory.ErrOutOfMemory)
	require.ErrorContains(t, err, "data file's record writer")
}

// shuffleHeapInput is map m's input: n records with keys in [0, keys), generated as read so the
// input takes no heap.
func shuffleHeapInput(m, n, keys int) collection.Iterator[collection.Pair[int, int64]] {
	x, i := uint64(m)*0x9e3779b97f4a7c15+1, 0
	return storage.FuncIterator(func() (collection.Pair[int, int64], bool, error) {
		if i == n {
			return collection.Pair[int, int64]{}, false, nil
		}
		i++
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return collection.Pair[int, int64]{Key: int(x % uint64(keys)), Value: 1}, true, nil
	}, nil)
}

// A whole shuffle with map-side and reduce-side spills keeps the live heap within the budget
// plus the stated slack under Strict accounting, at two data sizes 10x apart, and its peak does
// not grow with the data. The same shuffle under SparkAllowances is measured for comparison.
func TestStrictShuffleHeapBound(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("heap measurement: not in -short or -race runs")
	}
	const budget = 4 << 20
	run := func(t *testing.T, acc memory.Accounting, records int) memtest.Peak {
		var sum int64
		var writes []WriteMetrics
		var reads []ReadMetrics
		peak := memtest.Measure(func() {
			// Both sides spill whatever the schedule: every collection spills after a sixteenth
			// of a map task's records at the latest.
			e := newTestEnvAccounting(t, budget, acc, RunnerConfig{Cores: 2, Shuffle: Config{
				Spill: collection.SpillConfig{InitialThreshold: collection.NoInitialThreshold, ForceSpillElements: int64(records / 64)},
			}}, nil)
			dep := intDep(e.runner, 4, true, true, false)
			var err error
			writes, err = RunMapStage(context.Background(), e.runner, dep, 4, func(_ context.Context, _ *TaskContext, m int) (collection.Iterator[collection.Pair[int, int64]], error) {
				return shuffleHeapInput(m, records/4, records), nil
			})
			require.NoError(t, err)
			reads = make([]ReadMetrics, 4)
			sums := make([]int64, 4)
			require.NoError(t, e.runner.Run(context.Background(), 4, func(ctx context.Context, tc *TaskContext, p int) error {
				r, err := NewReader(ctx, tc, dep, p)
				if err != nil {
					return err
				}
				defer r.Close()
				for r.Next() {
					sums[p] += r.Value().Value
				}
				reads[p] = r.Metrics()
				return r.Err()
			}))
			for _, s := range sums {
				sum += s
			}
		})
		require.Equal(t, int64(records/4*4), sum, "every record counted once")
		var mapSpills, reduceSpills, inFlight int64
		for _, w := range writes {
			mapSpills += w.Spills
		}
		for _, r := range reads {
			reduceSpills += r.Spills
			inFlight = max(inFlight, r.PeakBytesInFlight)
		}
		t.Logf("%s, %d records: %d map-side spills, %d reduce-side spills, peak in flight %d; %s", acc, records, mapSpills, reduceSpills, inFlight, peak)
		require.Positive(t, mapSpills, "map side spills")
		require.Positive(t, reduceSpills, "reduce side spills")
		return peak
	}
	bound := memtest.StrictBound(budget)
	for _, acc := range []memory.Accounting{memory.Strict, memory.SparkAllowances} {
		t.Run(acc.String(), func(t *testing.T) {
			small, large := run(t, acc, 400_000), run(t, acc, 4_000_000)
			if acc != memory.Strict {
				return // for comparison only
			}
			memtest.Require(t, small, bound)
			memtest.Require(t, large, bound)
			memtest.RequireFlat(t, small, large, bound.Slack)
		})
	}
}

// pinned is a consumer of the reduce task that cannot spill: the aggregation that asks for
// memory while the fetcher holds loaded segments.
type pinned struct{ memory.ConsumerBase }

func (*pinned) Spill(int64, memory.Consumer) (int64, error) { return 0, nil }

// A strict fetcher gives its loaded segments back when another consumer of the task is short of
// memory: they are streamed from their files instead, every record is still read once, and the
// other consumer gets what it asked for.
func TestStrictFetchShedsLoadedSegments(t *testing.T) {
	e := newTestEnv(t, 64<<20, RunnerConfig{})
	dep, inputs := bypassShuffle(t, e, 2, 6, 1000, 1<<20)
	blocks, err := e.runner.registry.MapSizesByReduce(dep.ShuffleID, 0)
	require.NoError(t, err)
	var total int64
	for _, b := range blocks {
		total += b.Size
	}
	const budget, decode = 1 << 20, 40 << 10
	require.Less(t, total, int64(budget-decode), "every segment can be loaded at once")
	tm, mem := reduceTask(t, budget)
	ctx := context.Background()
	f, err := newFetcher(ctx, e.disk, blocks, 2, fetchLimits{maxInFlight: budget, maxToMem: budget, mem: mem, decode: decode})
	require.NoError(t, err)
	f.wg.Wait() // the prefetcher loaded every segment and ended
	require.Equal(t, decode+total, mem.Used())

	agg := &pinned{}
	agg.Init(tm, memory.OnHeap, "aggregation", agg)
	got, err := agg.Acquire(ctx, budget-decode)
	require.NoError(t, err)
	require.Equal(t, int64(budget-decode), got, "the loaded segments were given back")
	require.Equal(t, int64(decode), mem.Used())

	it := newRecordIterator(ctx, f, dep.KeyCodec, dep.ValueCodec)
	var n int
	for it.Next() {
		n++
	}
	require.NoError(t, it.Err())
	require.Equal(t, len(partitionModel(dep, inputs, 0)), n, "every record of the partition read once")
	c := it.counters()
	require.Equal(t, int64(len(blocks)), c.streamed, "every segment streamed")
	require.NoError(t, it.Close())
	agg.Free(got)
}
