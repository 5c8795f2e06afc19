package shuffle

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/memory/memtest"
	"github.com/spillway/spillway/storage"
)

// sorterEnv is one task's memory and disk scope for testing a shuffleExternalSorter alone. Its
// cleanup checks that the task leaked no memory and that no file is left.
type sorterEnv struct {
	mm    *memory.UnifiedManager
	tm    *memory.TaskManager
	disk  *storage.DiskBlockManager
	scope *storage.Scope
}

func newSorterEnv(t *testing.T, cfg memory.Config) *sorterEnv {
	t.Helper()
	cfg.ReservedMemory, cfg.Fraction = memory.NoReservedMemory, 1
	if cfg.NumCores == 0 {
		cfg.NumCores = 1
	}
	mm, err := memory.NewUnifiedManager(cfg)
	require.NoError(t, err)
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{t.TempDir()}})
	require.NoError(t, err)
	e := &sorterEnv{mm: mm, tm: memory.NewTaskManager(mm, 1, memory.TaskConfig{}), disk: disk, scope: disk.NewScope()}
	t.Cleanup(func() {
		require.Zero(t, e.tm.Close(), "memory leaked by the task")
		require.NoError(t, e.scope.Close())
		require.Zero(t, disk.Files(), "block files left")
		require.Zero(t, countFiles(t, disk.LocalDirs()), "files left")
		require.NoError(t, disk.Close())
	})
	return e
}

func (e *sorterEnv) sorter(partitions, initialSize int, useRadix bool) *shuffleExternalSorter {
	return newShuffleExternalSorter(e.tm, e.scope, "test sorter",
		serializedSorterConfig{partitions: partitions, initialSize: initialSize, useRadix: useRadix})
}

// sortedRecords returns the sorter's records in sorted order, read through their pointers.
func sortedRecords(s *shuffleExternalSorter) (parts []int, recs [][]byte) {
	for _, w := range s.inMem.sorted() {
		p := packedPointer(w)
		page, off := s.byNumber[p.pageNumber()], p.offset()
		n := int64(page[off]) | int64(page[off+1])<<8 | int64(page[off+2])<<16 | int64(page[off+3])<<24
		parts = append(parts, p.partition())
		recs = append(recs, page[off+recordLengthBytes:off+recordLengthBytes+n])
	}
	return parts, recs
}

// PRP-01..06 (PackedRecordPointerSuite).
func TestPackedRecordPointer(t *testing.T) {
	for _, mode := range []memory.Mode{memory.OnHeap, memory.OffHeap} { // PRP-01 heap, PRP-02 offHeap
		t.Run("PRP-0x/"+mode.String(), func(t *testing.T) {
			e := newSorterEnv(t, memory.Config{SystemMemory: 1 << 20, OffHeapEnabled: mode == memory.OffHeap, OffHeapSize: 1 << 20})
			s := e.sorter(1, 4, false)
			require.Equal(t, mode, s.Mode())
			p0, err := s.allocate(context.Background(), 128, 128)
			require.NoError(t, err)
			p1, err := s.allocate(context.Background(), 128, 128)
			require.NoError(t, err)
			addr := memory.EncodePageNumberAndOffset(p1.Number(), 42)
			packed := packPointer(addr, 360)
			require.Equal(t, 360, packed.partition())
			require.Equal(t, p1.Number(), packed.pageNumber())
			require.Equal(t, int64(42), packed.offset())
			require.Equal(t, addr, packed.recordPointer())
			s.free(p0)
			s.free(p1)
		})
	}
	t.Run("PRP-03 maximum partition id", func(t *testing.T) {
		require.Equal(t, MaxSerializedPartitions-1, packPointer(0, MaxSerializedPartitions-1).partition())
	})
	t.Run("PRP-04 partition ids past the maximum panic", func(t *testing.T) {
		require.PanicsWithValue(t, "shuffle: partition id 16777216 outside [0, 16777216) of a packed record pointer",
			func() { packPointer(0, MaxSerializedPartitions) })
		require.Panics(t, func() { packPointer(0, -1) })
	})
	t.Run("PRP-05 maximum offset", func(t *testing.T) {
		addr := memory.EncodePageNumberAndOffset(memory.PageTableSize-1, maxPackedPageSize-1)
		p := packPointer(addr, MaxSerializedPartitions-1)
		require.Equal(t, addr, p.recordPointer())
		require.Equal(t, MaxSerializedPartitions-1, p.partition())
	})
	t.Run("PRP-06 offsets past the maximum panic", func(t *testing.T) {
		// Spark drops the 28th bit silently (the pointer unpacks to offset 0); here it is misuse.
		require.PanicsWithValue(t, "shuffle: offset 134217728 in page 0 does not fit the 27 bits of a packed record pointer (pages of at most 134217728 bytes)",
			func() { packPointer(memory.EncodePageNumberAndOffset(0, maxPackedPageSize), 0) })
	})
}

