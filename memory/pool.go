package memory

import (
	"context"
	"sync"

	"go.uber.org/zap"
)

// monitor is the single lock shared by all four pools of a UnifiedManager together with Java's
// wait/notifyAll (memory/MemoryPool.scala): a "generation channel" that notifyLocked closes, so a
// waiter can also select on ctx.Done(). The channel is created only when somebody waits, so the
// uncontended path never allocates.
type monitor struct {
	mu      sync.Mutex
	gen     chan struct{}     // closed by notifyLocked; nil while nobody waits
	waiting int               // goroutines currently inside waitLocked
	waits   int64             // waits so far (Metrics.Waits)
	onWait  func(waiting int) // test hook: called with mu held as a goroutine starts waiting
}

// notifyLocked wakes every waiter (Object.notifyAll). mu must be held.
func (m *monitor) notifyLocked() {
	if m.gen != nil {
		close(m.gen)
		m.gen = nil
	}
}

// waitLocked releases mu until the next notifyLocked or until ctx ends, then re-takes it
// (Object.wait). It returns ctx.Err() when ctx is done, also when it was done on entry.
func (m *monitor) waitLocked(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.gen == nil {
		m.gen = make(chan struct{})
	}
	ch := m.gen
	m.waiting++
	m.waits++
	if m.onWait != nil {
		m.onWait(m.waiting)
	}
	m.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
	m.mu.Lock()
	m.waiting--
	return ctx.Err()
}

// executionPool is Spark's ExecutionMemoryPool: an adjustable-size region shared fairly by the
// active tasks. Every method requires mon.mu to be held.
type executionPool struct {
	mon   *monitor
	name  string // "on-heap execution" / "off-heap execution"
	size  int64  // MemoryPool.poolSize
	used  int64  // Σ tasks (kept incrementally instead of summing the map)
	tasks map[TaskID]int64
	log   *zap.Logger

	// grow is maybeGrowPool: it may move memory from the storage pool into this one.
	grow func(extra int64) error
	// maxSize is computeMaxPoolSize: the size this pool could reach by evicting cached blocks.
	maxSize func() int64
	// onGrant is a test hook called with mon.mu held after every grant.
	onGrant func(task TaskID, granted int64)
}

func newExecutionPool(mon *monitor, mode Mode, log *zap.Logger) *executionPool {
	p := &executionPool{mon: mon, name: mode.String() + " execution", tasks: map[TaskID]int64{}, log: log}
	p.grow = func(int64) error { return nil }
	p.maxSize = func() int64 { return p.size }
	return p
}

func (p *executionPool) free() int64 { return p.size - p.used }

// acquireLocked is ExecutionMemoryPool.acquireMemory (memory/ExecutionMemoryPool.scala) for n > 0
// bytes: it grants at most enough to keep the task within 1/N of maxSize and waits while the task
// cannot reach 1/2N of the current pool size (less unmanaged memory). Cancellation returns
// ctx.Err() and keeps what the task already held.
func (p *executionPool) acquireLocked(ctx context.Context, n int64, task TaskID) (int64, error) {
	// The entry of a new task is written only when it waits or is granted, so the common path
	// costs one map lookup and one assignment; peers cannot look before the lock is released.
	cur, registered := p.tasks[task]
	if !registered {
		p.mon.notifyLocked() // N changed: waiters recompute their shares
	}
	for {
		if err := p.grow(n - p.free()); err != nil {
			p.dropIfEmpty(task)
			return 0, err
		}
		active := int64(len(p.tasks))
		if !registered {
			active++
		}
		// The 1/2N floor a task may wait for is of the pool less unmanaged memory (maxPool is
		// smaller than the pool only then): nothing wakes a task waiting for memory that an
		// unmanaged consumer holds.
		maxPool := p.maxSize()
		maxPerTask := maxPool / active
		minPerTask := min(p.size, maxPool) / (2 * active)
		toGrant := min(n, max(0, maxPerTask-cur), p.free())
		if toGrant >= n || cur+toGrant >= minPerTask {
			p.tasks[task] = cur + toGrant
			p.used += toGrant
			if p.onGrant != nil {
				p.onGrant(task, toGrant)
			}
			return toGrant, nil
		}
		p.log.Info("waiting for at least 1/2N of the pool to be free",
			zap.Int64("task", int64(task)), zap.String("pool", p.name))
		if !registered {
			p.tasks[task] = 0
			registered = true
		}
		err := p.mon.waitLocked(ctx)
		if cur, registered = p.tasks[task]; !registered {
			// Invariant 5: another consumer of this waiting task released its last byte and
			// removed the entry; re-register and let peers recompute their smaller 1/2N floor.
			p.mon.notifyLocked()
		}
		if err != nil {
			p.dropIfEmpty(task)
			return 0, err
		}
	}
}

