package memory

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// testConsumer is TestMemoryConsumer (spill releases everything) or, with partial set,
// TestPartialSpillingMemoryConsumer (spill releases min(used, size)).
type testConsumer struct {
	ConsumerBase
	partial  bool
	spilled  int64
	spillErr error
}

func newTestConsumer(tm *TaskManager, mode Mode, name string) *testConsumer {
	c := &testConsumer{}
	c.Init(tm, mode, name, c)
	return c
}

func (c *testConsumer) Spill(size int64, _ Consumer) (int64, error) {
	if c.spillErr != nil {
		return 0, c.spillErr
	}
	n := c.Used()
	if c.partial {
		n = min(n, size)
	}
	c.Free(n)
	c.spilled += n
	return n, nil
}

// use is TestMemoryConsumer.use: acquire through the task manager, keep what was granted.
func (c *testConsumer) use(t *testing.T, n int64) int64 {
	t.Helper()
	got, err := c.Acquire(context.Background(), n)
	require.NoError(t, err)
	return got
}

// tmAcquire calls TaskManager.AcquireExecution directly (MemoryManagerSuite's style: the
// consumer's own Used is not updated).
func tmAcquire(t *testing.T, tm *TaskManager, c Consumer, n int64) int64 {
	t.Helper()
	got, err := tm.AcquireExecution(context.Background(), n, c)
	require.NoError(t, err)
	return got
}

// MMS-01 — MemoryManagerSuite "single task requesting on-heap execution memory".
func TestMMS01SingleTask(t *testing.T) {
	m := newUMM(t, 1000, 0)
	tm := NewTaskManager(m, 0, TaskConfig{})
	c := newTestConsumer(tm, OnHeap, "c")
	for i, s := range []struct{ req, want int64 }{{100, 100}, {400, 400}, {400, 400}, {200, 100}, {100, 0}, {100, 0}} {
		require.Equal(t, s.want, tmAcquire(t, tm, c, s.req), "request %d", i)
	}
	tm.ReleaseExecution(500, c)
	require.EqualValues(t, 300, tmAcquire(t, tm, c, 300))
	require.EqualValues(t, 200, tmAcquire(t, tm, c, 300))
	require.EqualValues(t, 1000, tm.Close())
	require.EqualValues(t, 1000, tmAcquire(t, tm, c, 1000))
	require.EqualValues(t, 0, tmAcquire(t, tm, c, 100))
	require.EqualValues(t, 1000, tm.PeakExecution(OnHeap))
}

// MMS-02 — MemoryManagerSuite "two tasks requesting full on-heap execution memory".
func TestMMS02TwoTasksFullMemory(t *testing.T) {
	ctx := testCtx(t)
	m := newUMM(t, 1000, 0)
	t1, t2 := NewTaskManager(m, 1, TaskConfig{}), NewTaskManager(m, 2, TaskConfig{})
	c1, c2 := newTestConsumer(t1, OnHeap, "c1"), newTestConsumer(t2, OnHeap, "c2")
	for _, want := range []int64{500, 0} {
		r1 := async(func() (int64, error) { return t1.AcquireExecution(ctx, 500, c1) })
		r2 := async(func() (int64, error) { return t2.AcquireExecution(ctx, 500, c2) })
		require.Equal(t, result{n: want}, await(t, ctx, r1))
		require.Equal(t, result{n: want}, await(t, ctx, r2))
	}
	require.Zero(t, m.Metrics().Waits, "returns immediately: nobody waited")
	require.EqualValues(t, 500, t1.Close())
	require.EqualValues(t, 500, t2.Close())
}

// MMS-03 — MemoryManagerSuite "two tasks cannot grow past 1 / N of on-heap execution memory".
func TestMMS03TwoTasksCapped(t *testing.T) {
	ctx := testCtx(t)
	m := newUMM(t, 1000, 0)
	t1, t2 := NewTaskManager(m, 1, TaskConfig{}), NewTaskManager(m, 2, TaskConfig{})
	c1, c2 := newTestConsumer(t1, OnHeap, "c1"), newTestConsumer(t2, OnHeap, "c2")
	for _, s := range []struct{ req, want int64 }{{250, 250}, {500, 250}} {
		r1 := async(func() (int64, error) { return t1.AcquireExecution(ctx, s.req, c1) })
		r2 := async(func() (int64, error) { return t2.AcquireExecution(ctx, s.req, c2) })
		require.Equal(t, result{n: s.want}, await(t, ctx, r1))
		require.Equal(t, result{n: s.want}, await(t, ctx, r2))
	}
	require.EqualValues(t, 1000, m.ExecutionUsed())
}

