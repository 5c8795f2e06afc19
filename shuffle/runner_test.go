package shuffle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// holder is a consumer that holds execution memory and never spills.
type holder struct{ memory.ConsumerBase }

func (h *holder) Spill(int64, memory.Consumer) (int64, error) { return 0, nil }

func newHolder(tc *TaskContext) *holder {
	h := &holder{}
	h.Init(tc.TaskManager(), memory.OnHeap, "holder", h)
	return h
}

// grab makes tc hold everything a task can leak: execution memory, a write lock on a new block,
// a read lock on a shared one, and a temporary file.
func grab(ctx context.Context, t *testing.T, tc *TaskContext, shared storage.BlockID) error {
	if got, err := newHolder(tc).Acquire(ctx, 1<<20); err != nil || got != 1<<20 {
		return fmt.Errorf("acquired %d: %v", got, err)
	}
	own := storage.TestBlockID(fmt.Sprintf("task-%d", tc.ID()))
	if _, ok, err := tc.Locks().LockNewBlockForWriting(ctx, tc.ID(), own, storage.MemoryOnly, false); err != nil || !ok {
		return fmt.Errorf("write lock: %v %v", ok, err)
	}
	if _, ok, err := tc.Locks().LockForReading(ctx, tc.ID(), shared, true); err != nil || !ok {
		return fmt.Errorf("read lock: %v %v", ok, err)
	}
	_, f, err := tc.Disk().CreateTempLocal()
	if err != nil {
		return err
	}
	_, err = f.Write([]byte("spill"))
	return errors.Join(err, f.Close())
}

// sharedBlock creates a block outside any task that tasks lock for reading.
func sharedBlock(t *testing.T, e *testEnv) storage.BlockID {
	id := storage.TestBlockID("shared")
	_, ok, err := e.runner.Locks().LockNewBlockForWriting(context.Background(), storage.NonTaskID, id, storage.MemoryOnly, false)
	require.NoError(t, err)
	require.True(t, ok)
	e.runner.Locks().Unlock(storage.NonTaskID, id)
	return id
}

func requireUnlocked(t *testing.T, e *testEnv, id storage.BlockID) {
	t.Helper()
	readers, writer, ok := e.runner.Locks().LockState(id)
	require.True(t, ok)
	require.Zero(t, readers, "read locks left on %s", id)
	require.Equal(t, storage.NoWriter, writer, "write lock left on %s", id)
}

// failingInput yields n records, then fails with err.
func failingInput(n int, err error) collection.Iterator[collection.Pair[int, int64]] {
	i := 0
	return storage.FuncIterator(func() (collection.Pair[int, int64], bool, error) {
		if i == n {
			return collection.Pair[int, int64]{}, false, err
		}
		i++
		return collection.Pair[int, int64]{Key: i, Value: 1}, true, nil
	}, nil)
}

func TestRunnerFailingTaskReleasesEverything(t *testing.T) {
	e := newTestEnv(t, 32<<20, RunnerConfig{Cores: 3})
	shared := sharedBlock(t, e)
	dep := intDep(e.runner, 8, false, false, false)
	const maps = 6
	require.NoError(t, e.runner.registry.RegisterShuffle(dep.ShuffleID, maps, 8))
	injected := errors.New("injected map failure")
	err := e.runner.Run(context.Background(), maps, func(ctx context.Context, tc *TaskContext, m int) error {
		if err := grab(ctx, t, tc, shared); err != nil {
			return err
		}
		records := collection.SliceIterator(genRecords(1, m, 1000, 100))
		if m == 3 {
			records = failingInput(500, injected)
		}
		w, err := NewBypassMergeWriter(tc, dep, m)
		if err != nil {
			return err
		}
		st, err := w.Write(ctx, records)
		if err != nil {
			return err
		}
		return e.runner.registry.RegisterMapOutput(st)
	})
	require.ErrorIs(t, err, injected)
	require.Zero(t, e.mm.ExecutionUsed())
	require.Zero(t, e.mm.StorageUsed())
	requireUnlocked(t, e, shared)
	e.requireClean(t) // only the outputs of registered maps are left
	require.NoError(t, e.runner.registry.UnregisterShuffle(dep.ShuffleID))
	require.Zero(t, e.disk.Files())
	require.Zero(t, countFiles(t, e.disk.LocalDirs()))
}

