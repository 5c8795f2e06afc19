package memory

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// Sizing says how a UnifiedManager was sized (UnifiedManager.Sizing).
type Sizing struct {
	// Source is where the size came from: Config.Budget, Config.SystemMemory, the Go memory
	// limit, a cgroup limit or physical memory.
	Source SizingSource
	// SystemMemory is the memory the unified region was sized from (Budget itself for
	// SourceBudget).
	SystemMemory int64
	// OnHeap is the unified on-heap region (execution and storage).
	OnHeap int64
	// NonSpillwayAllowance is Config.NonSpillwayAllowance or its default.
	NonSpillwayAllowance int64
	// GoMemoryLimit is the Go memory limit this manager set (Config.SetGoMemoryLimit), else 0.
	GoMemoryLimit int64
}

// Sizing reports how the manager was sized and the Go memory limit it set.
func (m *UnifiedManager) Sizing() Sizing { return m.sizing }

// goLimit remembers the Go memory limit a manager set and the one it replaced.
type goLimit struct {
	once     sync.Once
	setLimit func(int64) int64 // debug.SetMemoryLimit
	limit    int64             // 0: none set
	previous int64
}

func (g *goLimit) set(setLimit func(int64) int64, limit int64) {
	g.setLimit, g.limit = setLimit, limit
	g.previous = setLimit(limit)
}

// restore puts the previous limit back, unless the limit was changed since this manager set it
// (another manager's or the application's): that one is left in place.
func (g *goLimit) restore(log *zap.Logger) {
	g.once.Do(func() {
		if g.limit == 0 {
			return
		}
		if cur := g.setLimit(-1); cur != g.limit {
			log.Warn("the Go memory limit changed since this manager set it; leaving it",
				zap.String("set", ibytes(g.limit)), zap.String("now", ibytes(cur)))
			return
		}
		g.setLimit(g.previous)
	})
}

// Close restores the Go memory limit the manager replaced (Config.SetGoMemoryLimit) and
// unregisters every unmanaged consumer (clearUnmanagedMemoryUsers). It does not release memory
// still granted (close the TaskManagers first). It is idempotent and always returns nil.
func (m *UnifiedManager) Close() error {
	m.goLimit.restore(m.log)
	t := &m.unmanaged
	t.mu.Lock()
	t.consumers = nil
	t.mu.Unlock()
	t.total[OnHeap].Store(0)
	t.total[OffHeap].Store(0)
	t.goHp.Store(0)
	return nil
}

// initUnmanaged sets up unmanaged-memory tracking: the interval, the clock and the Go heap source.
func (m *UnifiedManager) initUnmanaged(cfg Config, s sizing, env environment) error {
	t := &m.unmanaged
	t.interval, t.now, t.log = cfg.UnmanagedPollInterval, cfg.Clock, m.log
	if t.now == nil {
		t.now = time.Now
	}
	if cfg.GoHeapFeedback && t.interval == 0 {
		t.interval = DefaultHeapFeedbackInterval
	}
	if !t.enabled() {
		return nil
	}
	// A consumer cannot hold more than the machine has; when the machine limit is unreadable,
	// more than every region and the system memory together is absurd.
	t.limit = satAdd(satAdd(s.system, s.maxHeap), s.maxOffHeap)
	if machine, _, err := env.machineLimit(); err == nil && machine > 0 {
		t.limit = max(machine, s.maxOffHeap)
	}
	if !cfg.GoHeapFeedback {
		return nil
	}
	slack := s.maxHeap/10 + 2<<20 // the strict bound's slack (doc.go)
	read := env.readHeap
	if read == nil {
		var err error
		if read, err = runtimeHeapReader(); err != nil {
			return err
		}
	}
	t.heap = &goHeap{granted: m.heapGranted, read: read, allowance: satAdd(s.allowance, slack)}
	_, t.heap.cycles = read()
	return nil
}

// noteHeapLocked records the on-heap grants at their highest for the Go heap source.
func (m *UnifiedManager) noteHeapLocked(mode Mode) {
	if mode == OnHeap {
		m.heapHigh = max(m.heapHigh, m.exec[OnHeap].used+m.storage[OnHeap].used)
	}
}

// heapGranted returns the on-heap grants at their highest since its previous call.
func (m *UnifiedManager) heapGranted() int64 {
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	cur := m.exec[OnHeap].used + m.storage[OnHeap].used
	high := max(m.heapHigh, cur)
	m.heapHigh = cur
	return high
}
