package memory

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// rawPool is ExecutionMemoryPoolSuite's pool: a lone ExecutionMemoryPool of 1000 bytes with its
// own lock, no growth and a maximum equal to its size.
type rawPool struct {
	mon   monitor
	p     *executionPool
	waits <-chan int
	logs  *observer.ObservedLogs
}

func newRawPool(t *testing.T) *rawPool {
	core, logs := observer.New(zapcore.DebugLevel)
	r := &rawPool{logs: logs}
	r.waits = waitHook(&r.mon)
	r.p = newExecutionPool(&r.mon, OnHeap, zap.New(core))
	r.p.incrementSize(1000)
	return r
}

func (r *rawPool) acquire(ctx context.Context, n int64, task TaskID) (int64, error) {
	r.mon.mu.Lock()
	defer r.mon.mu.Unlock()
	return r.p.acquireLocked(ctx, n, task)
}

func (r *rawPool) mustAcquire(t *testing.T, n int64, task TaskID) int64 {
	t.Helper()
	got, err := r.acquire(context.Background(), n, task)
	require.NoError(t, err)
	return got
}

func (r *rawPool) release(n int64, task TaskID) int64 {
	r.mon.mu.Lock()
	defer r.mon.mu.Unlock()
	return r.p.releaseLocked(n, task)
}

func (r *rawPool) releaseAll(task TaskID) int64 {
	r.mon.mu.Lock()
	defer r.mon.mu.Unlock()
	return r.p.releaseAllLocked(task)
}

func (r *rawPool) usage(task TaskID) (held, used int64) {
	r.mon.mu.Lock()
	defer r.mon.mu.Unlock()
	return r.p.tasks[task], r.p.used
}

// newPool is the suite's newPool(): task 2 holds 900 of 1000.
func newPool(t *testing.T) *rawPool {
	r := newRawPool(t)
	require.EqualValues(t, 900, r.mustAcquire(t, 900, 2))
	return r
}

// EMP-01 (on the pool) is ported in task_test.go; EMP-02..EMP-04 and EMP-05 below.

// EMP-02 — ExecutionMemoryPoolSuite "re-registering a waiting task wakes peers whose minimum
// share decreased".
func TestEMP02ReregisteringWakesPeers(t *testing.T) {
	ctx := testCtx(t)
	r := newRawPool(t)
	require.EqualValues(t, 800, r.mustAcquire(t, 800, 3))
	require.EqualValues(t, 100, r.mustAcquire(t, 100, 2))
	require.EqualValues(t, 100, r.mustAcquire(t, 100, 1))
	wctx, interrupt := context.WithCancel(ctx)
	waiter := async(func() (int64, error) { return r.acquire(wctx, 300, 1) })
	awaitWaits(t, ctx, r.waits, 1)

	peer := async(func() (int64, error) {
		r.mon.mu.Lock() // keep the lock until task 2 waits, so task 1 cannot re-register before
		defer r.mon.mu.Unlock()
		r.p.releaseLocked(100, 1) // task 1's entry disappears
		// Two registered tasks: 100 held + 100 free is below the 250-byte minimum.
		return r.p.acquireLocked(ctx, 300, 2)
	})
	// Task 1 re-registers, so task 2's minimum drops to 166 and it takes the free 100.
	got := await(t, ctx, peer)
	require.NoError(t, got.err)
	require.EqualValues(t, 100, got.n)

	interrupt()
	got = await(t, ctx, waiter)
	require.ErrorIs(t, got.err, context.Canceled)
	require.Zero(t, got.n)
	require.Zero(t, r.releaseAll(1))
	require.EqualValues(t, 200, r.releaseAll(2))
	require.EqualValues(t, 800, r.releaseAll(3))
	_, used := r.usage(0)
	require.Zero(t, used)
	require.Empty(t, r.p.tasks)
}

// EMP-03 — ExecutionMemoryPoolSuite "preserve a waiting task's remaining allocation after a
// partial release".
func TestEMP03PreserveWaitingTaskAllocation(t *testing.T) {
	ctx := testCtx(t)
	r := newPool(t)
	require.EqualValues(t, 100, r.mustAcquire(t, 100, 1))
	waiter := async(func() (int64, error) { return r.acquire(ctx, 300, 1) })
	awaitWaits(t, ctx, r.waits, 1)
	r.release(40, 1)
	r.release(300, 2)
	got := await(t, ctx, waiter)
	require.NoError(t, got.err)
	require.EqualValues(t, 300, got.n)
	held, used := r.usage(1)
	require.EqualValues(t, 360, held)
	require.EqualValues(t, 960, used)
}

// EMP-04 — ExecutionMemoryPoolSuite "interrupting an acquisition preserves the task's existing
// reservation" (interruption is context cancellation).
func TestEMP04CancelPreservesReservation(t *testing.T) {
	ctx := testCtx(t)
	r := newPool(t)
	require.EqualValues(t, 100, r.mustAcquire(t, 100, 1))
	wctx, interrupt := context.WithCancel(ctx)
	waiter := async(func() (int64, error) { return r.acquire(wctx, 300, 1) })
	awaitWaits(t, ctx, r.waits, 1)
	requireNotDone(t, waiter)
	interrupt()
	got := await(t, ctx, waiter)
	require.ErrorIs(t, got.err, context.Canceled)
	require.Zero(t, got.n)

	held, used := r.usage(1)
	require.EqualValues(t, 100, held)
	require.EqualValues(t, 1000, used)
	require.EqualValues(t, 100, r.releaseAll(1))
	require.EqualValues(t, 100, r.mustAcquire(t, 100, 2))
	require.EqualValues(t, 1000, r.releaseAll(2))
	_, used = r.usage(0)
	require.Zero(t, used)

	// A context that is already done returns at once when the request would wait, and a
	// task that held nothing leaves no entry behind.
	require.EqualValues(t, 1000, r.mustAcquire(t, 1000, 2))
	done, cancel := context.WithCancel(ctx)
	cancel()
	n, err := r.acquire(done, 10, 3)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, n)
	require.NotContains(t, r.p.tasks, TaskID(3))
}

// EMP-05 — release clamping [derived from ExecutionMemoryPool.releaseMemory].
func TestEMP05ReleaseClamping(t *testing.T) {
	r := newRawPool(t)
	require.EqualValues(t, 200, r.mustAcquire(t, 200, 1))
	require.EqualValues(t, 200, r.release(500, 1))
	warn := r.logs.FilterMessageSnippet("release called on more bytes than the task holds").All()
	require.Len(t, warn, 1)
	require.Equal(t, zapcore.WarnLevel, warn[0].Level)
	require.Equal(t, "500 B", warn[0].ContextMap()["bytes"])
	require.Equal(t, "200 B", warn[0].ContextMap()["held"])
	require.Equal(t, "on-heap execution", warn[0].ContextMap()["pool"])
	require.NotContains(t, r.p.tasks, TaskID(1))
	_, used := r.usage(1)
	require.Zero(t, used)
	require.Zero(t, r.releaseAll(9))
}