// dropIfEmpty removes a task entry holding nothing after a failed acquire, so it does not shrink
// the other tasks' 1/N (invariant 5).
func (p *executionPool) dropIfEmpty(task TaskID) {
	if cur, ok := p.tasks[task]; ok && cur == 0 {
		delete(p.tasks, task)
		p.mon.notifyLocked()
	}
}

// releaseLocked is ExecutionMemoryPool.releaseMemory: releasing more than the task holds
// logs a warning and releases what it holds. It returns the bytes released.
func (p *executionPool) releaseLocked(n int64, task TaskID) int64 {
	cur, ok := p.tasks[task]
	if cur < n {
		p.log.Warn("Internal error: release called on more bytes than the task holds",
			zap.Int64("task", int64(task)), zap.String("bytes", ibytes(n)), zap.String("held", ibytes(cur)), zap.String("pool", p.name))
		n = cur
	}
	if ok {
		if cur -= n; cur <= 0 {
			delete(p.tasks, task)
		} else {
			p.tasks[task] = cur
		}
	}
	p.used -= n
	p.mon.notifyLocked()
	return n
}

// releaseAllLocked is releaseAllMemoryForTask.
func (p *executionPool) releaseAllLocked(task TaskID) int64 {
	return p.releaseLocked(p.tasks[task], task)
}

// incrementSize and decrementSize are MemoryPool's checked size changes; a violation is a bug in
// this package, so they panic.
func (p *executionPool) incrementSize(d int64) {
	checkSize("execution pool increment", d)
	p.size += d
}

func (p *executionPool) decrementSize(d int64) {
	checkSize("execution pool decrement", d)
	if d > p.size || p.size-d < p.used {
		panic("memory: execution pool would shrink below its usage")
	}
	p.size -= d
}

// storagePool is Spark's StorageMemoryPool: size and usage (cached blocks and unroll memory).
// Its acquire and shrink logic lives in UnifiedManager, which owns the evictor. mon.mu must be held.
type storagePool struct {
	name string // "on-heap storage" / "off-heap storage"
	size int64
	used int64
	log  *zap.Logger
}

func (p *storagePool) free() int64 { return p.size - p.used }

// releaseLocked is StorageMemoryPool.releaseMemory: releasing more than is used logs a warning and
// sets the usage to 0. It returns the bytes released.
func (p *storagePool) releaseLocked(n int64) int64 {
	if n > p.used {
		p.log.Warn("Attempted to release more storage memory than is used",
			zap.String("bytes", ibytes(n)), zap.String("used", ibytes(p.used)), zap.String("pool", p.name))
		n = p.used
	}
	p.used -= n
	return n
}

func (p *storagePool) move(d int64, to *executionPool) {
	checkSize("storage pool decrement", d)
	if d > p.size || p.size-d < p.used {
		panic("memory: storage pool would shrink below its usage")
	}
	p.size -= d
	to.incrementSize(d)
}

func (p *storagePool) borrow(d int64, from *executionPool) {
	from.decrementSize(d)
	p.size += d
}