// MMS-06 — MemoryManagerSuite "TaskMemoryManager.cleanUpAllAllocatedMemory".
func TestMMS06CleanUpWakesWaiter(t *testing.T) {
	ctx := testCtx(t)
	m := newUMM(t, 1000, 0)
	waits := waitHook(&m.mon)
	t1, t2 := NewTaskManager(m, 1, TaskConfig{}), NewTaskManager(m, 2, TaskConfig{})
	c1, c2 := newTestConsumer(t1, OnHeap, "c1"), newTestConsumer(t2, OnHeap, "c2")
	require.EqualValues(t, 1000, tmAcquire(t, t1, c1, 1000))
	r2 := async(func() (int64, error) { return t2.AcquireExecution(ctx, 500, c2) })
	awaitWaits(t, ctx, waits, 1) // t2 blocks
	requireNotDone(t, r2)
	require.Equal(t, 1, m.Metrics().Waiting)
	require.EqualValues(t, 1000, t1.Close())
	require.Equal(t, result{n: 500}, await(t, ctx, r2))
	require.EqualValues(t, 500, tmAcquire(t, t2, c2, 500))
	require.EqualValues(t, 0, tmAcquire(t, t2, c2, 500))
	require.EqualValues(t, 1, m.Metrics().Waits)
}

// MMS-07 — MemoryManagerSuite "tasks should not be granted a negative amount of execution
// memory" (SPARK-4715).
func TestMMS07NoNegativeGrant(t *testing.T) {
	m := newUMM(t, 1000, 0)
	t1, t2 := NewTaskManager(m, 1, TaskConfig{}), NewTaskManager(m, 2, TaskConfig{})
	c1, c2 := newTestConsumer(t1, OnHeap, "c1"), newTestConsumer(t2, OnHeap, "c2")
	require.EqualValues(t, 700, tmAcquire(t, t1, c1, 700))
	require.EqualValues(t, 300, tmAcquire(t, t2, c2, 300))
	require.EqualValues(t, 0, tmAcquire(t, t1, c1, 300))
	require.Zero(t, m.Metrics().Waits)
}

// MMS-08 — MemoryManagerSuite "off-heap execution allocations cannot exceed limit".
func TestMMS08OffHeapLimit(t *testing.T) {
	m := newUMM(t, 0, 1000)
	tm := NewTaskManager(m, 1, TaskConfig{})
	c := newTestConsumer(tm, OffHeap, "c")
	require.EqualValues(t, 1000, tmAcquire(t, tm, c, 1000))
	require.EqualValues(t, 1000, m.ExecutionUsedForTask(1))
	require.EqualValues(t, 0, tmAcquire(t, tm, c, 300))
	require.EqualValues(t, 1000, m.ExecutionUsedForTask(1))
	tm.ReleaseExecution(500, c)
	require.EqualValues(t, 500, m.ExecutionUsedForTask(1))
	tm.ReleaseExecution(500, c)
	require.EqualValues(t, 0, m.ExecutionUsedForTask(1))
	require.EqualValues(t, 1000, tm.PeakExecution(OffHeap))
	require.Zero(t, tm.PeakExecution(OnHeap))
}

// EMP-01 — ExecutionMemoryPoolSuite "re-register a waiting task after another consumer releases
// its last byte" (both modes).
func TestEMP01ReregisterWaitingTask(t *testing.T) {
	for _, mode := range []Mode{OnHeap, OffHeap} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t)
			m := newUMM(t, 1000, 1000)
			waits := waitHook(&m.mon)
			task, peerTask := NewTaskManager(m, 1, TaskConfig{}), NewTaskManager(m, 2, TaskConfig{})
			owner, requester := newTestConsumer(task, mode, "owner"), newTestConsumer(task, mode, "requester")
			peer := newTestConsumer(peerTask, mode, "peer")
			require.EqualValues(t, 900, peer.use(t, 900))
			require.EqualValues(t, 100, owner.use(t, 100))
			waiter := async(func() (int64, error) { return requester.Acquire(ctx, 300) })
			awaitWaits(t, ctx, waits, 1)

			// Release through another consumer of the waiting task, not the pool.
			owner.Free(100)
			peer.Free(300)
			require.Equal(t, result{n: 300}, await(t, ctx, waiter))
			require.Zero(t, owner.Used())
			require.EqualValues(t, 300, requester.Used())
			require.EqualValues(t, 300, m.ExecutionUsedForTask(1))
			require.EqualValues(t, 600, m.ExecutionUsedForTask(2))
			require.EqualValues(t, 900, m.ExecutionUsed())

			requester.Free(300)
			// The completed waiter leaves no empty entry limiting the peer's fair share.
			require.EqualValues(t, 100, peer.use(t, 100))
			require.EqualValues(t, 700, peer.Used())
			require.EqualValues(t, 700, m.ExecutionUsedForTask(2))
			peer.Free(700)
			require.Zero(t, task.Close())
			require.Zero(t, peerTask.Close())
			require.Zero(t, m.ExecutionUsed())
		})
	}
}

