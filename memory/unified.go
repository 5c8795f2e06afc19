package memory

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"
)

// Evictor is Spark's MemoryStore.evictBlocksToFreeSpace seen from the pools; storage.MemoryStore
// implements it and is wired in once with SetEvictor (MemoryManager.setMemoryStore).
//
// EvictBlocksToFreeSpace is called with the UnifiedManager's lock held and must not call any
// UnifiedManager method. block is the block being stored, or nil when execution reclaims memory
// (Spark's None); blocks of the same RDD as block must not be evicted. It returns the bytes of
// storage memory (in mode) that it freed by dropping whole blocks, which may exceed space; the
// manager itself subtracts them from the storage pool (the evictor never calls ReleaseStorage).
// An error leaves both pools' sizes unchanged (SPARK-15260); freed still counts the bytes of
// blocks the evictor did drop before failing, and those are released.
type Evictor interface {
	EvictBlocksToFreeSpace(block Block, space int64, mode Mode) (freed int64, err error)
}

// UnifiedManager is Spark's UnifiedMemoryManager (with the concrete parts of MemoryManager): one
// per process, it owns the execution and storage pools of both modes, lets storage borrow free
// execution memory and lets execution reclaim storage memory by evicting cached blocks down to
// the protected storage region. All methods are safe for concurrent use.
type UnifiedManager struct {
	mon      monitor
	exec     [2]*executionPool
	storage  [2]*storagePool
	max      [2]int64 // maxHeapMemory / maxOffHeapMemory
	region   [2]int64 // protected storage region per mode
	evictor  Evictor  // guarded by mon.mu
	tungsten Mode
	pageSize int64
	account  Accounting
	log      *zap.Logger

	evictions    int64 // evictor calls, guarded by mon.mu
	evictedBytes int64 // guarded by mon.mu
	spills       atomic.Int64
	spilledBytes atomic.Int64

	sizing    Sizing
	unmanaged unmanagedTracker
	heapHigh  int64 // on-heap grants at their highest since the Go heap source last looked, guarded by mon.mu
	goLimit   goLimit
}

// NewUnifiedManager sizes a manager from cfg (UnifiedMemoryManager.apply). It returns cfg's
// validation error, or an *InsufficientMemoryError (errors.Is ErrInsufficientMemory) when the
// system or executor memory is below 1.5 × the reserved memory.
//
// With Config.SetGoMemoryLimit it sets the Go memory limit; Close restores it.
func NewUnifiedManager(cfg Config) (*UnifiedManager, error) {
	return newUnifiedManager(cfg, hostEnvironment())
}

func newUnifiedManager(cfg Config, env environment) (*UnifiedManager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := cfg.size(env)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("memory")
	m := &UnifiedManager{log: log}
	m.max = [2]int64{s.maxHeap, s.maxOffHeap}
	m.region = [2]int64{s.heapRegion, s.offHeapRegion}
	for _, mode := range []Mode{OnHeap, OffHeap} {
		ep := newExecutionPool(&m.mon, mode, log)
		ep.size = m.max[mode] - m.region[mode]
		ep.grow = func(extra int64) error { return m.growExecutionLocked(mode, extra) }
		// computeMaxExecutionPoolSize, less unmanaged memory (SPARK-53001).
		ep.maxSize = func() int64 {
			return max(0, m.max[mode]-min(m.storage[mode].used, m.region[mode])-m.unmanaged.used(mode))
		}
		m.exec[mode] = ep
		m.storage[mode] = &storagePool{name: mode.String() + " storage", size: m.region[mode], log: log}
	}
	if cfg.OffHeapEnabled {
		m.tungsten = OffHeap
	}
	m.pageSize = cfg.PageSize
	m.account = cfg.Accounting
	if m.pageSize == 0 {
		m.pageSize = defaultPageSize(m.exec[m.tungsten].size, cfg.numCores())
	}
	m.sizing = Sizing{Source: s.source, SystemMemory: s.system, OnHeap: s.maxHeap, NonSpillwayAllowance: s.allowance}
	if err := m.initUnmanaged(cfg, s, env); err != nil {
		return nil, err
	}
	if s.goLimit > 0 {
		m.goLimit.set(env.setGoLimit, s.goLimit)
		m.sizing.GoMemoryLimit = s.goLimit
	}
	log.Debug("unified memory manager sized",
		zap.Stringer("source", s.source),
		zap.String("systemMemory", humanize.IBytes(uint64(s.system))),
		zap.String("goMemoryLimit", humanize.IBytes(uint64(s.goLimit))),
		zap.String("onHeap", humanize.IBytes(uint64(s.maxHeap))),
		zap.String("onHeapStorageRegion", humanize.IBytes(uint64(s.heapRegion))),
		zap.String("offHeap", humanize.IBytes(uint64(s.maxOffHeap))),
		zap.String("pageSize", humanize.IBytes(uint64(m.pageSize))))
	return m, nil
}