// SIMS-01..03 (ShuffleInMemorySorterSuite and its radix subclass), through the external sorter
// that owns the array.
func TestShuffleInMemorySorter(t *testing.T) {
	for _, useRadix := range []bool{false, true} {
		t.Run(fmt.Sprintf("radix=%v", useRadix), func(t *testing.T) { testShuffleInMemorySorter(t, useRadix) })
	}
}

func testShuffleInMemorySorter(t *testing.T, useRadix bool) {
	ctx := context.Background()
	t.Run("SIMS-01 empty", func(t *testing.T) {
		e := newSorterEnv(t, memory.Config{SystemMemory: 1 << 20})
		s := e.sorter(4, 100, useRadix)
		parts, _ := sortedRecords(s)
		require.Empty(t, parts)
		require.NoError(t, s.cleanup())
	})
	t.Run("SIMS-02 records sorted by partition", func(t *testing.T) {
		e := newSorterEnv(t, memory.Config{SystemMemory: 1 << 20})
		s := e.sorter(4, 100, useRadix)
		words := []string{"Boba", "Pearls", "Tapioca", "Taho", "Condensed Milk", "Jasmine", "Milk Tea", "Lychee", "Mango"}
		part := NewHashPartitioner[string](4)
		want := map[int][]string{}
		for _, w := range words {
			p := part.Partition(w)
			require.NoError(t, s.insertRecord(ctx, []byte(w), p))
			want[p] = append(want[p], w)
		}
		parts, recs := sortedRecords(s)
		require.True(t, slices.IsSorted(parts), "partition ids %v", parts)
		got := map[int][]string{}
		for i, r := range recs {
			got[parts[i]] = append(got[parts[i]], string(r))
		}
		require.Equal(t, want, got, "records recovered through their pointers, in insertion order within a partition")
		require.NoError(t, s.cleanup())
	})
	t.Run("SIMS-03 random partition ids, growing from 4 entries", func(t *testing.T) {
		seed := rand.Uint64()
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 1))
		e := newSorterEnv(t, memory.Config{SystemMemory: 64 << 20})
		s := e.sorter(MaxSerializedPartitions, 4, useRadix)
		const n = 128_000
		ids := make([]int, n)
		rec := make([]byte, 4)
		for i := range ids {
			ids[i] = rng.IntN(MaxSerializedPartitions)
			rec[0], rec[1], rec[2], rec[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
			require.NoError(t, s.insertRecord(ctx, rec, ids[i]))
		}
		parts, recs := sortedRecords(s)
		require.Equal(t, slices.Sorted(slices.Values(ids)), parts)
		for i := 1; i < n; i++ {
			if parts[i] == parts[i-1] {
				a := int(recs[i-1][0]) | int(recs[i-1][1])<<8 | int(recs[i-1][2])<<16
				b := int(recs[i][0]) | int(recs[i][1])<<8 | int(recs[i][2])<<16
				require.Less(t, a, b, "equal partition ids keep their insertion order")
			}
		}
		require.Zero(t, s.metrics.spills)
		require.NoError(t, s.cleanup())
	})
}