// TMM-01 — TaskMemoryManagerSuite "leakedPageMemoryIsDetected".
func TestTMM01LeakedPageMemoryIsDetected(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	m, err := NewUnifiedManager(Config{SystemMemory: math.MaxInt64, ReservedMemory: NoReservedMemory, Fraction: 1, Logger: zap.New(core)})
	require.NoError(t, err)
	tm := NewTaskManager(m, 0, TaskConfig{})
	c := newTestConsumer(tm, OnHeap, "c")
	p, err := tm.AllocatePage(context.Background(), 4096, c)
	require.NoError(t, err)
	require.EqualValues(t, 4096, p.Size())
	require.EqualValues(t, 4096, m.ExecutionUsedForTask(0))
	require.EqualValues(t, 4096, tm.Close())
	require.Equal(t, FreedInAllocatorPageNumber, p.Number())
	require.Nil(t, p.Bytes())
	leak := logs.FilterMessage("Managed memory leak detected").All()
	require.Len(t, leak, 1)
	require.Equal(t, "4.0 KiB", leak[0].ContextMap()["bytes"])
	require.EqualValues(t, 0, leak[0].ContextMap()["task"])
	require.Zero(t, m.ExecutionUsed())
}

// NumCores is fixed: the default page size depends on it, and by default it is GOMAXPROCS.
func newOffHeapUMM(t *testing.T, size int64) *UnifiedManager {
	m, err := NewUnifiedManager(Config{SystemMemory: 1 << 20, ReservedMemory: NoReservedMemory, Fraction: 1,
		OffHeapEnabled: true, OffHeapSize: size, NumCores: 4})
	require.NoError(t, err)
	return m
}

// TMM-02 — TaskMemoryManagerSuite "encodePageNumberAndOffsetOffHeap" (adapted: offsets are
// relative to Page.Bytes in both modes, so no base address is subtracted; high bits are dropped
// like Spark's).
func TestTMM02EncodePageNumberAndOffsetOffHeap(t *testing.T) {
	m := newOffHeapUMM(t, 1000)
	tm := NewTaskManager(m, 0, TaskConfig{})
	c := newTestConsumer(tm, OffHeap, "c")
	p, err := tm.AllocatePage(context.Background(), 256, c)
	require.NoError(t, err)
	require.Equal(t, OffHeap, p.Mode())
	addr := tm.EncodePageNumberAndOffset(p, 1<<51+10)
	require.Same(t, p, tm.Page(addr))
	require.EqualValues(t, 10, tm.OffsetInPage(addr))
	require.Equal(t, p.Number(), DecodePageNumber(addr))
	tm.FreePage(p, c)
	require.Zero(t, tm.Close())
}

// TMM-03 — TaskMemoryManagerSuite "encodePageNumberAndOffsetOnHeap".
func TestTMM03EncodePageNumberAndOffsetOnHeap(t *testing.T) {
	m := newUMM(t, 1<<20, 0)
	tm := NewTaskManager(m, 0, TaskConfig{})
	c := newTestConsumer(tm, OnHeap, "c")
	p, err := tm.AllocatePage(context.Background(), 256, c)
	require.NoError(t, err)
	addr := tm.EncodePageNumberAndOffset(p, 64)
	require.Same(t, p, tm.Page(addr))
	require.EqualValues(t, 64, tm.OffsetInPage(addr))
	tm.FreePage(p, c)
	require.Nil(t, tm.Page(addr))
}

