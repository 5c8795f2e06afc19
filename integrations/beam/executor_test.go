package spillbeam

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" means valid
	}{
		{"zero", Config{}, ""},
		{"minimum budget", Config{Budget: MinBudget}, ""},
		{"negative budget", Config{Budget: -1}, "Config.Budget -1 is negative"},
		{"budget below minimum", Config{Budget: 1 << 20}, "Config.Budget 1.0 MiB (1048576 bytes) is below the minimum 4.0 MiB"},
		{"negative cores", Config{Cores: -2}, "Config.Cores -2 is negative"},
		{"empty dir", Config{Dirs: []string{"/tmp", ""}}, "Config.Dirs[1] is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.ErrorContains(t, err, tt.want)
			_, err = Acquire(tt.cfg)
			assert.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
}

func TestSpillConfigScalesWithBudget(t *testing.T) {
	assert.Equal(t, collection.SpillConfig{}, Config{}.spillConfig(4))
	sc := Config{Budget: 64 << 20}.spillConfig(2)
	assert.Equal(t, int64(1<<20), sc.InitialThreshold)
	assert.Equal(t, 512<<10, sc.BatchBytes)
	sc = Config{Budget: MinBudget}.spillConfig(8)
	assert.Equal(t, int64(64<<10), sc.InitialThreshold)
	assert.Equal(t, 16<<10, sc.BatchBytes)
}

// testExecutor acquires an executor with its own spill directory and checks, at the end of the
// test, that it holds no memory, no files and no directories.
func testExecutor(t *testing.T, budget int64) *Executor {
	t.Helper()
	dir := t.TempDir()
	e, err := Acquire(Config{Budget: budget, Cores: 2, Dirs: []string{dir}})
	require.NoError(t, err)
	t.Cleanup(func() {
		assertIdle(t, e)
		require.NoError(t, e.Release())
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Empty(t, entries, "spill directory %s", dir)
	})
	return e
}

func assertIdle(t *testing.T, e *Executor) {
	t.Helper()
	m := e.Metrics()
	assert.Zero(t, m.ActiveTasks, "active tasks")
	assert.Zero(t, m.ExecutionUsed, "execution memory")
	assert.Zero(t, m.Files, "spill files")
}

func TestAcquireSharesOneExecutorPerConfig(t *testing.T) {
	cfg := Config{Budget: 8 << 20, Dirs: []string{t.TempDir()}}
	a, err := Acquire(cfg)
	require.NoError(t, err)
	cfg.Dirs[0] = t.TempDir() // the registry keeps its own copy of the config
	c, err := Acquire(cfg)
	require.NoError(t, err)
	assert.NotSame(t, a, c)
	b, err := Acquire(a.Config())
	require.NoError(t, err)
	assert.Same(t, a, b)
	require.NoError(t, a.Release())
	require.NoError(t, b.Release())
	require.NoError(t, c.Release())
	assert.Panics(t, func() { _ = a.Release() })
	d, err := Acquire(a.Config())
	require.NoError(t, err)
	assert.NotSame(t, a, d, "the last Release removes the executor")
	require.NoError(t, d.Release())
}

// hog is a memory.Consumer that holds what it acquired and cannot spill.
type hog struct{ memory.ConsumerBase }

func (*hog) Spill(int64, memory.Consumer) (int64, error) { return 0, nil }

func newHog(task *Task) *hog {
	h := &hog{}
	h.Init(task.Memory, memory.OnHeap, "hog", h)
	return h
}

func TestRunReleasesOnErrorAndPanic(t *testing.T) {
	e := testExecutor(t, 8<<20)
	ctx := context.Background()
	boom := errors.New("boom")
	fill := func(ctx context.Context, task *Task) error {
		_, err := newHog(task).Acquire(ctx, 1<<20)
		require.NoError(t, err)
		_, f, err := task.Disk.CreateTempLocal()
		require.NoError(t, err)
		_, err = f.Write([]byte("spill"))
		require.NoError(t, err)
		assert.Equal(t, 1, e.Metrics().Files)
		return boom
	}
	assert.ErrorIs(t, e.Run(ctx, fill), boom)
	assertIdle(t, e)
	assert.Panics(t, func() {
		_ = e.Run(ctx, func(ctx context.Context, task *Task) error {
			_ = fill(ctx, task)
			panic("user code")
		})
	})
	assertIdle(t, e)
	assert.Empty(t, e.Metrics().Dirs, "the directories are deleted once idle after a write")
	err := e.Run(ctx, func(ctx context.Context, task *Task) error {
		_, err := newHog(task).Acquire(ctx, 1<<20)
		return err
	})
	assert.ErrorContains(t, err, "ended holding 1.0 MiB of execution memory")
	assert.Equal(t, int64(3), e.Metrics().FailedTasks)
}

// TestRunConcurrentTasksShareTheBudget runs tasks that are all inside Run at once (a barrier in
// their value iterators, not timing), each sorting more than the whole budget.
func TestRunConcurrentTasksShareTheBudget(t *testing.T) {
	const tasks = 3
	e := testExecutor(t, MinBudget)
	var inside sync.WaitGroup
	inside.Add(tasks)
	var wg sync.WaitGroup
	got := make([][]KV[string, string], tasks)
	errs := make([]error, tasks)
	for i := range tasks {
		values := randomValues(uint64(i), 20000, 100, 200)
		wg.Go(func() {
			next := valuesIter(values)
			first := true
			_, errs[i] = SortGroup(context.Background(), e, func(kv *KV[string, string]) bool {
				if first {
					first = false
					inside.Done()
					inside.Wait()
				}
				return next(kv)
			}, collect(&got[i]))
		})
		defer func() {
			assert.True(t, normalize(got[i]), "task %d out of order", i)
			assert.Equal(t, referenceSort(values), got[i])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	m := e.Metrics()
	assert.Equal(t, int64(tasks), m.Tasks)
	assert.Equal(t, tasks, m.MaxActiveTasks)
	assert.GreaterOrEqual(t, m.Spills, int64(tasks))
}