// SES-01 nested spill should be no-op: once a spill emptied the sorter, the allocation of its new
// pointer array may make the task spill it again; that nested spill finds no record and writes
// nothing, and the allocation fails with the sizes involved.
func TestShuffleExternalSorterNestedSpillIsNoOp(t *testing.T) {
	ctx := context.Background()
	e := newSorterEnv(t, memory.Config{SystemMemory: 1 << 20, PageSize: 4 << 10})
	s := e.sorter(1, 100, false)
	for s.inMem.page == nil || s.inMem.hasSpaceForAnotherRecord() {
		require.NoError(t, s.insertRecord(ctx, []byte{1}, 0))
	}
	released, err := s.Spill(math.MaxInt64, s)
	require.NoError(t, err)
	require.Equal(t, int64(4<<10+800), released, "the page and the pointer array")
	require.Len(t, s.spills, 1)
	h := &holder{}
	h.Init(e.tm, memory.OnHeap, "holder", h)
	got, err := h.Acquire(ctx, e.mm.MaxOnHeapStorage()-e.mm.StorageUsed()-400)
	require.NoError(t, err)
	require.Positive(t, got)
	err = s.insertRecord(ctx, []byte{1}, 0)
	require.ErrorIs(t, err, memory.ErrOutOfMemory)
	require.ErrorContains(t, err, "unable to acquire 800 B of memory, got 400 B")
	require.Len(t, s.spills, 1, "the nested spill wrote nothing")
	require.Zero(t, s.Used())
	h.Free(got)
	require.NoError(t, s.cleanup())
}

// TestShuffleExternalSorterExactAccounting: the task holds exactly the sorter's pages and pointer
// array, through growth and spills, in both memory modes.
func TestShuffleExternalSorterExactAccounting(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []memory.Mode{memory.OnHeap, memory.OffHeap} {
		t.Run(mode.String(), func(t *testing.T) {
			e := newSorterEnv(t, memory.Config{SystemMemory: 256 << 10, PageSize: 16 << 10,
				OffHeapEnabled: mode == memory.OffHeap, OffHeapSize: 256 << 10})
			s := e.sorter(7, 16, true)
			rec := make([]byte, 40)
			for i := range 20_000 {
				require.NoError(t, s.insertRecord(ctx, rec[:i%len(rec)], i%7))
				want := s.inMem.page.Size()
				for _, p := range s.pages {
					want += p.Size()
				}
				require.Equal(t, want, s.Used(), "pages and pointer array, after %d records", i+1)
				require.Equal(t, want, e.mm.ExecutionUsedForTask(e.tm.ID()))
			}
			require.Positive(t, s.metrics.spills)
			require.NoError(t, s.cleanup())
			require.Zero(t, s.Used())
			require.Zero(t, e.mm.ExecutionUsed())
		})
	}
}

// serializedRun writes one map output of dep from input with a SerializedWriter (tuned by tune),
// registers it and returns its status and metrics, or the task's error.
func serializedRun[V any](t *testing.T, e *testEnv, dep *Dependency[int, V, V], input collection.Iterator[collection.Pair[int, V]],
	tune func(*SerializedWriter[int, V])) (MapStatus, WriteMetrics, error) {
	t.Helper()
	require.NoError(t, e.runner.registry.RegisterShuffle(dep.ShuffleID, 1, dep.Partitioner.NumPartitions()))
	var st MapStatus
	var m WriteMetrics
	err := e.runner.Run(context.Background(), 1, func(ctx context.Context, tc *TaskContext, _ int) error {
		w, err := NewSerializedWriter(tc, dep, 0)
		if err != nil {
			return err
		}
		if tune != nil {
			tune(w)
		}
		st, err = w.Write(ctx, input)
		m = w.Metrics()
		if err != nil {
			return err
		}
		return e.runner.registry.RegisterMapOutput(st)
	})
	return st, m, err
}

// readAll reads every reduce partition of a shuffle back.
func readAll[V any](t *testing.T, e *testEnv, dep *Dependency[int, V, V]) [][]collection.Pair[int, V] {
	t.Helper()
	out := make([][]collection.Pair[int, V], dep.Partitioner.NumPartitions())
	for p := range out {
		recs, _, err := readSegments(t, e, dep.ShuffleID, p, dep.ValueCodec)
		require.NoError(t, err)
		out[p] = recs
	}
	return out
}

