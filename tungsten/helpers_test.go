package tungsten

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

var modes = []memory.Mode{memory.OnHeap, memory.OffHeap}

// newTask returns a TaskManager whose Tungsten pool (in mode) is budget bytes with pages of
// pageSize, in memory.Strict accounting, and checks at cleanup that the task holds no memory.
func newTask(t testing.TB, mode memory.Mode, budget, pageSize int64) *memory.TaskManager {
	t.Helper()
	return newTaskWith(t, mode, budget, pageSize, memory.Strict)
}

// newSparkTask is newTask in memory.SparkAllowances accounting: Spark's scenarios that count the
// task's memory to the byte run with Spark's accounting, which leaves the spill files' buffers
// out.
func newSparkTask(t testing.TB, mode memory.Mode, budget, pageSize int64) *memory.TaskManager {
	t.Helper()
	return newTaskWith(t, mode, budget, pageSize, memory.SparkAllowances)
}

func newTaskWith(t testing.TB, mode memory.Mode, budget, pageSize int64, acc memory.Accounting) *memory.TaskManager {
	t.Helper()
	cfg := memory.Config{SystemMemory: budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1,
		NumCores: 1, PageSize: pageSize, Accounting: acc}
	if mode == memory.OffHeap {
		cfg.SystemMemory = 64 << 20
		cfg.OffHeapEnabled, cfg.OffHeapSize = true, budget
	}
	m, err := memory.NewUnifiedManager(cfg)
	require.NoError(t, err)
	tm := memory.NewTaskManager(m, 1, memory.TaskConfig{})
	t.Cleanup(func() {
		require.Zero(t, m.ExecutionUsedForTask(1), "managed memory leak:\n%s", tm.UsageReport())
	})
	return tm
}

// newScope returns a disk scope checked at cleanup for leftover files.
func newScope(t testing.TB) *storage.Scope {
	t.Helper()
	dm, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{t.TempDir()}})
	require.NoError(t, err)
	scope := dm.NewScope()
	t.Cleanup(func() {
		require.Zero(t, scope.Files(), "spill files left behind")
		require.NoError(t, scope.Close())
		require.NoError(t, dm.Close())
	})
	return scope
}

// hog is Spark's TestMemoryConsumer: it takes memory and gives it all back when asked to spill.
type hog struct{ base memory.ConsumerBase }

func newHog(tm *memory.TaskManager) *hog {
	h := &hog{}
	h.base.Init(tm, tm.Manager().TungstenMode(), "hog", h)
	return h
}

func (h *hog) use(t testing.TB, n int64) {
	t.Helper()
	got, err := h.base.Acquire(context.Background(), n)
	require.NoError(t, err)
	require.Equal(t, n, got)
}

func (h *hog) Spill(int64, memory.Consumer) (int64, error) {
	n := h.base.Used()
	h.base.Free(n)
	return n, nil
}
func (h *hog) Used() int64       { return h.base.Used() }
func (h *hog) Mode() memory.Mode { return h.base.Mode() }

func int4(v int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }

func readInt4(b []byte) int { return int(int32(binary.LittleEndian.Uint32(b))) }
