package memory

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// UMM-01 — UnifiedMemoryManagerSuite "basic execution memory".
func TestUMM01BasicExecutionMemory(t *testing.T) {
	m := newUMM(t, 1000, 0)
	ev := withFakeEvictor(m)
	ctx := context.Background()
	steps := []struct {
		acquire, release int64
		want, used       int64
	}{
		{acquire: 10, want: 10, used: 10},
		{acquire: 100, want: 100, used: 110},
		{acquire: 1000, want: 890, used: 1000}, // borrows all free storage, capped at 1/N of 1000
		{acquire: 1, want: 0, used: 1000},
		{release: 800, used: 200},
		{acquire: 1, want: 1, used: 201},
		{release: 1000, used: 0}, // more than held: warning, clamped
	}
	for i, s := range steps {
		if s.acquire > 0 {
			got, err := m.AcquireExecution(ctx, s.acquire, 0, OnHeap)
			require.NoError(t, err)
			require.Equal(t, s.want, got, "step %d", i+1)
		} else {
			m.ReleaseExecution(s.release, 0, OnHeap)
		}
		require.Equal(t, s.used, m.ExecutionUsed(), "step %d", i+1)
		ev.assertNotEvicted(t)
	}
}

// UMM-02 — UnifiedMemoryManagerSuite "basic storage memory".
func TestUMM02BasicStorageMemory(t *testing.T) {
	m, logs := newObservedUMM(t, 1000, 0)
	ev := withFakeEvictor(m)
	store := func(n int64) bool {
		ok, err := m.AcquireStorage(testBlock("b1"), n, OnHeap)
		require.NoError(t, err)
		return ok
	}
	require.True(t, store(10))
	ev.assertNotEvicted(t)
	require.EqualValues(t, 10, m.StorageUsed())

	require.True(t, store(100))
	ev.assertNotEvicted(t)
	require.EqualValues(t, 110, m.StorageUsed())

	require.False(t, store(1001), "more than maxOnHeapStorageMemory")
	ev.assertNotEvicted(t)
	require.EqualValues(t, 110, m.StorageUsed())
	require.Equal(t, 1, logs.FilterMessageSnippet("Will not store").Len())

	require.True(t, store(1000), "borrows all free execution memory and evicts the rest")
	ev.assertEvicted(t, 110)
	require.EqualValues(t, 1000, m.StorageUsed())
	require.EqualValues(t, 1000, m.Metrics().Pools[OnHeap].StoragePoolSize)

	require.True(t, store(1))
	ev.assertEvicted(t, 1)
	require.EqualValues(t, 1000, m.StorageUsed())

	m.ReleaseStorage(800, OnHeap)
	require.EqualValues(t, 200, m.StorageUsed())
	require.True(t, store(1))
	ev.assertNotEvicted(t)
	require.EqualValues(t, 201, m.StorageUsed())

	m.ReleaseAllStorage()
	require.Zero(t, m.StorageUsed())
	require.True(t, store(1))
	ev.assertNotEvicted(t)
	require.EqualValues(t, 1, m.StorageUsed())
	m.ReleaseStorage(100, OnHeap) // more than used: warning, used 0
	require.Zero(t, m.StorageUsed())
	require.Equal(t, 1, logs.FilterMessageSnippet("Attempted to release more storage memory").Len())
}

// UMM-03 — UnifiedMemoryManagerSuite "execution evicts storage".
func TestUMM03ExecutionEvictsStorage(t *testing.T) {
	m := newUMM(t, 1000, 0)
	ev := withFakeEvictor(m)
	ctx := context.Background()
	exec := func(n int64) int64 {
		got, err := m.AcquireExecution(ctx, n, 0, OnHeap)
		require.NoError(t, err)
		return got
	}
	ok, err := m.AcquireStorage(testBlock("b1"), 750, OnHeap)
	require.NoError(t, err)
	require.True(t, ok)
	ev.assertNotEvicted(t)
	require.Zero(t, m.ExecutionUsed())
	require.EqualValues(t, 750, m.StorageUsed())

	require.EqualValues(t, 100, exec(100))
	ev.assertNotEvicted(t)
	require.EqualValues(t, 100, m.ExecutionUsed())
	require.EqualValues(t, 750, m.StorageUsed())

	require.EqualValues(t, 200, exec(200), "evicts the 50 storage borrowed beyond its region")
	ev.assertEvicted(t, 50)
	require.EqualValues(t, 300, m.ExecutionUsed())
	require.EqualValues(t, 700, m.StorageUsed())

	m.ReleaseAllStorage()
	require.Zero(t, m.StorageUsed())
	p := m.Metrics().Pools[OnHeap]
	require.EqualValues(t, 700, p.StoragePoolSize)
	require.EqualValues(t, 300, p.ExecutionPoolSize)

	ok, err = m.AcquireStorage(testBlock("b2"), 400, OnHeap)
	require.NoError(t, err)
	require.True(t, ok)
	ev.assertNotEvicted(t)
	require.EqualValues(t, 400, m.StorageUsed())

	require.EqualValues(t, 300, exec(400), "free storage is reclaimed, the protected 400 is not")
	ev.assertNotEvicted(t)
	require.EqualValues(t, 600, m.ExecutionUsed())
	require.EqualValues(t, 400, m.StorageUsed())
}