// SetEvictor wires the block store that can drop cached blocks (MemoryManager.setMemoryStore).
// Without one, nothing can be evicted: storage memory in use stays in use.
func (m *UnifiedManager) SetEvictor(e Evictor) {
	m.mon.mu.Lock()
	m.evictor = e
	m.mon.mu.Unlock()
}

// checkInvariantsLocked panics when invariant 1 of doc.go is broken (a bug in this package);
// Spark asserts the same at the start of every acquire.
func (m *UnifiedManager) checkInvariantsLocked(mode Mode) {
	if e, s := m.exec[mode], m.storage[mode]; e.size+s.size != m.max[mode] || e.used > e.size || s.used > s.size {
		panic(fmt.Sprintf("memory: %s pools broken: execution %d/%d + storage %d/%d != %d",
			mode, e.used, e.size, s.used, s.size, m.max[mode]))
	}
}

// AcquireExecution tries to acquire up to n bytes of execution memory for task
// (UnifiedMemoryManager.acquireExecutionMemory) and returns the bytes granted, possibly fewer than
// n and possibly 0. It may evict cached blocks, and it blocks while the task holds less than 1/2N
// of the pool and cannot get n bytes. Cancellation returns ctx.Err() and leaves what the task
// held before intact; an eviction failure is returned wrapped. n == 0 returns 0 at once.
func (m *UnifiedManager) AcquireExecution(ctx context.Context, n int64, task TaskID, mode Mode) (int64, error) {
	checkSize("AcquireExecution", n)
	mode.check()
	if n == 0 {
		return 0, nil
	}
	m.unmanaged.maybePoll()
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	m.checkInvariantsLocked(mode)
	got, err := m.exec[mode].acquireLocked(ctx, n, task)
	m.noteHeapLocked(mode)
	return got, err
}

// growExecutionLocked is maybeGrowExecutionPool: take free storage memory, and evict
// cached blocks while the storage pool is larger than its protected region.
func (m *UnifiedManager) growExecutionLocked(mode Mode, extra int64) error {
	if extra <= 0 {
		return nil
	}
	sp := m.storage[mode]
	reclaimable := max(sp.free(), sp.size-m.region[mode])
	if reclaimable <= 0 {
		return nil
	}
	// freeSpaceToShrinkPool, then move the whole amount at once (SPARK-15260).
	want := min(extra, reclaimable)
	space := min(want, sp.free())
	if rest := want - space; rest > 0 {
		freed, err := m.evictLocked(nil, rest, mode)
		if err != nil {
			return err
		}
		space += freed
	}
	sp.move(space, m.exec[mode])
	return nil
}

// evictLocked asks the evictor to drop blocks and releases what it dropped.
func (m *UnifiedManager) evictLocked(block Block, space int64, mode Mode) (int64, error) {
	if m.evictor == nil {
		return 0, nil
	}
	m.evictions++
	freed, err := m.evictor.EvictBlocksToFreeSpace(block, space, mode)
	if freed < 0 {
		panic(fmt.Sprintf("memory: Evictor returned negative freed bytes %d", freed))
	}
	freed = m.storage[mode].releaseLocked(freed)
	m.evictedBytes += freed
	if freed > 0 {
		m.mon.notifyLocked()
	}
	if err != nil {
		return freed, fmt.Errorf("memory: evicting blocks to free %s of %s storage for %s: %w",
			humanize.IBytes(uint64(space)), mode, blockName(block), err)
	}
	return freed, nil
}

// ReleaseExecution releases n bytes of task's execution memory (releaseExecutionMemory). Releasing
// more than the task holds logs a warning and releases what it holds. It wakes all waiters.
func (m *UnifiedManager) ReleaseExecution(n int64, task TaskID, mode Mode) {
	m.releaseExecution(n, task, mode)
}

func (m *UnifiedManager) releaseExecution(n int64, task TaskID, mode Mode) int64 {
	checkSize("ReleaseExecution", n)
	mode.check()
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	return m.exec[mode].releaseLocked(n, task)
}

// ReleaseAllExecutionForTask releases everything task holds in both modes and makes it inactive
// (releaseAllExecutionMemoryForTask); it returns the bytes released.
func (m *UnifiedManager) ReleaseAllExecutionForTask(task TaskID) int64 {
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	return m.exec[OnHeap].releaseAllLocked(task) + m.exec[OffHeap].releaseAllLocked(task)
}

// AcquireStorage acquires n bytes of storage memory to cache block (acquireStorageMemory):
// false without evicting anything when n exceeds the maximum storage memory, else it borrows free
// execution memory and evicts other blocks as needed. The error comes only from the Evictor.
func (m *UnifiedManager) AcquireStorage(block Block, n int64, mode Mode) (bool, error) {
	checkSize("AcquireStorage", n)
	mode.check()
	m.unmanaged.maybePoll()
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	m.checkInvariantsLocked(mode)
	return m.acquireStorageLocked(block, n, mode)
}

// AcquireUnroll acquires unroll memory, a kind of storage memory (acquireUnrollMemory).
func (m *UnifiedManager) AcquireUnroll(block Block, n int64, mode Mode) (bool, error) {
	return m.AcquireStorage(block, n, mode)
}

