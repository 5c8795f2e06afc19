package memory

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// testUnmanaged is an unmanaged consumer whose count the test sets (Spark's suite uses a mock
// UnmanagedMemoryConsumer with a settable getMemBytesUsed).
type testUnmanaged struct {
	id    UnmanagedID
	mode  Mode
	bytes atomic.Int64
	err   error
}

func newTestUnmanaged(componentType, key string, mode Mode, n int64) *testUnmanaged {
	c := &testUnmanaged{id: UnmanagedID{componentType, key}, mode: mode}
	c.bytes.Store(n)
	return c
}

func (c *testUnmanaged) UnmanagedID() UnmanagedID { return c.id }
func (c *testUnmanaged) Mode() Mode               { return c.mode }
func (c *testUnmanaged) UnmanagedBytes() (int64, error) {
	return c.bytes.Load(), c.err
}

// fakeClock is a Config.Clock that moves only when the test says so.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// newUnmanagedUMM is the harness's UMM with fraction 1, storage fraction 0.5 and polling every
// 100 ms on a fake clock.
func newUnmanagedUMM(t *testing.T, cfg Config) (*UnifiedManager, *fakeClock, *observer.ObservedLogs) {
	t.Helper()
	clock := &fakeClock{now: time.Unix(1000, 0)}
	core, logs := observer.New(zapcore.DebugLevel)
	cfg.ReservedMemory, cfg.Fraction, cfg.StorageFraction, cfg.NumCores = NoReservedMemory, 1, 0.5, 1
	if cfg.UnmanagedPollInterval == 0 {
		cfg.UnmanagedPollInterval = 100 * time.Millisecond
	}
	cfg.Clock, cfg.Logger = clock.Now, zap.New(core)
	m, err := NewUnifiedManager(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m, clock, logs
}

func acquireExec(t *testing.T, m *UnifiedManager, n int64, mode Mode) int64 {
	t.Helper()
	got, err := m.AcquireExecution(context.Background(), n, 0, mode)
	require.NoError(t, err)
	return got
}

func acquireStore(t *testing.T, m *UnifiedManager, n int64, mode Mode) bool {
	t.Helper()
	ok, err := m.AcquireStorage(testBlock("b"), n, mode)
	require.NoError(t, err)
	return ok
}

// UMM-12 — UnifiedMemoryManagerSuite "unmanaged memory tracking with memory mode separation"
// (Spark 4.1).
func TestUMM12UnmanagedModeSeparation(t *testing.T) {
	m, _, _ := newUnmanagedUMM(t, Config{SystemMemory: 1000})
	a := newTestUnmanaged("TestOnHeap", "a", OnHeap, 0)
	b := newTestUnmanaged("TestOffHeap", "b", OffHeap, 0)
	m.RegisterUnmanaged(a)
	m.RegisterUnmanaged(b)
	m.PollUnmanaged()
	require.Zero(t, m.UnmanagedByComponent("TestOnHeap"))
	require.Zero(t, m.UnmanagedByComponent("TestOffHeap"))

	b.bytes.Store(200)
	m.PollUnmanaged()
	require.EqualValues(t, 1000, acquireExec(t, m, 1000, OnHeap), "off-heap usage ignored on-heap")
	m.ReleaseExecution(1000, 0, OnHeap)

	a.bytes.Store(200)
	require.Equal(t, UnmanagedUsage{OnHeap: 200, OffHeap: 200, Consumers: 2}, m.PollUnmanaged())
	require.EqualValues(t, 800, acquireExec(t, m, 900, OnHeap), "computeMax 1000 - 200")
	m.ReleaseExecution(800, 0, OnHeap)

	a.bytes.Store(300)
	m.PollUnmanaged()
	require.False(t, acquireStore(t, m, 800, OnHeap), "effective limit 700")
	require.True(t, acquireStore(t, m, 600, OnHeap))
	require.EqualValues(t, 300, m.Metrics().Pools[OnHeap].Unmanaged)
}

// UMM-13 — "unmanaged memory consumer registration and unregistration" and "auto-removal when
// returning -1" (Spark 4.1; Spillway's consumer returns ErrUnmanagedInactive instead of -1).
func TestUMM13UnmanagedRegistration(t *testing.T) {
	t.Run("unregister", func(t *testing.T) {
		m, _, _ := newUnmanagedUMM(t, Config{SystemMemory: 1000})
		c1 := newTestUnmanaged("Test", "1", OnHeap, 100)
		c2 := newTestUnmanaged("Test", "2", OnHeap, 200)
		m.RegisterUnmanaged(c1)
		m.RegisterUnmanaged(c2)
		m.PollUnmanaged()
		require.EqualValues(t, 300, m.UnmanagedByComponent("Test"))
		m.UnregisterUnmanaged(c1.id)
		require.EqualValues(t, 200, m.UnmanagedByComponent("Test"))
		m.UnregisterUnmanaged(c2.id)
		require.Zero(t, m.UnmanagedByComponent("Test"))
		require.Equal(t, UnmanagedUsage{}, m.PollUnmanaged())
	})
	t.Run("auto-removal", func(t *testing.T) {
		m, _, logs := newUnmanagedUMM(t, Config{SystemMemory: 1000})
		c1 := newTestUnmanaged("Test", "1", OnHeap, 100)
		c2 := newTestUnmanaged("Test", "2", OnHeap, 200)
		m.RegisterUnmanaged(c1)
		m.RegisterUnmanaged(c2)
		require.EqualValues(t, 300, m.PollUnmanaged().OnHeap)
		c1.err = ErrUnmanagedInactive
		require.Equal(t, UnmanagedUsage{OnHeap: 200, Consumers: 1}, m.PollUnmanaged())
		require.EqualValues(t, 200, m.UnmanagedByComponent("Test"))
		c2.err = fmtWrap(ErrUnmanagedInactive) // found through wrapping
		require.Equal(t, UnmanagedUsage{}, m.PollUnmanaged())
		require.Equal(t, 2, logs.FilterMessage("Removed inactive unmanaged memory consumer").Len())
	})
}

func fmtWrap(err error) error { return errors.Join(errors.New("closed"), err) }

// UMM-14 — "unmanaged memory polling disabled when interval is zero" (Spark 4.1).
func TestUMM14UnmanagedPollingDisabled(t *testing.T) {
	m, err := NewUnifiedManager(Config{SystemMemory: 1000, ReservedMemory: NoReservedMemory, Fraction: 1, NumCores: 1})
	require.NoError(t, err)
	m.RegisterUnmanaged(newTestUnmanaged("Test", "1", OnHeap, 500))
	require.Equal(t, UnmanagedUsage{Consumers: 1}, m.PollUnmanaged(), "ignored")
	require.EqualValues(t, 500, m.UnmanagedByComponent("Test"), "still reported")
	require.EqualValues(t, 1000, acquireExec(t, m, 1000, OnHeap), "unmanaged memory ignored")
	require.NoError(t, m.Close())
}

// UMM-15 — "unmanaged memory tracking with off-heap memory enabled" (Spark 4.1).
func TestUMM15UnmanagedOffHeap(t *testing.T) {
	m, _, _ := newUnmanagedUMM(t, Config{SystemMemory: 1000, OffHeapEnabled: true, OffHeapSize: 1500})
	c := newTestUnmanaged("TestOffHeap", "1", OffHeap, 300)
	m.RegisterUnmanaged(c)
	m.PollUnmanaged()
	require.LessOrEqual(t, acquireExec(t, m, 1400, OffHeap), int64(1200))
	m.ReleaseAllExecutionForTask(0)

	c.bytes.Store(500)
	m.PollUnmanaged()
	require.False(t, acquireStore(t, m, 1100, OffHeap), "limit 1500 - 500")
	require.True(t, acquireStore(t, m, 900, OffHeap))
	m.ReleaseStorage(900, OffHeap)

	require.EqualValues(t, 600, acquireExec(t, m, 600, OnHeap), "on-heap unaffected")
	m.ReleaseExecution(600, 0, OnHeap)

	c.bytes.Store(200)
	m.PollUnmanaged()
	require.EqualValues(t, 400, acquireExec(t, m, 400, OnHeap))
	require.LessOrEqual(t, acquireExec(t, m, 1000, OffHeap), int64(1300))
}

// Acquisitions poll at most once per interval, on the injected clock.
func TestUnmanagedPollOnAcquisition(t *testing.T) {
	m, clock, _ := newUnmanagedUMM(t, Config{SystemMemory: 1000})
	c := newTestUnmanaged("Test", "1", OnHeap, 300)
	m.RegisterUnmanaged(c)
	require.EqualValues(t, 700, acquireExec(t, m, 1000, OnHeap), "the first acquisition polls")
	m.ReleaseAllExecutionForTask(0)

	c.bytes.Store(600)
	clock.Advance(99 * time.Millisecond)
	require.EqualValues(t, 700, acquireExec(t, m, 1000, OnHeap), "not polled within the interval")
	m.ReleaseAllExecutionForTask(0)
	require.True(t, acquireStore(t, m, 700, OnHeap), "storage does not poll either")
	m.ReleaseStorage(700, OnHeap)

	clock.Advance(time.Millisecond)
	require.False(t, acquireStore(t, m, 700, OnHeap), "polled: limit 400")
	require.EqualValues(t, 400, acquireExec(t, m, 1000, OnHeap))
	m.ReleaseAllExecutionForTask(0)

	c.bytes.Store(0)
	clock.Advance(100 * time.Millisecond)
	ok, err := m.TransferUnrollToStorage(testBlock("b"), 0, 1000, OnHeap)
	require.NoError(t, err)
	require.True(t, ok, "polled by the transfer")
}

// A task never waits for memory that unmanaged consumers hold: with the whole region held
// outside Spillway it gets 0 at once (Spark's pool would wait for a release that never comes).
func TestUnmanagedNoWait(t *testing.T) {
	m, _, _ := newUnmanagedUMM(t, Config{SystemMemory: 1000})
	m.RegisterUnmanaged(newTestUnmanaged("Test", "1", OnHeap, 1000))
	m.PollUnmanaged()
	require.Zero(t, acquireExec(t, m, 100, OnHeap))
	require.False(t, acquireStore(t, m, 1, OnHeap))
	require.Zero(t, m.Metrics().Waits)
	require.Zero(t, m.ExecutionUsed())
}

// Bad counts are logged and counted as 0, or clamped to the process's memory.
func TestUnmanagedBadValues(t *testing.T) {
	m, _, logs := newUnmanagedUMM(t, Config{SystemMemory: 1000})
	neg := newTestUnmanaged("Bad", "negative", OnHeap, -5)
	failing := newTestUnmanaged("Bad", "error", OnHeap, 700)
	failing.err = errors.New("native library gone")
	huge := newTestUnmanaged("Bad", "huge", OffHeap, 1<<62)
	for _, c := range []*testUnmanaged{neg, failing, huge} {
		m.RegisterUnmanaged(c)
	}
	u := m.PollUnmanaged()
	require.Zero(t, u.OnHeap)
	require.Equal(t, m.unmanaged.limit, u.OffHeap)
	require.Less(t, u.OffHeap, int64(1<<62))
	require.Equal(t, 3, u.Consumers, "bad consumers stay registered")
	require.Equal(t, 1, logs.FilterMessage("Invalid memory usage value from an unmanaged memory consumer; counting 0").Len())
	require.Equal(t, 1, logs.FilterMessage("Failed to get memory usage of an unmanaged memory consumer; counting 0").Len())
	require.Equal(t, 1, logs.FilterMessage("Unmanaged memory consumer reports more than the process's memory; clamped").Len())
	require.EqualValues(t, 1000, acquireExec(t, m, 1000, OnHeap))
	require.Equal(t, m.unmanaged.limit, m.UnmanagedByComponent("Bad"), "live sum: errors and negatives count 0, clamped")
}

// Close unregisters every consumer; a consumer registered again under an ID replaces the first.
func TestUnmanagedCloseAndReplace(t *testing.T) {
	m, _, _ := newUnmanagedUMM(t, Config{SystemMemory: 1000})
	m.RegisterUnmanaged(newTestUnmanaged("Test", "1", OnHeap, 100))
	m.RegisterUnmanaged(newTestUnmanaged("Test", "1", OnHeap, 250))
	require.Equal(t, UnmanagedUsage{OnHeap: 250, Consumers: 1}, m.PollUnmanaged())
	require.NoError(t, m.Close())
	require.Equal(t, UnmanagedUsage{}, m.Unmanaged())
	require.Equal(t, UnmanagedUsage{}, m.PollUnmanaged())
}

// fakeHeap is the Go heap source's reader: the live heap and collection count the test sets.
type fakeHeap struct{ live, cycles uint64 }

func (h *fakeHeap) read() (uint64, uint64) { return h.live, h.cycles }

// The Go heap source counts the live heap above the grants, the allowance and Spillway's slack,
// changes only when a collection ran, and does not count on-heap consumers twice.
func TestGoHeapFeedbackFake(t *testing.T) {
	const mib = 1 << 20
	heap := &fakeHeap{live: 5 * mib}
	clock := &fakeClock{now: time.Unix(1000, 0)}
	env := noGoLimit().env(nil, 8*gib)
	env.readHeap = heap.read
	// slack: allowance 1 MiB + budget/10 1 MiB + 2 MiB = 4 MiB
	m, err := newUnifiedManager(Config{Budget: 10 * mib, GoHeapFeedback: true, NonSpillwayAllowance: mib, Clock: clock.Now}, env)
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, DefaultHeapFeedbackInterval, m.unmanaged.interval)
	require.Zero(t, m.PollUnmanaged().GoHeap, "no collection yet")

	heap.live, heap.cycles = 30*mib, 1
	require.Equal(t, UnmanagedUsage{OnHeap: 26 * mib, GoHeap: 26 * mib, Consumers: 0}, m.PollUnmanaged())
	require.Zero(t, acquireExec(t, m, mib, OnHeap), "the application holds the budget")

	heap.live, heap.cycles = 8*mib, 2
	require.EqualValues(t, 4*mib, m.PollUnmanaged().GoHeap)
	require.EqualValues(t, 6*mib, acquireExec(t, m, 10*mib, OnHeap))
	m.ReleaseAllExecutionForTask(0)

	heap.live = 50 * mib
	require.EqualValues(t, 4*mib, m.PollUnmanaged().GoHeap, "no collection since: unchanged")
	heap.live, heap.cycles = 12*mib, 3
	require.EqualValues(t, 2*mib, m.PollUnmanaged().GoHeap, "12 - 6 granted (highest since the last poll) - 4")

	m.RegisterUnmanaged(newTestUnmanaged("cache", "1", OnHeap, mib))
	heap.cycles = 4
	require.Equal(t, UnmanagedUsage{OnHeap: 8 * mib, GoHeap: 7 * mib, Consumers: 1}, m.PollUnmanaged(),
		"12 - 0 granted - 4 - 1 held by the on-heap consumer, plus its 1")
}