// UMM-05 — UnifiedMemoryManagerSuite "storage does not evict execution".
func TestUMM05StorageDoesNotEvictExecution(t *testing.T) {
	m := newUMM(t, 1000, 0)
	ev := withFakeEvictor(m)
	ctx := context.Background()
	exec := func(n int64) {
		got, err := m.AcquireExecution(ctx, n, 0, OnHeap)
		require.NoError(t, err)
		require.Equal(t, n, got)
	}
	store := func(n int64) bool {
		ok, err := m.AcquireStorage(testBlock("b"), n, OnHeap)
		require.NoError(t, err)
		return ok
	}
	exec(800)
	require.Zero(t, m.StorageUsed())
	ev.assertNotEvicted(t)

	require.True(t, store(100))
	require.EqualValues(t, 800, m.ExecutionUsed())
	require.EqualValues(t, 100, m.StorageUsed())
	ev.assertNotEvicted(t)

	require.False(t, store(250), "250 > 1000 - 800")
	require.EqualValues(t, 100, m.StorageUsed())
	ev.assertNotEvicted(t)

	m.ReleaseExecution(1000, 0, OnHeap)
	m.ReleaseStorage(1000, OnHeap)
	require.Zero(t, m.ExecutionUsed())
	require.Zero(t, m.StorageUsed())

	exec(200)
	ev.assertNotEvicted(t)
	require.True(t, store(750))
	ev.assertNotEvicted(t)
	require.EqualValues(t, 200, m.ExecutionUsed())
	require.EqualValues(t, 750, m.StorageUsed())

	require.False(t, store(850), "850 > 1000 - 200")
	ev.assertNotEvicted(t)
	require.EqualValues(t, 750, m.StorageUsed())
}

// UMM-06 — UnifiedMemoryManagerSuite "small heap"; UMM-07 — "insufficient executor memory";
// UMM-08 — "SPARK-58513: executor validates executor heap" [newest].
func TestUMM06To08SmallHeap(t *testing.T) {
	base := Config{Fraction: 0.8, SystemMemory: 1048576, ReservedMemory: 307200}
	m, err := NewUnifiedManager(base)
	require.NoError(t, err)
	require.EqualValues(t, 593100, m.Metrics().Pools[OnHeap].Max, "UMM-06 maxHeapMemory")

	tests := []struct {
		name  string
		cfg   Config
		class string
		field string
		mem   int64
	}{
		{"UMM-06 small heap", Config{Fraction: 0.8, SystemMemory: 153600, ReservedMemory: 307200},
			"INVALID_DRIVER_MEMORY.SYSTEM_MEMORY", "SystemMemory", 153600},
		{"UMM-07 insufficient executor memory", Config{Fraction: 0.8, SystemMemory: 1048576, ReservedMemory: 307200, ExecutorMemory: 153600},
			"INVALID_EXECUTOR_MEMORY.CONFIG_MEMORY", "ExecutorMemory", 153600},
		{"UMM-08 executor validates executor heap", Config{Fraction: 0.8, SystemMemory: 409600, ReservedMemory: 307200, ExecutorMemory: 512000},
			"INVALID_EXECUTOR_MEMORY.SYSTEM_MEMORY", "SystemMemory", 409600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewUnifiedManager(tc.cfg)
			require.ErrorIs(t, err, ErrInsufficientMemory)
			var ime *InsufficientMemoryError
			require.ErrorAs(t, err, &ime)
			require.Equal(t, &InsufficientMemoryError{Class: tc.class, Field: tc.field, Source: SourceSystemMemory, Memory: tc.mem, Minimum: 460800, Reserved: 307200}, ime)
			require.Contains(t, err.Error(), "450 KiB")
		})
	}
}

