package memory

import (
	"errors"
	"fmt"
	"maps"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// UnmanagedID names an unmanaged consumer (Spark's UnmanagedMemoryConsumerId). Consumers that
// share memory (instances of one shared cache) should share an ID, so it is counted once;
// registering a consumer under an ID already registered replaces the earlier one.
type UnmanagedID struct {
	// ComponentType groups consumers for UnmanagedByComponent ("RocksDB", "cgo-cache").
	ComponentType string
	// InstanceKey tells instances of one component type apart.
	InstanceKey string
}

func (id UnmanagedID) String() string { return id.ComponentType + "/" + id.InstanceKey }

// ErrUnmanagedInactive, returned by UnmanagedConsumer.UnmanagedBytes, says the consumer is no
// longer active: the next poll unregisters it (Spark's getMemBytesUsed returning -1).
var ErrUnmanagedInactive = errors.New("memory: unmanaged consumer inactive")

// UnmanagedConsumer is Spark's UnmanagedMemoryConsumer: a component that allocates memory
// outside Spillway (cgo or mmap'ed buffers off-heap, a cache or index of its own on-heap) and
// reports how much it holds, so the manager grants execution and storage memory that much less
// in its mode. Register it with UnifiedManager.RegisterUnmanaged.
type UnmanagedConsumer interface {
	UnmanagedID() UnmanagedID
	// Mode is the memory mode the bytes are in.
	Mode() Mode
	// UnmanagedBytes returns the bytes the consumer holds now, or ErrUnmanagedInactive to be
	// unregistered. Another error is logged and counts as 0; a negative count is logged and
	// counts as 0; a count above the process's memory is logged and clamped to it. It is called
	// without any lock of the manager held, from the goroutine of an acquisition, and must not
	// call RegisterUnmanaged, UnregisterUnmanaged or PollUnmanaged.
	UnmanagedBytes() (int64, error)
}

// UnmanagedUsage is the unmanaged memory the last poll found.
type UnmanagedUsage struct {
	// OnHeap and OffHeap are the totals per mode that reduce the grants; OnHeap includes GoHeap.
	OnHeap, OffHeap int64
	// GoHeap is the live Go heap Spillway did not grant beyond the allowance
	// (Config.GoHeapFeedback), already net of the on-heap consumers' bytes.
	GoHeap int64
	// Consumers counts the registered consumers.
	Consumers int
}

// unmanagedEntry boxes a registered consumer, so a poll removes the consumer it polled and not
// one registered under the same ID meanwhile (consumers need not be comparable).
type unmanagedEntry struct{ c UnmanagedConsumer }

// unmanagedTracker is Spark's unmanaged-memory registry and poller (the UnifiedMemoryManager
// companion object), one per manager instead of one per process. Polls run on acquisition,
// rate-limited by the interval, so there is no goroutine to stop.
type unmanagedTracker struct {
	interval time.Duration // <= 0: unmanaged memory is ignored
	now      func() time.Time
	log      *zap.Logger
	limit    int64   // a count above it is absurd and clamped
	heap     *goHeap // nil unless Config.GoHeapFeedback

	next  atomic.Int64 // UnixNano from which an acquisition polls again
	total [2]atomic.Int64
	goHp  atomic.Int64

	poll      sync.Mutex // held by the goroutine polling
	mu        sync.Mutex // guards consumers; never held while a consumer is called
	consumers map[UnmanagedID]*unmanagedEntry
}

func (t *unmanagedTracker) enabled() bool { return t.interval > 0 }

// used is the unmanaged memory of mode found by the last poll (getUnmanagedMemoryUsed).
func (t *unmanagedTracker) used(mode Mode) int64 {
	if !t.enabled() {
		return 0
	}
	return t.total[mode].Load()
}

func (t *unmanagedTracker) register(c UnmanagedConsumer) {
	c.Mode().check()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.consumers == nil {
		t.consumers = map[UnmanagedID]*unmanagedEntry{}
	}
	t.consumers[c.UnmanagedID()] = &unmanagedEntry{c}
}

func (t *unmanagedTracker) unregister(id UnmanagedID) {
	t.mu.Lock()
	delete(t.consumers, id)
	t.mu.Unlock()
}

func (t *unmanagedTracker) snapshot() map[UnmanagedID]*unmanagedEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.consumers)
}

