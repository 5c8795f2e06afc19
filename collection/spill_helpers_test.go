package collection

import (
	"context"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
)

// newTestTask returns a TaskManager of a fresh UnifiedManager whose execution memory is budget
// bytes (the harness's UMM(m): fraction 1, nothing reserved), and checks at cleanup that the task
// holds no memory.
func newTestTask(t testing.TB, budget int64) *memory.TaskManager {
	t.Helper()
	return newTestTaskAccounting(t, budget, memory.Strict)
}

// newTestTaskAccounting is newTestTask with the manager's accounting switch set to acct.
func newTestTaskAccounting(t testing.TB, budget int64, acct memory.Accounting) *memory.TaskManager {
	t.Helper()
	m, err := memory.NewUnifiedManager(memory.Config{
		SystemMemory: budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 1, Accounting: acct,
	})
	require.NoError(t, err)
	tm := memory.NewTaskManager(m, 1, memory.TaskConfig{})
	t.Cleanup(func() {
		require.Zero(t, m.ExecutionUsedForTask(1), "managed memory leak:\n%s", tm.UsageReport())
	})
	return tm
}

// testConsumer is TestMemoryConsumer: it acquires through the TaskManager and spills everything.
type testConsumer struct {
	base memory.ConsumerBase
}

func newTestConsumer(tm *memory.TaskManager) *testConsumer {
	c := &testConsumer{}
	c.base.Init(tm, memory.OnHeap, "test-consumer", c)
	return c
}

func (c *testConsumer) use(t testing.TB, n int64) int64 {
	t.Helper()
	got, err := c.base.Acquire(context.Background(), n)
	require.NoError(t, err)
	return got
}

func (c *testConsumer) free(n int64) { c.base.Free(n) }

func (c *testConsumer) Spill(int64, memory.Consumer) (int64, error) {
	n := c.base.Used()
	if n > 0 {
		c.base.Free(n)
	}
	return n, nil
}
func (c *testConsumer) Used() int64       { return c.base.Used() }
func (c *testConsumer) Mode() memory.Mode { return c.base.Mode() }

// awaitWaiting returns once k tasks wait for their share of an execution pool of mm. It polls
// memory's Metrics, which counts a waiter from the moment it holds the pool's lock to wait, so
// a release after awaitWaiting returns wakes it; it never fails on a slow machine, it only
// loops longer.
func awaitWaiting(mm *memory.UnifiedManager, k int) {
	for mm.Metrics().Waiting < k {
		runtime.Gosched()
	}
}