// UMM-11 — UnifiedMemoryManagerSuite "not enough free memory in the storage pool --OFF_HEAP".
func TestUMM11NotEnoughFreeStorageOffHeap(t *testing.T) {
	m, err := NewUnifiedManager(Config{SystemMemory: 1000, ReservedMemory: NoReservedMemory, Fraction: 1,
		OffHeapEnabled: true, OffHeapSize: 1000, NumCores: 1})
	require.NoError(t, err)
	require.Equal(t, OffHeap, m.TungstenMode())
	ev := withFakeEvictor(m)
	store := func(n int64) bool {
		ok, err := m.AcquireStorage(testBlock("b"), n, OffHeap)
		require.NoError(t, err)
		return ok
	}
	got, err := m.AcquireExecution(context.Background(), 400, 0, OffHeap)
	require.NoError(t, err)
	require.EqualValues(t, 400, got)
	require.Zero(t, m.StorageUsed())
	require.EqualValues(t, 400, m.ExecutionUsed())

	require.False(t, store(700), "fail fast: 700 > 1000 - 400")
	require.Zero(t, m.StorageUsed())
	ev.assertNotEvicted(t)

	require.True(t, store(100))
	require.EqualValues(t, 100, m.StorageUsed())
	ev.assertNotEvicted(t)

	require.True(t, store(450), "borrows 50 from execution")
	ev.assertNotEvicted(t)
	require.EqualValues(t, 550, m.StorageUsed())

	require.True(t, store(100), "borrows the last 50 free execution bytes and evicts 50")
	ev.assertEvicted(t, 50)
	require.EqualValues(t, 600, m.StorageUsed())
	require.EqualValues(t, 1000, m.MaxOnHeapStorage())
	require.EqualValues(t, 600, m.MaxOffHeapStorage())
}

// SPARK-15260 (UnifiedMemoryManagerSuite "execution memory requests smaller than free memory
// should evict storage" / bad memory store variants): an evictor failure leaves both pool sizes
// unchanged, during execution reclaim and during storage acquisition.
func TestEvictorErrorLeavesPoolsUnchanged(t *testing.T) {
	m := newUMM(t, 1000, 0)
	ok, err := m.AcquireStorage(testBlock("b1"), 800, OnHeap) // storage pool 800, 300 above its region
	require.NoError(t, err)
	require.True(t, ok)
	m.SetEvictor(badEvictor{})
	before := m.Metrics().Pools[OnHeap]

	got, err := m.AcquireExecution(context.Background(), 500, 1, OnHeap)
	require.ErrorContains(t, err, "bad memory store!")
	require.Zero(t, got)
	after := m.Metrics()
	require.Equal(t, before.ExecutionPoolSize, after.Pools[OnHeap].ExecutionPoolSize)
	require.Equal(t, before.StoragePoolSize, after.Pools[OnHeap].StoragePoolSize)
	require.Empty(t, after.Pools[OnHeap].Tasks, "a failed first acquire leaves no empty task entry")

	ok, err = m.AcquireStorage(testBlock("b2"), 300, OnHeap) // needs 100 evicted
	require.ErrorContains(t, err, "bad memory store!")
	require.False(t, ok)
	after = m.Metrics()
	require.Equal(t, before.ExecutionPoolSize, after.Pools[OnHeap].ExecutionPoolSize)
	require.Equal(t, before.StoragePoolSize, after.Pools[OnHeap].StoragePoolSize)
	require.EqualValues(t, 800, m.StorageUsed())
	require.EqualValues(t, 2, after.EvictionsRequested)
}