// TMM-04 — TaskMemoryManagerSuite "freeingPageSetsPageNumberToSpecialConstant".
func TestTMM04FreeingPageSetsPageNumber(t *testing.T) {
	m := newUMM(t, 1<<20, 0)
	tm := NewTaskManager(m, 0, TaskConfig{})
	c := newTestConsumer(tm, OnHeap, "c")
	p, err := c.AllocatePage(context.Background(), 256)
	require.NoError(t, err)
	require.Equal(t, m.PageSize(), p.Size(), "a consumer's page is at least the page size")
	require.Equal(t, p.Size(), c.Used())
	c.FreePage(p)
	require.Equal(t, FreedInAllocatorPageNumber, p.Number())
	require.Zero(t, c.Used())
	require.Zero(t, tm.Close())
}

// TMM-05 — TaskMemoryManagerSuite "freeingPageDirectlyInAllocatorTriggersAssertionError" and
// "callingFreePageOnDirectlyAllocatedPageTriggersAssertionError", plus double frees and foreign
// pages, in both modes.
func TestTMM05PageMisusePanics(t *testing.T) {
	for _, mode := range []Mode{OnHeap, OffHeap} {
		t.Run(mode.String(), func(t *testing.T) {
			m := newOffHeapUMM(t, 1<<20)
			if mode == OnHeap {
				m = newUMM(t, 1<<20, 0)
			}
			t1, t2 := NewTaskManager(m, 1, TaskConfig{}), NewTaskManager(m, 2, TaskConfig{})
			c1, c2 := newTestConsumer(t1, mode, "c1"), newTestConsumer(t2, mode, "c2")
			ctx := context.Background()

			p, err := t1.AllocatePage(ctx, 256, c1)
			require.NoError(t, err)
			require.PanicsWithValue(t, "memory: Page.Free on a page of a TaskManager; free it with TaskManager.FreePage", p.Free)
			require.PanicsWithValue(t, "memory: FreePage of a page of task 1 called on task 2", func() { t2.FreePage(p, c2) })
			t1.FreePage(p, c1)
			require.PanicsWithValue(t, "memory: FreePage called on a page that has already been freed", func() { t1.FreePage(p, c1) })

			direct, err := NewPage(mode, 128)
			require.NoError(t, err)
			require.Equal(t, NoPageNumber, direct.Number())
			require.PanicsWithValue(t, "memory: FreePage called on memory that was not allocated with AllocatePage", func() { t1.FreePage(direct, c1) })
			direct.Free()
			require.PanicsWithValue(t, "memory: Page.Free on a page that has already been freed", direct.Free)
			require.Zero(t, t1.Close())
			require.Zero(t, t2.Close())
			require.Zero(t, m.ExecutionUsed())
		})
	}
}

// Off-heap pages are real memory outside the Go heap: writable, sized, unmapped on free, and
// accounted in the off-heap pool only.
func TestOffHeapPages(t *testing.T) {
	m := newOffHeapUMM(t, 64<<20)
	require.Equal(t, OffHeap, m.TungstenMode())
	tm := NewTaskManager(m, 7, TaskConfig{})
	c := newTestConsumer(tm, OffHeap, "offheap")
	ctx := context.Background()
	var pages []*Page
	for i := range 4 {
		p, err := c.AllocatePage(ctx, 3<<20)
		require.NoError(t, err)
		require.Equal(t, i, p.Number())
		b := p.Bytes()
		require.Len(t, b, 3<<20)
		b[0], b[len(b)-1] = byte(i), 0xFF
		pages = append(pages, p)
	}
	for i, p := range pages {
		require.Equal(t, byte(i), p.Bytes()[0])
		require.Equal(t, byte(0xFF), p.Bytes()[3<<20-1])
	}
	mt := m.Metrics()
	require.EqualValues(t, 12<<20, mt.Pools[OffHeap].ExecutionUsed)
	require.Zero(t, mt.Pools[OnHeap].ExecutionUsed)
	c.FreePage(pages[1])
	require.Nil(t, pages[1].Bytes())
	p, err := c.AllocatePage(ctx, 1<<20)
	require.NoError(t, err)
	require.Equal(t, 1, p.Number(), "the lowest free page number is reused")
	require.EqualValues(t, 10<<20, c.Used())
	require.Panics(t, func() { _, _ = tm.AllocatePage(ctx, 10, newTestConsumer(tm, OnHeap, "wrong mode")) })
	require.EqualValues(t, 10<<20, tm.Close(), "pages never freed are a leak")
	for _, p := range pages {
		require.Nil(t, p.Bytes())
	}
	require.Zero(t, m.ExecutionUsed())
}

