package shuffle

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// testEnv is a runner on a fresh memory manager and disk block manager whose cleanup checks that
// nothing is left: no execution or storage memory, no block file, no lock.
type testEnv struct {
	mm     *memory.UnifiedManager
	disk   *storage.DiskBlockManager
	runner *Runner
}

// newTestEnv builds a runner with memBytes of unified memory (no reserved memory, fraction 1).
func newTestEnv(t testing.TB, memBytes int64, cfg RunnerConfig) *testEnv {
	t.Helper()
	return newTestEnvFS(t, memBytes, cfg, nil)
}

// newTestEnvFS is newTestEnv with a disk block manager whose files go through fsys (nil: the
// operating system's).
func newTestEnvFS(t testing.TB, memBytes int64, cfg RunnerConfig, fsys storage.FS) *testEnv {
	t.Helper()
	return newTestEnvAccounting(t, memBytes, memory.Strict, cfg, fsys)
}

// newTestEnvAccounting is newTestEnvFS with the memory manager's accounting switch.
func newTestEnvAccounting(t testing.TB, memBytes int64, acc memory.Accounting, cfg RunnerConfig, fsys storage.FS) *testEnv {
	t.Helper()
	mm, err := memory.NewUnifiedManager(memory.Config{
		SystemMemory: memBytes, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 2, Accounting: acc,
	})
	require.NoError(t, err)
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{t.TempDir()}, FS: fsys})
	require.NoError(t, err)
	cfg.Memory, cfg.Disk = mm, disk
	if cfg.Cores == 0 {
		cfg.Cores = 2
	}
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

// requireClean checks that no memory is held and no file exists besides registered map outputs.
func (e *testEnv) requireClean(t testing.TB) {
	t.Helper()
	require.Zero(t, e.mm.ExecutionUsed(), "execution memory in use")
	require.Zero(t, e.mm.StorageUsed(), "storage memory in use")
	require.Equal(t, e.registeredFiles(t), e.disk.Files(), "live block files besides map outputs")
	require.Equal(t, e.registeredFiles(t), countFiles(t, e.disk.LocalDirs()), "files in the local dirs besides map outputs")
}

func (e *testEnv) registeredFiles(t testing.TB) int {
	e.runner.registry.mu.Lock()
	defer e.runner.registry.mu.Unlock()
	n := 0
	for _, s := range e.runner.registry.shuffles {
		for _, st := range s.outputs {
			if st != nil {
				n += 2
			}
		}
	}
	return n
}

// countFiles counts the regular files under dirs.
func countFiles(t testing.TB, dirs []string) int {
	t.Helper()
	n := 0
	for _, d := range dirs {
		require.NoError(t, filepath.WalkDir(d, func(_ string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if de.Type().IsRegular() {
				n++
			}
			return nil
		}))
	}
	return n
}

// intDep is a shuffle of int keys and int64 values summed by key.
func intDep(r *Runner, partitions int, agg, mapSideCombine, ordered bool) *Dependency[int, int64, int64] {
	d := &Dependency[int, int64, int64]{
		ShuffleID:     r.NewShuffleID(),
		Partitioner:   NewHashPartitioner[int](partitions),
		KeyCodec:      storage.VarintCodec[int]{},
		ValueCodec:    storage.VarintCodec[int64]{},
		CombinerCodec: storage.VarintCodec[int64]{},
	}
	if agg {
		d.Aggregator = &Aggregator[int, int64, int64]{
			CreateCombiner: func(v int64) int64 { return v },
			MergeValue:     func(c, v int64) int64 { return c + v },
			MergeCombiners: func(a, b int64) int64 { return a + b },
		}
		d.MapSideCombine = mapSideCombine
	}
	if ordered {
		d.KeyOrdering = func(a, b int) int { return a - b }
	}
	return d
}

// genRecords returns the records of map partition m: n pairs (key, 1) with keys drawn from
// [0, keys) by a deterministic sequence seeded with seed and m.
func genRecords(seed uint64, m, n, keys int) []collection.Pair[int, int64] {
	x := seed*0x9e3779b97f4a7c15 + uint64(m)*0xbf58476d1ce4e5b9 + 1
	out := make([]collection.Pair[int, int64], n)
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = collection.Pair[int, int64]{Key: int(x % uint64(keys)), Value: int64(i%7) + 1}
	}
	return out
}

// writeMapOutputs runs a map stage on e's runner with the given writer constructor and registers
// the outputs, without going through NewWriter's selection.
func writeMapOutputs[V any](t testing.TB, e *testEnv, shuffleID, numPartitions int, inputs [][]collection.Pair[int, V],
	newWriter func(tc *TaskContext, mapIndex int) (Writer[int, V], error)) []MapStatus {
	t.Helper()
	reg := e.runner.registry
	require.NoError(t, reg.RegisterShuffle(shuffleID, len(inputs), numPartitions))
	statuses := make([]MapStatus, len(inputs))
	err := e.runner.Run(context.Background(), len(inputs), func(ctx context.Context, tc *TaskContext, m int) error {
		w, err := newWriter(tc, m)
		if err != nil {
			return err
		}
		st, err := w.Write(ctx, collection.SliceIterator(inputs[m]))
		if err != nil {
			return err
		}
		statuses[m] = st
		return reg.RegisterMapOutput(st)
	})
	require.NoError(t, err)
	return statuses
}

// readSegments reads reduce partition reduceID of a shuffle with the fetcher, outside any task.
func readSegments[V any](t testing.TB, e *testEnv, shuffleID, reduceID int, values storage.Codec[V]) ([]collection.Pair[int, V], fetchCounters, error) {
	t.Helper()
	reg := e.runner.registry
	n, err := reg.NumPartitions(shuffleID)
	require.NoError(t, err)
	blocks, err := reg.MapSizesByReduce(shuffleID, reduceID)
	require.NoError(t, err)
	cfg := e.runner.cfg.Shuffle
	f, err := newFetcher(context.Background(), e.disk, blocks, n, fetchLimits{maxInFlight: cfg.MaxBytesInFlight, maxToMem: cfg.MaxBlockSizeFetchToMem})
	require.NoError(t, err)
	it := newRecordIterator(context.Background(), f, storage.VarintCodec[int]{}, values)
	var out []collection.Pair[int, V]
	for it.Next() {
		out = append(out, it.Value())
	}
	c := it.counters()
	err = it.Err()
	require.NoError(t, it.Close())
	return out, c, err
}