func TestRunnerCancel(t *testing.T) {
	const tasks, cores = 10, 3
	e := newTestEnv(t, 32<<20, RunnerConfig{Cores: cores})
	shared := sharedBlock(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{}, tasks)
	var ran sync.Map
	errc := make(chan error, 1)
	go func() {
		errc <- e.runner.Run(ctx, tasks, func(ctx context.Context, tc *TaskContext, p int) error {
			ran.Store(p, true)
			if err := grab(ctx, t, tc, shared); err != nil {
				return err
			}
			started <- struct{}{}
			<-ctx.Done() // a task that only stops when cancelled
			return fmt.Errorf("task %d: %w", p, ctx.Err())
		})
	}()
	for range cores {
		<-started
	}
	cancel()
	select {
	case err := <-errc:
		require.Equal(t, context.Canceled, err, "Run returns ctx.Err() itself")
	case <-time.After(time.Minute): // a safety net only
		t.Fatal("Run did not return after cancellation")
	}
	n := 0
	ran.Range(func(any, any) bool { n++; return true })
	require.Equal(t, cores, n, "tasks not started when the run was cancelled are skipped")
	require.Zero(t, e.mm.ExecutionUsed())
	requireUnlocked(t, e, shared)
	e.requireClean(t)
}

func TestRunnerLeaks(t *testing.T) {
	for _, tc := range []struct {
		name              string
		memErr, lockErr   bool
		leakMem, leakLock bool
		want              error
	}{
		{"memory leak logged", false, false, true, false, nil},
		{"memory leak is an error", true, false, true, false, ErrMemoryLeak},
		{"lock leak logged", false, false, false, true, nil},
		{"lock leak is an error", false, true, false, true, storage.ErrLockLeak},
		{"no leak", true, true, false, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, 32<<20, RunnerConfig{ExceptionOnMemoryLeak: tc.memErr, ExceptionOnPinLeak: tc.lockErr})
			shared := sharedBlock(t, e)
			err := e.runner.Run(context.Background(), 2, func(ctx context.Context, task *TaskContext, _ int) error {
				if tc.leakMem {
					if _, err := newHolder(task).Acquire(ctx, 4096); err != nil {
						return err
					}
				}
				if tc.leakLock {
					if _, _, err := task.Locks().LockForReading(ctx, task.ID(), shared, true); err != nil {
						return err
					}
				}
				return nil
			})
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
			requireUnlocked(t, e, shared)
		})
	}
}

func TestRunnerTaskIDsAndListeners(t *testing.T) {
	e := newTestEnv(t, 32<<20, RunnerConfig{Cores: 4})
	var mu sync.Mutex
	ids := map[memory.TaskID]int{}
	var order []string
	for stage := range 3 {
		err := e.runner.Run(context.Background(), 20, func(_ context.Context, tc *TaskContext, p int) error {
			require.Equal(t, p, tc.Partition())
			require.Equal(t, tc.ID(), tc.TaskManager().ID())
			if p == 0 && stage == 0 {
				tc.AddCompletionListener(func() error { order = append(order, "first"); return nil })
				tc.AddCompletionListener(func() error { order = append(order, "second"); return nil })
			}
			mu.Lock()
			defer mu.Unlock()
			ids[tc.ID()]++
			return nil
		})
		require.NoError(t, err)
	}
	require.Len(t, ids, 60, "task ids are unique in a runner")
	require.Equal(t, []string{"second", "first"}, order, "listeners run in reverse order")

	listenerErr := errors.New("listener failed")
	err := e.runner.Run(context.Background(), 1, func(_ context.Context, tc *TaskContext, _ int) error {
		tc.AddCompletionListener(func() error { return listenerErr })
		return nil
	})
	require.ErrorIs(t, err, listenerErr)
}

