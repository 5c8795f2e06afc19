package memory

import (
	"context"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TaskConfig configures a TaskManager; its zero value is Spark's behaviour.
type TaskConfig struct {
	// VictimOrder picks which consumer spills next. nil means SparkOrder.
	VictimOrder VictimOrder
	// Logger receives the task's logs under the name "memory". nil means the manager's logger.
	Logger *zap.Logger
}

// TaskManager is Spark's TaskMemoryManager: the per-task front of a UnifiedManager. It hands
// execution memory to the task's consumers, asks them to spill when memory is short, keeps the
// task's page table, and frees everything the task still holds when it ends. All methods are safe
// for concurrent use by the task's goroutines.
type TaskManager struct {
	m     *UnifiedManager
	id    TaskID
	mode  Mode // tungstenMemoryMode
	order VictimOrder
	log   *zap.Logger

	// mu serialises acquisitions and is held across Spill calls (Spark: synchronized on the TMM).
	// Releases never take it.
	mu      sync.Mutex
	victims *Victims // guarded by mu

	// state guards the consumer list and the page table; it is a leaf lock, never held while
	// calling out, so Spill implementations may free pages.
	state     sync.Mutex
	consumers []Consumer
	pages     [PageTableSize]*Page
	allocated [PageTableSize / 64]uint64

	current [2]atomic.Int64 // execution bytes per mode acquired through this manager
	peak    [2]atomic.Int64
}

// NewTaskManager returns the memory manager of one task (new TaskMemoryManager(mm, taskAttemptId)).
func NewTaskManager(m *UnifiedManager, task TaskID, cfg TaskConfig) *TaskManager {
	if m == nil {
		panic("memory: NewTaskManager needs a UnifiedManager")
	}
	t := &TaskManager{m: m, id: task, mode: m.tungsten, order: cfg.VictimOrder, log: m.log, victims: newVictims()}
	if t.order == nil {
		t.order = SparkOrder{}
	}
	if cfg.Logger != nil {
		t.log = cfg.Logger.Named("memory")
	}
	t.log = t.log.With(zap.Int64("task", int64(task)))
	return t
}

// ID is the task's id (taskAttemptId).
func (t *TaskManager) ID() TaskID { return t.id }

// Manager is the UnifiedManager the task draws from.
func (t *TaskManager) Manager() *UnifiedManager { return t.m }

// PeakExecution is the most execution memory of mode this task held through this manager at once
// (getPeakOnHeapExecutionMemory / getPeakOffHeapExecutionMemory; the PeakExecutionBytes metric).
func (t *TaskManager) PeakExecution(mode Mode) int64 {
	mode.check()
	return t.peak[mode].Load()
}

// AcquireExecution acquires up to required bytes of execution memory in c's mode on behalf of c
// (TaskMemoryManager.acquireExecutionMemory). When the pool grants less, it asks
// the task's consumers of that mode to spill in the VictimOrder (Spark's: the smallest that covers
// the shortfall, else the largest, the requester last), re-acquiring after each spill. It returns
// the bytes granted, possibly fewer than required. A spill error or a cancellation returns 0 with
// the error (wrapped, or ctx.Err()) after giving back what this call had acquired.
func (t *TaskManager) AcquireExecution(ctx context.Context, required int64, c Consumer) (int64, error) {
	checkSize("AcquireExecution", required)
	if required == 0 {
		return 0, nil
	}
	mode := c.Mode()
	t.mu.Lock()
	defer t.mu.Unlock()
	got, err := t.m.AcquireExecution(ctx, required, t.id, mode)
	if err != nil {
		return 0, err
	}
	if got < required {
		if got, err = t.spill(ctx, required, got, c, mode); err != nil {
			return 0, err
		}
	}
	t.addConsumer(c)
	if cur := t.current[mode].Add(got); cur > t.peak[mode].Load() {
		t.peak[mode].Store(cur) // only acquisitions raise the peak, and they hold mu
	}
	return got, nil
}

// spill runs Spark's spill loop; mu is held.
func (t *TaskManager) spill(ctx context.Context, required, got int64, requester Consumer, mode Mode) (int64, error) {
	v := t.victims
	v.reset()
	t.state.Lock()
	for _, c := range t.consumers {
		if c.Mode() != mode {
			continue
		}
		if used := c.Used(); used > 0 {
			v.add(c, t.order.Rank(c, used, requester))
		}
	}
	t.state.Unlock()
	for got < required && v.Len() > 0 {
		need := required - got
		victim := t.order.Choose(v, need)
		released, err := victim.Consumer.Spill(need, requester)
		t.m.spills.Add(1)
		if err != nil {
			t.m.releaseExecution(got, t.id, mode)
			return 0, fmt.Errorf("memory: task %d: error while calling Spill on %v for %s: %w",
				t.id, victim.Consumer, ibytes(need), err)
		}
		if released < 0 {
			panic(fmt.Sprintf("memory: %v.Spill returned negative %d", victim.Consumer, released))
		}
		t.m.spilledBytes.Add(released)
		if released == 0 {
			v.remove(victim)
			continue
		}
		if ce := t.log.Check(zapcore.DebugLevel, "released memory by spilling"); ce != nil {
			ce.Write(zap.Stringer("consumer", stringer{victim.Consumer}), zap.String("bytes", ibytes(released)),
				zap.Stringer("for", stringer{requester}))
		}
		// Another task may take some of what was released first (SPARK-35486); the victim stays
		// under its old rank and may be asked again.
		more, err := t.m.AcquireExecution(ctx, need, t.id, mode)
		if err != nil {
			t.m.releaseExecution(got, t.id, mode)
			return 0, err
		}
		got += more
	}
	return got, nil
}

func (t *TaskManager) addConsumer(c Consumer) {
	t.state.Lock()
	defer t.state.Unlock()
	for _, x := range t.consumers {
		if x == c {
			return
		}
	}
	t.consumers = append(t.consumers, c)
}

// ReleaseExecution releases size bytes that c acquired (releaseExecutionMemory). It never takes
// the task's acquisition lock, so a consumer can release while another consumer of the same task
// waits inside the pool.
func (t *TaskManager) ReleaseExecution(size int64, c Consumer) {
	mode := c.Mode()
	released := t.m.releaseExecution(size, t.id, mode)
	t.current[mode].Add(-released)
}

// AllocatePage acquires size bytes for c and returns them as a page of the Tungsten mode
// (TaskMemoryManager.allocatePage): a []byte on-heap, an anonymous mapping off-heap. When memory is
// short the page can be smaller than size (check Page.Size); when nothing can be had it returns an
// error wrapping ErrOutOfMemory with the usage report. It returns ErrPageTooLarge above
// MaxPageSize and ErrPageTableFull when the task already holds PageTableSize pages. c's mode must
// be the Tungsten mode and size must be positive (else it panics). The page is not zeroed: it may
// reuse the memory of a page of the same size freed through the same UnifiedManager (Spark's
// allocator does not clear a page either).
func (t *TaskManager) AllocatePage(ctx context.Context, size int64, c Consumer) (*Page, error) {
	p, err := t.allocatePage(ctx, size, c)
	if err == nil && p == nil {
		err = t.outOfMemory(size, 0)
	}
	return p, err
}

// allocatePage is AllocatePage returning (nil, nil) when nothing could be acquired.
func (t *TaskManager) allocatePage(ctx context.Context, size int64, c Consumer) (*Page, error) {
	if size <= 0 {
		panic(fmt.Sprintf("memory: AllocatePage of %d bytes", size))
	}
	if m := c.Mode(); m != t.mode {
		panic(fmt.Sprintf("memory: AllocatePage for %s consumer %v in a task whose pages are %s", m, c, t.mode))
	}
	if size > MaxPageSize {
		return nil, fmt.Errorf("%w: cannot allocate a page of %d bytes, the maximum is %d bytes", ErrPageTooLarge, size, MaxPageSize)
	}
	acquired, err := t.AcquireExecution(ctx, size, c)
	if err != nil || acquired == 0 {
		return nil, err
	}
	t.state.Lock()
	number := t.takePageNumberLocked()
	t.state.Unlock()
	if number < 0 {
		t.ReleaseExecution(acquired, c)
		return nil, fmt.Errorf("%w: have already allocated a maximum of %d pages (task %d)", ErrPageTableFull, PageTableSize, t.id)
	}
	p, err := t.m.newTaskPage(t.mode, acquired)
	t.state.Lock()
	if err != nil {
		t.allocated[number/64] &^= 1 << (number % 64)
	} else {
		p.number, p.owner = number, t
		t.pages[number] = p
	}
	t.state.Unlock()
	if err != nil {
		t.ReleaseExecution(acquired, c)
		return nil, fmt.Errorf("memory: task %d: allocating a page of %s: %w", t.id, ibytes(acquired), err)
	}
	return p, nil
}

// takePageNumberLocked marks and returns the lowest free page number, or -1 when all are taken.
func (t *TaskManager) takePageNumberLocked() int {
	for i, w := range t.allocated {
		if w != ^uint64(0) {
			bit := bits.TrailingZeros64(^w)
			t.allocated[i] |= 1 << bit
			return i*64 + bit
		}
	}
	return -1
}

// GrowPage enlarges p, a page c allocated through this TaskManager, to size bytes, keeping its
// bytes and its page number. Spark has no such call (a LongArray grows by copying into a new
// page); it lets an array that only ever grows, like a sorter's pointer array, grow without
// being held twice:
//   - off-heap on Linux the mapping grows in place or moves without a copy (mremap), so only
//     the difference is acquired;
//   - on-heap (and off-heap elsewhere) the bytes are copied into new memory, so size bytes are
//     acquired first and p's old size released after the copy, as an allocation of a new page
//     and a free of the old one would.
//
// Acquiring may spill c, or any consumer of the task. It returns false, p unchanged and nothing
// acquired, when the task grants less than it needs or when p was freed while it acquired (by a
// spill of c). The bytes may move: a slice from p.Bytes() taken before the call must not be
// used after it, and nothing may read or free p while it runs. It panics when size is not larger than
// p's size, and for a page that is not one of the task's; it returns ErrPageTooLarge above
// MaxPageSize.
func (t *TaskManager) GrowPage(ctx context.Context, p *Page, size int64, c Consumer) (bool, error) {
	if m := c.Mode(); m != t.mode || p.mode != t.mode {
		panic(fmt.Sprintf("memory: GrowPage of a %s page for %s consumer %v in a task whose pages are %s", p.mode, m, c, t.mode))
	}
	if size <= p.size {
		panic(fmt.Sprintf("memory: GrowPage of a page of %d bytes to %d bytes", p.size, size))
	}
	if size > MaxPageSize {
		return false, fmt.Errorf("%w: cannot grow a page to %d bytes, the maximum is %d bytes", ErrPageTooLarge, size, MaxPageSize)
	}
	if !t.holds(p) {
		panic("memory: GrowPage of a page this task does not hold")
	}
	copies := p.mode == OnHeap || remapCopies
	need := size - p.size
	if copies {
		need = size
	}
	got, err := t.AcquireExecution(ctx, need, c)
	if err != nil {
		return false, err
	}
	if got < need || !t.holds(p) {
		t.ReleaseExecution(got, c)
		return false, nil
	}
	old := p.size
	if p.mode == OnHeap {
		data := t.m.pages.get(OnHeap, size)
		if data == nil {
			data = make([]byte, size)
		}
		copyPreemptibly(data, p.data)
		t.m.freeTaskPage(&Page{mode: OnHeap, number: NoPageNumber, size: old, data: p.data})
		p.data, p.size = data, size
	} else {
		t.m.unmapAll(t.m.pages.trim(t.m.offHeapFree())) // the acquisition may have taken memory the pool counted on
		data, err := remap(p.data, size)
		if err != nil {
			t.ReleaseExecution(got, c)
			return false, fmt.Errorf("memory: task %d: growing an off-heap page of %s to %s: %w", t.id, ibytes(old), ibytes(size), err)
		}
		p.data, p.size = data, size
	}
	if copies {
		t.ReleaseExecution(old, c)
	}
	return true, nil
}

// holds reports whether p is in the task's page table.
func (t *TaskManager) holds(p *Page) bool {
	t.state.Lock()
	defer t.state.Unlock()
	return p.number >= 0 && p.owner == t && t.pages[p.number] == p
}

// copyPreemptibly copies src into dst a megabyte at a time. One memmove of hundreds of megabytes
// cannot be preempted, and a collection starting meanwhile spins on the other core until it ends
// (an asynchronous preemption signal almost always lands inside memmove, where it cannot stop
// the goroutine); each chunk is copied by a call whose prologue is a synchronous preemption
// point, as the runtime clears large allocations in chunks.
func copyPreemptibly(dst, src []byte) {
	const chunk = 1 << 20
	for len(src) > 0 {
		n := copyChunk(dst, src[:min(chunk, len(src))])
		dst, src = dst[n:], src[n:]
	}
}

//go:noinline
func copyChunk(dst, src []byte) int { return copy(dst, src) }

// FreePage frees a page c allocated through this TaskManager and releases its memory
// (TaskMemoryManager.freePage). It panics for a page not allocated by AllocatePage, a page
// already freed, and a page of another task.
func (t *TaskManager) FreePage(p *Page, c Consumer) {
	t.state.Lock()
	switch {
	case p.number == NoPageNumber:
		t.state.Unlock()
		panic("memory: FreePage called on memory that was not allocated with AllocatePage")
	case p.number == FreedInTaskManagerPageNumber || p.number == FreedInAllocatorPageNumber:
		t.state.Unlock()
		panic("memory: FreePage called on a page that has already been freed")
	case p.owner != t:
		t.state.Unlock()
		panic(fmt.Sprintf("memory: FreePage of a page of task %d called on task %d", p.owner.id, t.id))
	}
	t.pages[p.number] = nil
	t.allocated[p.number/64] &^= 1 << (p.number % 64)
	p.number = FreedInTaskManagerPageNumber
	p.owner = nil
	t.state.Unlock()
	t.ReleaseExecution(p.Size(), c)
	t.m.freeTaskPage(p)
}

// EncodePageNumberAndOffset packs p's page number and an offset inside p into one address
// (encodePageNumberAndOffset): page number in the high 13 bits, offset in the low 51.
func (t *TaskManager) EncodePageNumberAndOffset(p *Page, offset int64) int64 {
	if p.number < 0 {
		panic("memory: EncodePageNumberAndOffset of a page that is not in a page table")
	}
	return EncodePageNumberAndOffset(p.number, offset)
}

// Page returns the page an address points into, or nil when no page of this task has that
// number (getPage).
func (t *TaskManager) Page(address int64) *Page {
	t.state.Lock()
	defer t.state.Unlock()
	return t.pages[DecodePageNumber(address)]
}

// OffsetInPage is the offset part of an address (getOffsetInPage).
func (t *TaskManager) OffsetInPage(address int64) int64 { return DecodeOffset(address) }

// Close frees everything the task still holds (cleanUpAllAllocatedMemory): it forgets its
// consumers, frees every page left in the page table, releases all the task's execution memory in
// both modes, and returns the bytes released. A positive result is a leak: Close logs "Managed
// memory leak detected" with the size. The TaskManager stays usable.
func (t *TaskManager) Close() (leaked int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.state.Lock()
	for _, c := range t.consumers {
		if used := c.Used(); used > 0 {
			t.log.Debug("unreleased memory from consumer", zap.Stringer("consumer", stringer{c}), zap.String("bytes", ibytes(used)))
		}
	}
	t.consumers = nil
	var pages []*Page
	for i, p := range t.pages {
		if p != nil {
			t.log.Debug("unreleased page", zap.Int("page", i), zap.String("bytes", ibytes(p.Size())))
			p.number, p.owner = FreedInTaskManagerPageNumber, nil
			t.pages[i] = nil
			pages = append(pages, p)
		}
	}
	clear(t.allocated[:])
	t.state.Unlock()
	leaked = t.m.ReleaseAllExecutionForTask(t.id)
	for _, p := range pages {
		t.m.freeTaskPage(p)
	}
	t.current[OnHeap].Store(0)
	t.current[OffHeap].Store(0)
	if leaked > 0 {
		t.log.Warn("Managed memory leak detected", zap.String("bytes", ibytes(leaked)), zap.Int64("size", leaked))
	}
	return leaked
}

// consumerName is how a usage report names c: its String method, else its type. A consumer
// without one is never printed with %v, which would read its fields by reflection while its
// own goroutine may be changing them.
func consumerName(c Consumer) string {
	if s, ok := c.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", c)
}

// UsageReport describes the task's memory like Spark's showMemoryUsage, with human-readable sizes.
func (t *TaskManager) UsageReport() string {
	t.state.Lock()
	consumers := append([]Consumer(nil), t.consumers...)
	t.state.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "Memory used in task %d\n", t.id)
	var sum int64
	for _, c := range consumers {
		if used := c.Used(); used > 0 {
			sum += used
			fmt.Fprintf(&b, "Acquired by %s: %s\n", consumerName(c), ibytes(used))
		}
	}
	task := t.m.ExecutionUsedForTask(t.id)
	fmt.Fprintf(&b, "%s of memory were used by task %d but are not associated with specific consumers\n", ibytes(task-sum), t.id)
	fmt.Fprintf(&b, "%s of memory are used for execution and %s of memory are used for storage",
		ibytes(t.m.ExecutionUsed()), ibytes(t.m.StorageUsed()))
	if u := t.m.Unmanaged(); u.OnHeap > 0 || u.OffHeap > 0 {
		fmt.Fprintf(&b, "\n%s on-heap (%s of it the live Go heap beyond the allowance) and %s off-heap are held by unmanaged memory outside Spillway",
			ibytes(u.OnHeap), ibytes(u.GoHeap), ibytes(u.OffHeap))
	}
	return b.String()
}

// outOfMemory logs the usage report and returns the ErrOutOfMemory a consumer reports when it
// got less than required (MemoryConsumer.throwOom).
func (t *TaskManager) outOfMemory(required, got int64) error {
	report := t.UsageReport()
	t.log.Info("memory usage before out of memory", zap.String("report", report))
	return fmt.Errorf("%w: unable to acquire %s of memory, got %s\n%s", ErrOutOfMemory, ibytes(required), ibytes(got), report)
}

// stringer names a Consumer for zap (consumerName).
type stringer struct{ v Consumer }

func (s stringer) String() string { return consumerName(s.v) }
