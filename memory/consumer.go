package memory

import (
	"context"
	"sync/atomic"
)

// Consumer is Spark's MemoryConsumer: anything that holds execution memory of one task and can
// be asked to give some back. Implementations must be comparable (pointer types), and most embed
// a ConsumerBase.
type Consumer interface {
	// Spill releases roughly size bytes (more or less is fine) by writing data out or dropping it,
	// and returns the bytes released, after releasing them (ConsumerBase.Free / FreePage). It is
	// called by the TaskManager of the same task, never with a pool lock held, possibly with
	// trigger == the consumer itself (a self-spill). It must not acquire memory (that deadlocks on
	// the TaskManager). An error is returned, wrapped, to the requester.
	Spill(size int64, trigger Consumer) (released int64, err error)
	// Used is the execution memory the consumer holds now.
	Used() int64
	// Mode is the memory mode the consumer allocates in.
	Mode() Mode
}

// ConsumerBase is the embeddable bookkeeping half of Spark's MemoryConsumer: acquire, free and
// page calls that keep Used up to date. Initialise it with Init before use:
//
//	c := &MyConsumer{}
//	c.ConsumerBase.Init(tm, memory.OnHeap, "my-map", c)
type ConsumerBase struct {
	tm   *TaskManager
	mode Mode
	name string
	self Consumer
	used atomic.Int64
}

// Init attaches the consumer to its task. self is the embedding value (what the TaskManager
// calls Spill on); name appears in logs and usage reports.
func (b *ConsumerBase) Init(tm *TaskManager, mode Mode, name string, self Consumer) {
	mode.check()
	if tm == nil || self == nil {
		panic("memory: ConsumerBase.Init needs a TaskManager and the embedding Consumer")
	}
	b.tm, b.mode, b.name, b.self = tm, mode, name, self
}

// Acquire asks for size bytes of execution memory, possibly spilling this task's consumers
// (MemoryConsumer.acquireMemory). It may grant less than size, even 0; Used grows by the grant.
func (b *ConsumerBase) Acquire(ctx context.Context, size int64) (int64, error) {
	got, err := b.tm.AcquireExecution(ctx, size, b.self)
	b.used.Add(got)
	return got, err
}

// Free releases size bytes (MemoryConsumer.freeMemory).
func (b *ConsumerBase) Free(size int64) {
	b.tm.ReleaseExecution(size, b.self)
	b.used.Add(-size)
}

// Used is the execution memory this consumer holds (MemoryConsumer.getUsed).
func (b *ConsumerBase) Used() int64 { return b.used.Load() }

// Mode is the consumer's memory mode.
func (b *ConsumerBase) Mode() Mode { return b.mode }

// String is the consumer's name.
func (b *ConsumerBase) String() string { return b.name }

// TaskManager is the task this consumer belongs to.
func (b *ConsumerBase) TaskManager() *TaskManager { return b.tm }

// AllocatePage allocates a page of max(page size, required) bytes (MemoryConsumer.allocatePage).
// When less than required can be had even after spilling it returns an error wrapping
// ErrOutOfMemory whose message carries the task's usage report.
func (b *ConsumerBase) AllocatePage(ctx context.Context, required int64) (*Page, error) {
	checkSize("AllocatePage", required)
	p, err := b.tm.allocatePage(ctx, max(b.tm.m.PageSize(), required), b.self)
	if err != nil {
		return nil, err
	}
	if p == nil || p.Size() < required {
		var got int64
		if p != nil {
			got = p.Size()
			b.tm.FreePage(p, b.self)
		}
		return nil, b.tm.outOfMemory(required, got)
	}
	b.used.Add(p.Size())
	return p, nil
}

// GrowPage enlarges a page this consumer allocated to size bytes, keeping its bytes and number
// (TaskManager.GrowPage); Used grows by the difference. It returns false, the page unchanged,
// when the task grants too little or a spill of this consumer freed the page meanwhile.
func (b *ConsumerBase) GrowPage(ctx context.Context, p *Page, size int64) (bool, error) {
	old := p.Size()
	ok, err := b.tm.GrowPage(ctx, p, size, b.self)
	if ok {
		b.used.Add(size - old)
	}
	return ok, err
}

// FreePage frees a page this consumer allocated (MemoryConsumer.freePage).
func (b *ConsumerBase) FreePage(p *Page) {
	size := p.Size()
	b.tm.FreePage(p, b.self)
	b.used.Add(-size)
}