func (m *UnifiedManager) acquireStorageLocked(block Block, n int64, mode Mode) (bool, error) {
	sp, ep := m.storage[mode], m.exec[mode]
	unmanaged := m.unmanaged.used(mode)
	if limit := max(0, m.max[mode]-ep.used-unmanaged); n > limit {
		m.log.Info("Will not store block: the required space exceeds the memory limit",
			zap.String("block", blockName(block)), zap.String("bytes", humanize.IBytes(uint64(n))),
			zap.String("limit", humanize.IBytes(uint64(limit))), zap.String("unmanaged", ibytes(unmanaged)))
		return false, nil
	}
	var borrowed int64
	if n > sp.free() {
		borrowed = min(ep.free(), n-sp.free())
		sp.borrow(borrowed, ep)
	}
	if toFree := n - sp.free(); toFree > 0 {
		if _, err := m.evictLocked(block, toFree, mode); err != nil {
			sp.move(borrowed, ep) // a failed acquire changes no pool size
			return false, err
		}
	}
	if n > sp.free() {
		return false, nil
	}
	sp.used += n
	m.noteHeapLocked(mode)
	return true, nil
}

// ReleaseStorage releases n bytes of storage memory (releaseStorageMemory). Releasing more than is
// used logs a warning and releases everything.
func (m *UnifiedManager) ReleaseStorage(n int64, mode Mode) {
	checkSize("ReleaseStorage", n)
	mode.check()
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	m.storage[mode].releaseLocked(n)
	m.mon.notifyLocked()
}

// ReleaseUnroll releases unroll memory (releaseUnrollMemory = releaseStorageMemory).
func (m *UnifiedManager) ReleaseUnroll(n int64, mode Mode) { m.ReleaseStorage(n, mode) }

// ReleaseAllStorage sets the storage usage of both modes to 0 (releaseAllStorageMemory); pool
// sizes are unchanged.
func (m *UnifiedManager) ReleaseAllStorage() {
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	m.storage[OnHeap].used = 0
	m.storage[OffHeap].used = 0
	m.mon.notifyLocked()
}

// TransferUnrollToStorage atomically (under one lock) releases unroll bytes and acquires size bytes
// of storage for block (Spark's unroll->storage transfer in MemoryStore.putIterator). It succeeds
// without eviction when size <= unroll. When it fails (false or an Evictor error) the unroll
// reservation is still held, as if the call had not happened (though blocks may have been evicted).
func (m *UnifiedManager) TransferUnrollToStorage(block Block, unroll, size int64, mode Mode) (bool, error) {
	checkSize("TransferUnrollToStorage unroll", unroll)
	checkSize("TransferUnrollToStorage size", size)
	mode.check()
	m.unmanaged.maybePoll()
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	m.checkInvariantsLocked(mode)
	sp := m.storage[mode]
	released := sp.releaseLocked(unroll)
	ok, err := m.acquireStorageLocked(block, size, mode)
	if !ok {
		// Re-reserving cannot fail: the storage pool's free memory only grew since the release.
		sp.used += released
	}
	m.mon.notifyLocked()
	return ok, err
}

// MaxOnHeapStorage is the most storage memory on-heap could hold now: everything execution is not
// using (maxOnHeapStorageMemory).
func (m *UnifiedManager) MaxOnHeapStorage() int64 { return m.maxStorage(OnHeap) }

// MaxOffHeapStorage is maxOffHeapStorageMemory.
func (m *UnifiedManager) MaxOffHeapStorage() int64 { return m.maxStorage(OffHeap) }

func (m *UnifiedManager) maxStorage(mode Mode) int64 {
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	return m.max[mode] - m.exec[mode].used
}

// ExecutionUsed is the execution memory in use in both modes (executionMemoryUsed).
func (m *UnifiedManager) ExecutionUsed() int64 {
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	return m.exec[OnHeap].used + m.exec[OffHeap].used
}

// StorageUsed is the storage memory in use in both modes, unroll memory included
// (storageMemoryUsed).
func (m *UnifiedManager) StorageUsed() int64 {
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	return m.storage[OnHeap].used + m.storage[OffHeap].used
}

// ExecutionUsedForTask is the execution memory task holds in both modes
// (getExecutionMemoryUsageForTask).
func (m *UnifiedManager) ExecutionUsedForTask(task TaskID) int64 {
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	return m.exec[OnHeap].tasks[task] + m.exec[OffHeap].tasks[task]
}

// TungstenMode is the mode of TaskManager pages: OffHeap iff Config.OffHeapEnabled
// (tungstenMemoryMode).
func (m *UnifiedManager) TungstenMode() Mode { return m.tungsten }

// PageSize is the default page size for consumers (pageSizeBytes).
func (m *UnifiedManager) PageSize() int64 { return m.pageSize }

// Accounting returns the manager's accounting switch (Config.Accounting): whether consumers charge
// every byte they hold (Strict) or keep Spark's unaccounted allowances.
func (m *UnifiedManager) Accounting() Accounting { return m.account }
