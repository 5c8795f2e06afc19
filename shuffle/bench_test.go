package shuffle

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/memory/memtest"
	"github.com/spillway/spillway/storage"
)

// BenchmarkShuffle runs a whole shuffle (map stage and reduce stage) of 4 maps × 50,000 (int,
// int64) records over 10,000 keys into 16 partitions, with each writer, with and without
// aggregation; memory is ample, so nothing spills.
func BenchmarkShuffle(b *testing.B) {
	inputs := make([][]collection.Pair[int, int64], 4)
	records := 0
	for m := range inputs {
		inputs[m] = genRecords(1, m, 50000, 10000)
		records += len(inputs[m])
	}
	for _, c := range []struct {
		name    string
		bypass  int
		agg     bool
		mapSide bool
	}{
		{"bypass", 0, false, false},
		{"bypass/reduce-aggregate", 0, true, false},
		{"serialized", NoBypassMerge, false, false},
		{"sort/map-side-combine", NoBypassMerge, true, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := newTestEnv(b, 512<<20, RunnerConfig{Shuffle: Config{BypassMergeThreshold: c.bypass}})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				dep := intDep(e.runner, 16, c.agg, c.mapSide, false)
				_, err := RunMapStage(ctx, e.runner, dep, len(inputs), func(_ context.Context, _ *TaskContext, m int) (collection.Iterator[collection.Pair[int, int64]], error) {
					return collection.SliceIterator(inputs[m]), nil
				})
				require.NoError(b, err)
				err = e.runner.Run(ctx, 16, func(ctx context.Context, tc *TaskContext, p int) error {
					r, err := NewReader(ctx, tc, dep, p)
					if err != nil {
						return err
					}
					defer r.Close()
					for r.Next() {
					}
					return r.Err()
				})
				require.NoError(b, err)
				require.NoError(b, e.runner.registry.UnregisterShuffle(dep.ShuffleID))
			}
			b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkMapWriters compares the map-side writers on one map task without aggregation:
// SPILLWAY_BENCH_RECORDS (default 1,000,000) records of random (int64, int64) pairs, generated
// while they are written, into 200 partitions, with 32 MiB of execution memory: the SortWriter
// (an ExternalSorter of Go values), and the SerializedWriter with on-heap and with off-heap pages
// (32 MiB off-heap). It reports the process's CPU time per run (user and system, garbage
// collection included: on a shared machine, wall time mostly measures waiting for a core),
// records/s, the spills and the peak live heap the garbage collector found (memtest), e.g.
//
//	SPILLWAY_BENCH_RECORDS=10000000 go test ./shuffle/ -run '^$' -bench BenchmarkMapWriters -benchtime 1x
func BenchmarkMapWriters(b *testing.B) {
	records := 1_000_000
	if v := os.Getenv("SPILLWAY_BENCH_RECORDS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err)
		records = n
	}
	const budget = 32 << 20
	for _, c := range []struct {
		name    string
		offHeap bool
	}{{"sort", false}, {"serialized", false}, {"serialized-offheap", true}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := memory.Config{SystemMemory: budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 1}
			if c.offHeap {
				cfg.SystemMemory, cfg.OffHeapEnabled, cfg.OffHeapSize = 4<<20, true, budget
			}
			mm, err := memory.NewUnifiedManager(cfg)
			require.NoError(b, err)
			disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{b.TempDir()}})
			require.NoError(b, err)
			defer func() { require.NoError(b, disk.Close()) }()
			r, err := NewRunner(RunnerConfig{Memory: mm, Disk: disk, Cores: 1})
			require.NoError(b, err)
			defer func() { require.NoError(b, r.Close()) }()
			ctx := context.Background()
			var m WriteMetrics
			var peak memtest.Peak
			cpu := processCPU()
			for b.Loop() {
				dep := &Dependency[int64, int64, int64]{ShuffleID: r.NewShuffleID(), Partitioner: NewHashPartitioner[int64](200),
					KeyCodec: storage.VarintCodec[int64]{}, ValueCodec: storage.VarintCodec[int64]{}}
				x, i := uint64(1), 0
				input := storage.FuncIterator(func() (collection.Pair[int64, int64], bool, error) {
					if i == records {
						return collection.Pair[int64, int64]{}, false, nil
					}
					i++
					x ^= x << 13
					x ^= x >> 7
					x ^= x << 17
					return collection.Pair[int64, int64]{Key: int64(x >> 1), Value: int64(i)}, true, nil
				}, nil)
				peak = memtest.Measure(func() {
					err = r.Run(ctx, 1, func(ctx context.Context, tc *TaskContext, _ int) error {
						var w Writer[int64, int64]
						var err error
						if c.name == "sort" {
							w, err = NewSortWriter(tc, dep, 0)
						} else {
							w, err = NewSerializedWriter(tc, dep, 0)
						}
						if err != nil {
							return err
						}
						st, err := w.Write(ctx, input)
						m = w.Metrics()
						if err != nil {
							return err
						}
						return r.registry.removeFiles(&st)
					})
				})
				require.NoError(b, err)
			}
			b.ReportMetric((processCPU()-cpu).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(m.Spills), "spills")
			b.ReportMetric(float64(peak.Growth())/(1<<20), "peak-live-heap-MiB")
			b.ReportMetric(float64(m.PeakExecutionBytes)/(1<<20), "peak-exec-MiB")
			b.Logf("%s: %d records, %v, %s", c.name, records, fmt.Sprint(m), peak)
		})
	}
}