// With the runtime's own figures: a 64 MiB buffer the application holds outside Spillway, once
// a collection has seen it, leaves a 16 MiB budget nothing; dropped and collected, the budget
// is whole again.
func TestGoHeapFeedbackRuntime(t *testing.T) {
	const mib = 1 << 20
	m, err := NewUnifiedManager(Config{Budget: 16 * mib, GoHeapFeedback: true, NonSpillwayAllowance: 1})
	require.NoError(t, err)
	defer m.Close()
	held := make([]byte, 64*mib)
	for i := range held { // touched, so the pages are real
		held[i] = 1
	}
	runtime.GC()
	u := m.PollUnmanaged()
	require.GreaterOrEqual(t, u.GoHeap, int64(64*mib-mib*16/10-2*mib))
	require.Zero(t, acquireExec(t, m, mib, OnHeap))
	tm := NewTaskManager(m, 1, TaskConfig{})
	require.Contains(t, tm.UsageReport(), "of it the live Go heap beyond the allowance")
	require.Zero(t, tm.Close())
	runtime.KeepAlive(held)
	held = nil
	runtime.GC()
	after := m.PollUnmanaged().GoHeap
	require.LessOrEqual(t, after, u.GoHeap-60*mib, "dropped")
	t.Logf("live heap beyond the allowance: %s holding the buffer, %s after", ibytes(u.GoHeap), ibytes(after))
}