// maybePoll polls when the interval has passed since the last poll and no other goroutine is
// polling; it is the acquisition path's only cost when nothing is due (a clock read and an
// atomic load).
func (t *unmanagedTracker) maybePoll() {
	if !t.enabled() {
		return
	}
	now := t.now().UnixNano()
	if now < t.next.Load() || !t.poll.TryLock() {
		return
	}
	defer t.poll.Unlock()
	if now < t.next.Load() { // polled meanwhile
		return
	}
	t.pollLocked(now)
}

// pollNow polls whatever the time (UnifiedManager.PollUnmanaged).
func (t *unmanagedTracker) pollNow() {
	if !t.enabled() {
		return
	}
	t.poll.Lock()
	defer t.poll.Unlock()
	t.pollLocked(t.now().UnixNano())
}

// pollLocked is pollUnmanagedMemoryUsers: it reads every consumer, unregisters the inactive
// ones, and stores the totals per mode. t.poll must be held.
func (t *unmanagedTracker) pollLocked(now int64) {
	t.next.Store(now + int64(t.interval))
	var total [2]int64
	for id, e := range t.snapshot() {
		n, err := e.c.UnmanagedBytes()
		switch {
		case errors.Is(err, ErrUnmanagedInactive):
			t.mu.Lock()
			if t.consumers[id] == e {
				delete(t.consumers, id)
			}
			t.mu.Unlock()
			t.log.Info("Removed inactive unmanaged memory consumer", zap.Stringer("consumer", id))
			continue
		case err != nil:
			t.log.Warn("Failed to get memory usage of an unmanaged memory consumer; counting 0",
				zap.Stringer("consumer", id), zap.Error(err))
			n = 0
		case n < 0:
			t.log.Warn("Invalid memory usage value from an unmanaged memory consumer; counting 0",
				zap.Stringer("consumer", id), zap.Int64("bytes", n))
			n = 0
		case n > t.limit:
			t.log.Warn("Unmanaged memory consumer reports more than the process's memory; clamped",
				zap.Stringer("consumer", id), zap.String("bytes", ibytes(n)), zap.String("limit", ibytes(t.limit)))
			n = t.limit
		}
		total[e.c.Mode()] = satAdd(total[e.c.Mode()], n)
	}
	if t.heap != nil {
		h := t.heap.unmanaged(total[OnHeap])
		t.goHp.Store(h)
		total[OnHeap] = satAdd(total[OnHeap], h)
	}
	// No waiter needs waking when a total falls: a task never waits for memory that unmanaged
	// consumers hold (executionPool.acquireLocked).
	for mode := range total {
		t.total[mode].Store(total[mode])
	}
	if ce := t.log.Check(zap.DebugLevel, "Unmanaged memory polling completed"); ce != nil {
		ce.Write(zap.String("onHeap", ibytes(total[OnHeap])), zap.String("offHeap", ibytes(total[OffHeap])))
	}
}

// byComponent is getMemoryByComponentType: the live sum of the consumers of one type (errors and
// negative counts count 0).
func (t *unmanagedTracker) byComponent(componentType string) int64 {
	var sum int64
	for id, e := range t.snapshot() {
		if id.ComponentType != componentType {
			continue
		}
		if n, err := e.c.UnmanagedBytes(); err == nil && n > 0 {
			if t.limit > 0 { // set while polling is enabled
				n = min(n, t.limit)
			}
			sum = satAdd(sum, n)
		}
	}
	return sum
}