func TestRunnerConfigValidate(t *testing.T) {
	e := newTestEnv(t, 32<<20, RunnerConfig{})
	for _, tc := range []struct {
		name string
		cfg  RunnerConfig
	}{
		{"no memory", RunnerConfig{Disk: e.disk}},
		{"no disk", RunnerConfig{Memory: e.mm}},
		{"negative cores", RunnerConfig{Memory: e.mm, Disk: e.disk, Cores: -1}},
		{"bad bypass threshold", RunnerConfig{Memory: e.mm, Disk: e.disk, Shuffle: Config{BypassMergeThreshold: -2}}},
		{"bad max in flight", RunnerConfig{Memory: e.mm, Disk: e.disk, Shuffle: Config{MaxBytesInFlight: -1}}},
		{"bad fetch to mem", RunnerConfig{Memory: e.mm, Disk: e.disk, Shuffle: Config{MaxBlockSizeFetchToMem: -1}}},
		{"bad spill config", RunnerConfig{Memory: e.mm, Disk: e.disk, Shuffle: Config{Spill: collection.SpillConfig{BatchSize: -1}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRunner(tc.cfg)
			require.Error(t, err)
		})
	}
}

// TestRunnerBlockManager checks that tasks see the runner's BlockManager, that a block one task
// caches is there for the next, and that a task's abandoned unroll memory and block locks are
// released when it ends.
func TestRunnerBlockManager(t *testing.T) {
	mm, err := memory.NewUnifiedManager(memory.Config{
		SystemMemory: 8 << 20, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 2,
	})
	require.NoError(t, err)
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{t.TempDir()}})
	require.NoError(t, err)
	bm, err := storage.NewBlockManager(storage.Config{Memory: mm, Disk: disk})
	require.NoError(t, err)
	r, err := NewRunner(RunnerConfig{Memory: mm, Disk: disk, Blocks: bm, Cores: 2})
	require.NoError(t, err)
	require.Same(t, bm.BlockInfo(), r.Locks(), "the block manager's lock table is the runner's")

	block := storage.RDDBlockID(0, 0)
	values := []int64{1, 2, 3}
	codec := storage.VarintCodec[int64]{}
	var computed atomic.Int32
	compute := func() (storage.Iterator[int64], error) {
		computed.Add(1)
		return storage.SliceIterator(values), nil
	}
	for range 2 {
		err = r.Run(context.Background(), 1, func(ctx context.Context, tc *TaskContext, _ int) error {
			require.Same(t, bm, tc.Blocks())
			it, _, err := storage.GetOrElseUpdate(ctx, tc.Blocks(), tc.ID(), block, storage.MemoryOnly, codec, compute)
			if err != nil {
				return err
			}
			got, err := storage.Collect(it)
			require.Equal(t, values, got)
			return err
		})
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, computed.Load(), "the second task reads the cached block")

	// A task that abandons its unroll memory and a read lock: both are released when it ends.
	err = r.Run(context.Background(), 1, func(ctx context.Context, tc *TaskContext, _ int) error {
		ok, err := bm.MemoryStore().ReserveUnrollMemoryForThisTask(tc.ID(), storage.RDDBlockID(0, 1), 4096, memory.OnHeap)
		require.True(t, ok)
		if err != nil {
			return err
		}
		_, _, err = tc.Locks().LockForReading(ctx, tc.ID(), block, true)
		return err
	})
	require.NoError(t, err)
	require.Zero(t, bm.MemoryStore().CurrentUnrollMemory(), "unroll memory of an ended task")
	readers, _, ok := bm.BlockInfo().LockState(block)
	require.True(t, ok)
	require.Zero(t, readers, "read locks of an ended task")

	require.NoError(t, r.Close())
	require.NoError(t, bm.Close())
	require.Zero(t, mm.StorageUsed())
	require.Zero(t, mm.ExecutionUsed())
	require.NoError(t, disk.Close())

	_, err = NewRunner(RunnerConfig{Memory: mm, Disk: disk, Blocks: bm, Locks: storage.NewBlockInfoManager()})
	require.ErrorContains(t, err, "differs from the lock table")
}