// TransferUnrollToStorage moves unroll memory to storage under one lock, and a failed transfer
// leaves the unroll reservation held.
func TestTransferUnrollToStorage(t *testing.T) {
	m := newUMM(t, 1000, 0)
	ev := withFakeEvictor(m)
	b := testBlock("rdd_0_0")
	ok, err := m.AcquireUnroll(b, 300, OnHeap)
	require.NoError(t, err)
	require.True(t, ok)

	ok, err = m.TransferUnrollToStorage(b, 300, 250, OnHeap) // shrink: always succeeds
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 250, m.StorageUsed())
	ev.assertNotEvicted(t)

	got, err := m.AcquireExecution(context.Background(), 600, 1, OnHeap)
	require.NoError(t, err)
	require.EqualValues(t, 600, got)
	ok, err = m.AcquireUnroll(b, 100, OnHeap)
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 350, m.StorageUsed())

	ok, err = m.TransferUnrollToStorage(b, 100, 500, OnHeap) // 500 > 1000 - 600: fails fast
	require.NoError(t, err)
	require.False(t, ok)
	require.EqualValues(t, 350, m.StorageUsed(), "the unroll reservation is still held")

	ok, err = m.TransferUnrollToStorage(b, 100, 150, OnHeap) // grows by 50 into free memory
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 400, m.StorageUsed())
	m.ReleaseUnroll(400, OnHeap)
	require.Zero(t, m.StorageUsed())
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"zero value", Config{}, ""},
		{"negative system memory", Config{SystemMemory: -1}, "SystemMemory -1"},
		{"negative reserved", Config{ReservedMemory: -2}, "ReservedMemory -2"},
		{"fraction above 1", Config{Fraction: 1.5}, "Fraction 1.5"},
		{"fraction NaN", Config{Fraction: math.NaN()}, "Fraction NaN"},
		{"storage fraction 1", Config{StorageFraction: 1}, "StorageFraction 1"},
		{"negative off-heap", Config{OffHeapSize: -5}, "OffHeapSize -5"},
		{"off-heap enabled without size", Config{OffHeapEnabled: true}, "OffHeapSize must be > 0"},
		{"negative executor memory", Config{ExecutorMemory: -1}, "ExecutorMemory -1"},
		{"negative cores", Config{NumCores: -1}, "NumCores -1"},
		{"page too large", Config{PageSize: MaxPageSize + 1}, "PageSize"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			_, err = NewUnifiedManager(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// Defaults: 300 MiB reserved, fraction 0.6, storage fraction 0.5, off-heap disabled, and Spark's
// default page size (MemoryManager.defaultPageSizeBytes, UnifiedMemoryManager.apply: 1 GiB heap -> about 434 MiB unified, 217 MiB storage region).
func TestConfigDefaults(t *testing.T) {
	m, err := NewUnifiedManager(Config{SystemMemory: 1 << 30, NumCores: 4})
	require.NoError(t, err)
	p := m.Metrics().Pools[OnHeap]
	sys := int64(1<<30 - 300<<20)
	wantMax := int64(float64(sys) * 0.6)
	require.Equal(t, wantMax, p.Max)
	require.Equal(t, int64(float64(wantMax)*0.5), p.StorageRegion)
	require.Equal(t, p.Max-p.StorageRegion, p.ExecutionPoolSize)
	require.Equal(t, OnHeap, m.TungstenMode())
	require.Zero(t, m.Metrics().Pools[OffHeap].Max)
	// 217 MiB / 4 cores / 16 ≈ 3.4 MiB -> next power of two 4 MiB.
	require.EqualValues(t, 4<<20, m.PageSize())

	_, err = NewUnifiedManager(Config{}) // Go memory limit or physical memory
	require.NoError(t, err)

	tests := []struct{ pool, cores, want int64 }{
		{0, 1, MinPageSize},
		{1 << 20, 1, MinPageSize},
		{64 << 20 * 16, 1, 64 << 20},
		{1 << 40, 1, MaxDefaultPageSize},
		{3 << 20 * 16, 1, 4 << 20},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, defaultPageSize(tc.pool, int(tc.cores)), "pool %d", tc.pool)
	}
	m, err = NewUnifiedManager(Config{SystemMemory: 1 << 30, PageSize: 12345})
	require.NoError(t, err)
	require.EqualValues(t, 12345, m.PageSize())
}

func TestMisusePanics(t *testing.T) {
	m := newUMM(t, 1000, 0)
	ctx := context.Background()
	tests := map[string]func(){
		"AcquireExecution":        func() { _, _ = m.AcquireExecution(ctx, -1, 0, OnHeap) },
		"ReleaseExecution":        func() { m.ReleaseExecution(-1, 0, OnHeap) },
		"AcquireStorage":          func() { _, _ = m.AcquireStorage(nil, -1, OnHeap) },
		"ReleaseStorage":          func() { m.ReleaseStorage(-1, OnHeap) },
		"TransferUnrollToStorage": func() { _, _ = m.TransferUnrollToStorage(nil, 1, -1, OnHeap) },
		"invalid mode":            func() { _, _ = m.AcquireExecution(ctx, 1, 0, Mode(7)) },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			require.PanicsWithValue(t, panicValue(f), f)
			require.Contains(t, panicValue(f), "memory: ")
		})
	}
	got, err := m.AcquireExecution(ctx, 0, 0, OnHeap)
	require.NoError(t, err)
	require.Zero(t, got, "a request of 0 returns 0")
	require.Empty(t, m.Metrics().Pools[OnHeap].Tasks, "and registers nothing")
}

// panicValue returns the string f panics with.
func panicValue(f func()) (s string) {
	defer func() { s, _ = recover().(string) }()
	f()
	return ""
}

func TestModeString(t *testing.T) {
	require.Equal(t, "on-heap", OnHeap.String())
	require.Equal(t, "off-heap", OffHeap.String())
	require.Equal(t, "Mode(9)", Mode(9).String())
}

func TestAccountingSwitch(t *testing.T) {
	tests := []struct {
		cfg  Accounting
		want string
	}{{Strict, "strict"}, {SparkAllowances, "spark-allowances"}}
	for _, tc := range tests {
		m, err := NewUnifiedManager(Config{SystemMemory: 1 << 20, ReservedMemory: NoReservedMemory, Fraction: 1, Accounting: tc.cfg})
		require.NoError(t, err)
		require.Equal(t, tc.cfg, m.Accounting())
		require.Equal(t, tc.want, m.Accounting().String())
	}
	_, err := NewUnifiedManager(Config{SystemMemory: 1 << 20, Accounting: 7})
	require.ErrorContains(t, err, "memory: Config.Accounting 7 is unknown")
}