// TMM-06 — TaskMemoryManagerSuite "cooperativeSpilling" (limit 100 = UMM(100) for one task).
func TestTMM06CooperativeSpilling(t *testing.T) {
	m := newUMM(t, 100, 0)
	tm := NewTaskManager(m, 0, TaskConfig{})
	c1, c2 := newTestConsumer(tm, OnHeap, "c1"), newTestConsumer(tm, OnHeap, "c2")
	steps := []struct {
		c      *testConsumer
		use    int64
		free   int64
		c1, c2 int64
	}{
		{c: c1, use: 100, c1: 100, c2: 0},
		{c: c2, use: 100, c1: 0, c2: 100},
		{c: c1, use: 100, c1: 100, c2: 0},
		{c: c1, use: 50, c1: 50, c2: 0}, // self-spill, then 50
		{c: c2, use: 50, c1: 50, c2: 50},
		{c: c1, use: 100, c1: 100, c2: 0},
		{c: c1, free: 20, c1: 80, c2: 0},
		{c: c2, use: 10, c1: 80, c2: 10},
		{c: c2, use: 100, c1: 0, c2: 100},
	}
	for i, s := range steps {
		if s.use > 0 {
			s.c.use(t, s.use)
		} else {
			s.c.Free(s.free)
		}
		require.Equal(t, s.c1, c1.Used(), "step %d c1", i+1)
		require.Equal(t, s.c2, c2.Used(), "step %d c2", i+1)
	}
	c1.Free(0)
	c2.Free(100)
	require.Zero(t, tm.Close())
	require.Positive(t, m.Metrics().SpillsRequested)
}

// TMM-08 — TaskMemoryManagerSuite "selfSpillIsLowestPriorities".
func TestTMM08SelfSpillIsLowestPriority(t *testing.T) {
	m := newUMM(t, 100, 0)
	tm := NewTaskManager(m, 0, TaskConfig{})
	c1, c2, c3 := newTestConsumer(tm, OnHeap, "c1"), newTestConsumer(tm, OnHeap, "c2"), newTestConsumer(tm, OnHeap, "c3")
	used := func() [3]int64 { return [3]int64{c1.Used(), c2.Used(), c3.Used()} }

	c1.use(t, 50)
	c2.use(t, 40)
	c3.use(t, 10)
	c1.use(t, 50)
	require.Equal(t, [3]int64{100, 0, 0}, used(), "others spill before self")

	c1.use(t, 50)
	require.Equal(t, [3]int64{50, 0, 0}, used(), "self-spill")

	c2.use(t, 10)
	c1.use(t, 60)
	require.Equal(t, [3]int64{60, 0, 0}, used())

	c1.Free(c1.Used())
	c1.use(t, 50)
	c2.use(t, 40)
	c3.use(t, 10)
	c3.use(t, 50)
	require.Equal(t, [3]int64{0, 40, 60}, used())
	c2.Free(40)
	c3.Free(60)
	require.Zero(t, tm.Close())
}

// TMM-11 — TaskMemoryManagerSuite "offHeapConfigurationBackwardsCompatibility": the Go Config has
// one switch (OffHeapEnabled, no deprecated alias); with it and a size the Tungsten mode is
// off-heap.
func TestTMM11OffHeapConfiguration(t *testing.T) {
	m := newOffHeapUMM(t, 1000)
	tm := NewTaskManager(m, 0, TaskConfig{})
	require.Equal(t, OffHeap, tm.mode)
	require.Equal(t, OffHeap, m.TungstenMode())
}

// TMM-12 — page limits [derived from TaskMemoryManager.allocatePage].
func TestTMM12PageLimits(t *testing.T) {
	m, err := NewUnifiedManager(Config{SystemMemory: math.MaxInt64, ReservedMemory: NoReservedMemory, Fraction: 1})
	require.NoError(t, err)
	tm := NewTaskManager(m, 0, TaskConfig{})
	c := newTestConsumer(tm, OnHeap, "c")
	ctx := context.Background()
	_, err = tm.AllocatePage(ctx, MaxPageSize+1, c)
	require.ErrorIs(t, err, ErrPageTooLarge)
	require.ErrorContains(t, err, "17179869177")
	for range PageTableSize {
		_, err := tm.AllocatePage(ctx, 1, c)
		require.NoError(t, err)
	}
	_, err = tm.AllocatePage(ctx, 1, c)
	require.ErrorIs(t, err, ErrPageTableFull)
	require.ErrorContains(t, err, "have already allocated a maximum of 8192 pages")
	require.EqualValues(t, PageTableSize, m.ExecutionUsedForTask(0), "the refused page's memory is released")
	require.EqualValues(t, PageTableSize, tm.Close())
}