// byPartition is the model of a map output: the records of each partition in input order.
func byPartition[V any](part Partitioner[int], in []collection.Pair[int, V]) [][]collection.Pair[int, V] {
	out := make([][]collection.Pair[int, V], part.NumPartitions())
	for _, kv := range in {
		p := part.Partition(kv.Key)
		out[p] = append(out[p], kv)
	}
	return out
}

func pairs(keys ...int) []collection.Pair[int, int64] {
	out := make([]collection.Pair[int, int64], len(keys))
	for i, k := range keys {
		out[i] = collection.Pair[int, int64]{Key: k, Value: int64(10 * i)}
	}
	return out
}

func bytesDep(r *Runner, partitions int) *Dependency[int, []byte, []byte] {
	return &Dependency[int, []byte, []byte]{ShuffleID: r.NewShuffleID(), Partitioner: NewHashPartitioner[int](partitions),
		KeyCodec: storage.VarintCodec[int]{}, ValueCodec: storage.BytesCodec{}}
}

// USW-01..10 (UnsafeShuffleWriterSuite): 4 partitions, records read back per partition.
func TestSerializedWriter(t *testing.T) {
	t.Run("USW-01 write only once", func(t *testing.T) {
		e := newTestEnv(t, 8<<20, RunnerConfig{Cores: 1})
		dep := intDep(e.runner, 4, false, false, false)
		require.NoError(t, e.runner.Run(context.Background(), 1, func(ctx context.Context, tc *TaskContext, _ int) error {
			w, err := NewSerializedWriter(tc, dep, 0)
			require.NoError(t, err)
			st, err := w.Write(ctx, collection.SliceIterator(pairs(1)))
			require.NoError(t, err)
			_, err = w.Write(ctx, collection.SliceIterator(pairs(1)))
			require.ErrorContains(t, err, "SerializedWriter.Write called twice")
			return e.runner.registry.removeFiles(&st)
		}))
	})
	t.Run("USW-02 write failure propagates", func(t *testing.T) {
		e := newTestEnv(t, 8<<20, RunnerConfig{Cores: 1, Shuffle: Config{Spill: collection.SpillConfig{ForceSpillElements: 100}}})
		injected := errors.New("injected input failure")
		_, _, err := serializedRun(t, e, intDep(e.runner, 4, false, false, false), failingInput(1000, injected), nil)
		require.ErrorIs(t, err, injected)
	})
	t.Run("USW-03 empty iterator", func(t *testing.T) {
		e := newTestEnv(t, 8<<20, RunnerConfig{Cores: 1})
		dep := intDep(e.runner, 4, false, false, false)
		st, m, err := serializedRun(t, e, dep, collection.SliceIterator(pairs()), nil)
		require.NoError(t, err)
		require.Equal(t, []int64{0, 0, 0, 0}, st.Lengths)
		require.Equal(t, WriteMetrics{Writer: "serialized"}, m)
		n, err := fileLength(e.disk, st.DataBlock())
		require.NoError(t, err)
		require.Zero(t, n, "the data file exists, empty")
	})
	t.Run("USW-04 without spilling", func(t *testing.T) {
		e := newTestEnv(t, 8<<20, RunnerConfig{Cores: 1})
		dep := intDep(e.runner, 4, false, false, false)
		in := pairs(0, 1, 2, 3)
		st, m, err := serializedRun(t, e, dep, collection.SliceIterator(in), nil)
		require.NoError(t, err)
		for _, l := range st.Lengths {
			require.Equal(t, st.Lengths[0], l, "equal records, equal segments")
		}
		n, err := fileLength(e.disk, st.DataBlock())
		require.NoError(t, err)
		require.Equal(t, st.Bytes(), n)
		require.Equal(t, int64(4), m.RecordsWritten)
		require.Equal(t, n, m.BytesWritten)
		require.Zero(t, m.Spills)
		require.Zero(t, m.DiskBytesSpilled)
		require.Zero(t, m.MemoryBytesSpilled)
		require.Equal(t, byPartition(dep.Partitioner, in), readAll(t, e, dep))
	})
	// USW-05: keys 1,2,3,4, a spill, then 4,2: two spill files merged, fast (concatenated) and
	// slow (decoded and written again), with each compression.
	for _, comp := range []storage.Compression{storage.CompressionNone, storage.CompressionS2, storage.CompressionZstd} {
		for _, fast := range []bool{true, false} {
			t.Run(fmt.Sprintf("USW-05 merge spills/%v/fast=%v", comp, fast), func(t *testing.T) {
				e := newTestEnv(t, 16<<20, RunnerConfig{Cores: 1, Shuffle: Config{Spill: collection.SpillConfig{ForceSpillElements: 4, Compression: comp}}})
				dep := intDep(e.runner, 4, false, false, false)
				in := pairs(1, 2, 3, 4, 4, 2)
				st, m, err := serializedRun(t, e, dep, collection.SliceIterator(in), func(w *SerializedWriter[int, int64]) { w.fastMerge = fast })
				require.NoError(t, err)
				require.Equal(t, int64(1), m.Spills, "one spill, then the last records as a second spill file")
				require.Positive(t, m.MemoryBytesSpilled)
				require.Positive(t, m.DiskBytesSpilled)
				if fast {
					require.Equal(t, m.DiskBytesSpilled, m.BytesWritten, "the spill files concatenated")
				}
				n, err := fileLength(e.disk, st.DataBlock())
				require.NoError(t, err)
				require.Equal(t, n, m.BytesWritten)
				require.Equal(t, n, st.Bytes())
				require.Equal(t, byPartition(dep.Partitioner, in), readAll(t, e, dep))
			})
		}
	}
	t.Run("USW-06 enough data to spill", func(t *testing.T) {
		// Records of a tenth of the budget, each on a page of its own: the tenth does not fit.
		const budget = 8 << 20
		e := newTestEnvPages(t, budget, 64<<10, RunnerConfig{Cores: 1})
		dep := bytesDep(e.runner, 4)
		in := make([]collection.Pair[int, []byte], 11)
		for i := range in {
			in[i] = collection.Pair[int, []byte]{Key: i, Value: bytesOf(i, budget/10)}
		}
		_, m, err := serializedRun(t, e, dep, collection.SliceIterator(in), nil)
		require.NoError(t, err)
		require.Equal(t, int64(1), m.Spills, "one spill and the last records: 2 spill files")
		require.Equal(t, byPartition(dep.Partitioner, in), readAll(t, e, dep))
	})
	t.Run("USW-07 sort buffer expansion and spill", func(t *testing.T) {
		// 4097 records: the pointer array grows from 1024 entries (old and new held together)
		// until it has room for them all; a budget of 240 KiB cannot hold a 64 KiB array with
		// the 32 KiB one it replaces (and the page and buffers), so the sorter spills instead:
		// once with the comparison sort (2/3 of the array usable), twice with the radix sort
		// (1/2), as Spark's 2 and 3 spill files.
		in := make([]collection.Pair[int, int64], 4097)
		for i := range in {
			in[i] = collection.Pair[int, int64]{Key: i, Value: int64(i)}
		}
		for _, c := range []struct {
			radix  bool
			budget int64
			spills int64
		}{{false, 8 << 20, 0}, {true, 8 << 20, 0}, {false, 240 << 10, 1}, {true, 240 << 10, 2}} {
			t.Run(fmt.Sprintf("radix=%v/budget=%d", c.radix, c.budget), func(t *testing.T) {
				e := newTestEnvPages(t, c.budget, 64<<10, RunnerConfig{Cores: 1, Shuffle: Config{Spill: collection.SpillConfig{BatchBytes: 16 << 10}}})
				dep := intDep(e.runner, 4, false, false, false)
				_, m, err := serializedRun(t, e, dep, collection.SliceIterator(in), func(w *SerializedWriter[int, int64]) {
					w.initialSize, w.useRadix = 1024, c.radix
				})
				require.NoError(t, err)
				require.Equal(t, c.spills, m.Spills)
				if c.spills == 0 {
					inMem := shuffleInMemorySorter{useRadix: c.radix}
					final := 1024
					for inMem.usableCapacity(final) < len(in) {
						final *= 2
					}
					require.GreaterOrEqual(t, m.PeakExecutionBytes, int64(final+final/2)*8, "the last two arrays held together")
				}
				require.Equal(t, byPartition(dep.Partitioner, in), readAll(t, e, dep))
			})
		}
	})
	t.Run("USW-08/09 records larger than the write buffer and than a page", func(t *testing.T) {
		const page = 64 << 10
		e := newTestEnvPages(t, 16<<20, page, RunnerConfig{Cores: 1})
		dep := bytesDep(e.runner, 4)
		// Key 1 byte, value length 3 bytes: a value of page-8 bytes fills a page exactly.
		in := []collection.Pair[int, []byte]{
			{Key: 0, Value: bytesOf(0, 5<<19)}, // USW-08: 2.5 MiB
			{Key: 1, Value: bytesOf(1, page-8)},
			{Key: 2, Value: bytesOf(2, page-4)},
			{Key: 3, Value: bytesOf(3, page)},
			{Key: 4, Value: []byte("small")},
		}
		_, _, err := serializedRun(t, e, dep, collection.SliceIterator(in), nil)
		require.NoError(t, err)
		require.Equal(t, byPartition(dep.Partitioner, in), readAll(t, e, dep))
	})
	t.Run("USW-10 spill files deleted after an error, peak memory", func(t *testing.T) {
		e := newTestEnv(t, 8<<20, RunnerConfig{Cores: 1, Shuffle: Config{Spill: collection.SpillConfig{ForceSpillElements: 100}}})
		injected := errors.New("injected input failure")
		_, m, err := serializedRun(t, e, intDep(e.runner, 4, false, false, false), failingInput(1000, injected), nil)
		require.ErrorIs(t, err, injected)
		require.Equal(t, int64(9), m.Spills)
		require.GreaterOrEqual(t, m.PeakExecutionBytes, e.mm.PageSize()+defaultInitialSortBufferSize*8, "a page and the pointer array")
		// The test environment's cleanup checks that no file and no memory is left.
	})
	t.Run("too many partitions", func(t *testing.T) {
		e := newTestEnv(t, 8<<20, RunnerConfig{Cores: 1})
		dep := intDep(e.runner, MaxSerializedPartitions+1, false, false, false)
		require.False(t, canUseSerializedShuffle(dep))
		require.NoError(t, e.runner.Run(context.Background(), 1, func(ctx context.Context, tc *TaskContext, _ int) error {
			_, err := NewSerializedWriter(tc, dep, 0)
			require.ErrorContains(t, err, "at most 16777216 reduce partitions, shuffle 0 has 16777217")
			w, err := NewWriter(tc, dep, 0)
			require.NoError(t, err)
			require.Equal(t, "sort", w.Metrics().Writer)
			return nil
		}))
	})
}