// Metric names of runtime/metrics read by the Go heap source.
const (
	metricHeapLive = "/gc/heap/live:bytes"
	metricGCCycles = "/gc/cycles/total:gc-cycles"
)

// goHeap is the Go-specific unmanaged source: the live heap found by the last collection less
// what Spillway granted on-heap, less the allowance. Its fields are guarded by
// unmanagedTracker.poll.
type goHeap struct {
	// granted returns the on-heap memory granted (execution and storage), at its highest since
	// its previous call, made when the previous collection was seen: the collection seen now
	// marked live what was granted meanwhile.
	granted func() int64
	// read returns the live heap of the last collection and the number of collections so far.
	read func() (live, cycles uint64)
	// allowance is NonSpillwayAllowance + Spillway's slack (region/10 + 2 MiB).
	allowance int64
	cycles    uint64
	last      int64
}

// runtimeHeapReader reads /gc/heap/live:bytes and /gc/cycles/total:gc-cycles from
// runtime/metrics, which does not stop the world; it fails when this Go version lacks them.
func runtimeHeapReader() (func() (live, cycles uint64), error) {
	samples := []metrics.Sample{{Name: metricHeapLive}, {Name: metricGCCycles}}
	metrics.Read(samples)
	for _, s := range samples {
		if s.Value.Kind() != metrics.KindUint64 {
			return nil, fmt.Errorf("memory: Config.GoHeapFeedback: runtime/metrics has no %s on this Go version", s.Name)
		}
	}
	return func() (uint64, uint64) {
		metrics.Read(samples)
		return samples[0].Value.Uint64(), samples[1].Value.Uint64()
	}, nil
}

// unmanaged returns the live heap outside Spillway's grants, the allowance and the other on-heap
// unmanaged consumers' bytes (which the heap includes when they are Go memory). Between
// collections the figure stays what the last one gave.
func (h *goHeap) unmanaged(others int64) int64 {
	live, cycles := h.read()
	if cycles != h.cycles {
		h.cycles = cycles
		h.last = max(0, int64(min(live, 1<<62))-h.granted()-h.allowance-others)
	}
	return h.last
}

// RegisterUnmanaged registers an unmanaged consumer (registerUnmanagedMemoryConsumer); its bytes
// count from the next poll on. A consumer registered under the ID of another replaces it.
// Registering does nothing more when Config.UnmanagedPollInterval is 0 (and GoHeapFeedback is
// off): unmanaged memory is then ignored.
func (m *UnifiedManager) RegisterUnmanaged(c UnmanagedConsumer) { m.unmanaged.register(c) }

// UnregisterUnmanaged unregisters the consumer with id (unregisterUnmanagedMemoryConsumer); its
// bytes stop counting from the next poll on.
func (m *UnifiedManager) UnregisterUnmanaged(id UnmanagedID) { m.unmanaged.unregister(id) }

// PollUnmanaged polls the unmanaged consumers now, whatever the interval, and returns what it
// found. It does nothing when unmanaged memory is ignored (Config.UnmanagedPollInterval 0 and no
// GoHeapFeedback).
func (m *UnifiedManager) PollUnmanaged() UnmanagedUsage {
	m.unmanaged.pollNow()
	return m.Unmanaged()
}

// Unmanaged returns the unmanaged memory found by the last poll (zero when it is ignored).
func (m *UnifiedManager) Unmanaged() UnmanagedUsage {
	t := &m.unmanaged
	t.mu.Lock()
	n := len(t.consumers)
	t.mu.Unlock()
	u := UnmanagedUsage{OnHeap: t.used(OnHeap), OffHeap: t.used(OffHeap), Consumers: n}
	if t.enabled() {
		u.GoHeap = t.goHp.Load()
	}
	return u
}

// UnmanagedByComponent returns the bytes the consumers of componentType hold now, asking each
// (getMemoryByComponentType); it does not poll.
func (m *UnifiedManager) UnmanagedByComponent(componentType string) int64 {
	return m.unmanaged.byComponent(componentType)
}