func TestPageAddressEncoding(t *testing.T) {
	for _, tc := range []struct {
		page   int
		offset int64
	}{{0, 0}, {1, 1}, {PageTableSize - 1, offsetMask}, {4096, 123456789}} {
		a := EncodePageNumberAndOffset(tc.page, tc.offset)
		require.Equal(t, tc.page, DecodePageNumber(a))
		require.Equal(t, tc.offset, DecodeOffset(a))
	}
	require.Panics(t, func() { EncodePageNumberAndOffset(PageTableSize, 0) })
	require.Panics(t, func() { EncodePageNumberAndOffset(-1, 0) })
}

// A consumer that cannot get its page even after spilling everything reports ErrOutOfMemory with
// the usage report; a spill I/O error propagates wrapped and the partial grant is given back.
func TestOutOfMemoryAndSpillErrors(t *testing.T) {
	m := newUMM(t, 1<<20, 0)
	tm := NewTaskManager(m, 3, TaskConfig{})
	big := newTestConsumer(tm, OnHeap, "big-map")
	_, err := big.AllocatePage(context.Background(), 2<<20)
	require.ErrorIs(t, err, ErrOutOfMemory)
	require.ErrorContains(t, err, "unable to acquire 2.0 MiB of memory, got 1.0 MiB")
	require.ErrorContains(t, err, "Memory used in task 3")
	require.Zero(t, big.Used())
	require.Zero(t, m.ExecutionUsed())

	other := newTestConsumer(tm, OnHeap, "sorter")
	require.EqualValues(t, 600<<10, other.use(t, 600<<10))
	report := tm.UsageReport()
	require.Equal(t, strings.Join([]string{
		"Memory used in task 3",
		"Acquired by sorter: 600 KiB",
		"0 B of memory were used by task 3 but are not associated with specific consumers",
		"600 KiB of memory are used for execution and 0 B of memory are used for storage",
	}, "\n"), report)

	ioErr := errors.New("disk full")
	other.spillErr = ioErr
	got, err := big.Acquire(context.Background(), 800<<10)
	require.ErrorIs(t, err, ioErr)
	require.ErrorContains(t, err, "error while calling Spill on sorter")
	require.Zero(t, got)
	require.EqualValues(t, 600<<10, m.ExecutionUsed(), "the 424 KiB granted before the failed spill went back")
	other.spillErr = nil
	other.Free(600 << 10)
	require.Zero(t, tm.Close())
}

func TestVictimOrders(t *testing.T) {
	tests := []struct {
		name  string
		order VictimOrder
		want  [3]int64 // used of a, b, requester after the requester asks for 30 more
	}{
		{"spark: smallest covering", SparkOrder{}, [3]int64{50, 0, 40}},
		{"largest first", LargestFirstOrder{}, [3]int64{0, 40, 40}},
		{"requester first", RequesterFirstOrder{}, [3]int64{0, 40, 30}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newUMM(t, 100, 0)
			tm := NewTaskManager(m, 0, TaskConfig{VictimOrder: tc.order})
			a, b, r := newTestConsumer(tm, OnHeap, "a"), newTestConsumer(tm, OnHeap, "b"), newTestConsumer(tm, OnHeap, "r")
			a.use(t, 50)
			b.use(t, 40)
			r.use(t, 10)
			r.use(t, 30)
			require.Equal(t, tc.want, [3]int64{a.Used(), b.Used(), r.Used()})
			require.Equal(t, tc.want[0]+tc.want[1]+tc.want[2], tm.Close())
		})
	}
}

// Honest memory: an on-heap page is Go heap memory, an off-heap page is not (the garbage
// collector never sees it), and freeing it returns the mapping.
func TestPageMemoryLivesWhereItsModeSays(t *testing.T) {
	const size = 64 << 20
	heapAlloc := func() int64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	for _, mode := range []Mode{OnHeap, OffHeap} {
		t.Run(mode.String(), func(t *testing.T) {
			runtime.GC()
			before := heapAlloc()
			p, err := NewPage(mode, size)
			require.NoError(t, err)
			b := p.Bytes()
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1 // touch every page of the mapping
			}
			grown := heapAlloc() - before
			if mode == OnHeap {
				require.Greater(t, grown, int64(size-size/8), "on-heap bytes are Go heap")
			} else {
				require.Less(t, grown, int64(size/8), "off-heap bytes are not in the Go heap")
			}
			p.Free()
			require.Nil(t, p.Bytes())
			require.EqualValues(t, size, p.Size())
		})
	}
}