// newTestEnvPages is newTestEnv with the Tungsten page size set.
func newTestEnvPages(t *testing.T, memBytes, pageSize int64, cfg RunnerConfig) *testEnv {
	t.Helper()
	mm, err := memory.NewUnifiedManager(memory.Config{
		SystemMemory: memBytes, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 2, PageSize: pageSize,
	})
	require.NoError(t, err)
	return newTestEnvManager(t, mm, cfg)
}

// newTestEnvManager is newTestEnv on a given memory manager.
func newTestEnvManager(t *testing.T, mm *memory.UnifiedManager, cfg RunnerConfig) *testEnv {
	t.Helper()
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{t.TempDir()}})
	require.NoError(t, err)
	cfg.Memory, cfg.Disk = mm, disk
	r, err := NewRunner(cfg)
	require.NoError(t, err)
	e := &testEnv{mm: mm, disk: disk, runner: r}
	t.Cleanup(func() {
		require.NoError(t, r.Close())
		e.requireClean(t)
		require.NoError(t, disk.Close())
	})
	return e
}

// bytesOf is n bytes depending on seed.
func bytesOf(seed, n int) []byte {
	b := make([]byte, n)
	x := uint64(seed)*0x9e3779b97f4a7c15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// TestSerializedWriterCancelled: a map cancelled while its sorter has spilled leaves no memory
// and no file.
func TestSerializedWriterCancelled(t *testing.T) {
	e := newTestEnv(t, 8<<20, RunnerConfig{Cores: 1, Shuffle: Config{Spill: collection.SpillConfig{ForceSpillElements: 500}}})
	dep := intDep(e.runner, 8, false, false, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	i := 0
	input := storage.FuncIterator(func() (collection.Pair[int, int64], bool, error) {
		if i++; i == 5000 {
			cancel() // after several spills
		}
		return collection.Pair[int, int64]{Key: i, Value: 1}, true, nil
	}, nil)
	require.NoError(t, e.runner.registry.RegisterShuffle(dep.ShuffleID, 1, 8))
	var m WriteMetrics
	err := e.runner.Run(ctx, 1, func(ctx context.Context, tc *TaskContext, _ int) error {
		w, err := NewSerializedWriter(tc, dep, 0)
		require.NoError(t, err)
		_, err = w.Write(ctx, input)
		m = w.Metrics()
		return err
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Positive(t, m.Spills)
	require.Zero(t, e.mm.ExecutionUsed())
	require.Zero(t, countFiles(t, e.disk.LocalDirs()))
}

// TestSerializedWriterOffHeapRoundTrip: with off-heap pages, spilling by memory (not by count)
// and merging, the reduce side reads every record back.
func TestSerializedWriterOffHeapRoundTrip(t *testing.T) {
	mm, err := memory.NewUnifiedManager(memory.Config{SystemMemory: 4 << 20, ReservedMemory: memory.NoReservedMemory, Fraction: 1,
		NumCores: 1, OffHeapEnabled: true, OffHeapSize: 512 << 10, PageSize: 64 << 10})
	require.NoError(t, err)
	e := newTestEnvManager(t, mm, RunnerConfig{Cores: 1})
	dep := intDep(e.runner, 17, false, false, false)
	in := genRecords(5, 0, 100_000, 1<<30)
	_, m, err := serializedRun(t, e, dep, collection.SliceIterator(in), nil)
	require.NoError(t, err)
	require.Positive(t, m.Spills)
	require.LessOrEqual(t, m.PeakExecutionBytes, int64(512<<10))
	require.Equal(t, byPartition(dep.Partitioner, in), readAll(t, e, dep))
}

// TestSerializedWriterOffHeapLiveHeap: with off-heap Tungsten memory, the records a
// SerializedWriter holds (tens of MiB of pages and pointer arrays) stay out of the Go heap, whose
// live size grows by no more than the writer's buffers; on-heap, the same records are live heap.
func TestSerializedWriterOffHeapLiveHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2M records twice")
	}
	for _, mode := range []memory.Mode{memory.OffHeap, memory.OnHeap} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := memory.Config{SystemMemory: 256 << 20, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 1}
			if mode == memory.OffHeap {
				cfg.SystemMemory, cfg.OffHeapEnabled, cfg.OffHeapSize = 16<<20, true, 256<<20
			}
			mm, err := memory.NewUnifiedManager(cfg)
			require.NoError(t, err)
			e := newTestEnvManager(t, mm, RunnerConfig{Cores: 1})
			dep := intDep(e.runner, 300, false, false, false)
			const n = 2_000_000
			i := 0
			input := storage.FuncIterator(func() (collection.Pair[int, int64], bool, error) {
				if i == n {
					return collection.Pair[int, int64]{}, false, nil
				}
				i++
				return collection.Pair[int, int64]{Key: i, Value: int64(i) << 20}, true, nil
			}, nil)
			var m WriteMetrics
			peak := memtest.Measure(func() {
				_, m, err = serializedRun(t, e, dep, input, nil)
			})
			require.NoError(t, err)
			require.Zero(t, m.Spills)
			t.Logf("%d records, peak execution %d bytes %s; %v", n, m.PeakExecutionBytes, mode, peak)
			require.Greater(t, m.PeakExecutionBytes, int64(32<<20), "the records held in pages")
			if mode == memory.OffHeap {
				memtest.Require(t, peak, memtest.Bound{Budget: 0, Slack: 8 << 20})
			} else {
				require.Greater(t, peak.Growth(), int64(32<<20), "on-heap pages are live heap")
			}
		})
	}
}