// BenchmarkHeapFeedback is the cost of the Go heap source per acquisition: polling on every
// acquisition (interval 1 ns, the worst case), rate-limited (the default 10 ms), and off.
func BenchmarkHeapFeedback(b *testing.B) {
	for _, bc := range []struct {
		name     string
		feedback bool
		interval time.Duration
	}{
		{"off", false, 0},
		{"every-acquisition", true, time.Nanosecond},
		{"rate-limited-10ms", true, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m, err := NewUnifiedManager(Config{Budget: 1 << 30, GoHeapFeedback: bc.feedback, UnmanagedPollInterval: bc.interval})
			require.NoError(b, err)
			defer m.Close()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.AcquireExecution(ctx, 1024, 1, OnHeap); err != nil {
					b.Fatal(err)
				}
				m.ReleaseExecution(1024, 1, OnHeap)
			}
		})
	}
}

// The usage report of an out-of-memory error names the unmanaged memory.
func TestUnmanagedInUsageReport(t *testing.T) {
	m, _, _ := newUnmanagedUMM(t, Config{SystemMemory: 1000})
	tm := NewTaskManager(m, 1, TaskConfig{})
	defer tm.Close()
	require.NotContains(t, tm.UsageReport(), "unmanaged")
	m.RegisterUnmanaged(newTestUnmanaged("Test", "1", OffHeap, 300))
	m.PollUnmanaged()
	require.Contains(t, tm.UsageReport(), "0 B on-heap (0 B of it the live Go heap beyond the allowance) and 300 B off-heap are held by unmanaged memory outside Spillway")
}
