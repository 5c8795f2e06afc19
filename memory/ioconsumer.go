package memory

import "context"

// IOConsumer is the execution memory of the Go-heap buffers of the files a collection writes and
// reads (record batches, compression, file buffers): a Consumer of the collection's task, named
// "<collection> spill I/O", that cannot spill (an open file's buffers cannot be given back). The
// buffers are on the Go heap whatever the collection's mode, so it is an on-heap consumer. In
// Strict accounting every buffer is acquired through it before it is allocated; with
// SparkAllowances it grants without acquiring, as Spark does not account these buffers.
//
// Its zero value is unusable: call Init. It is comparable by pointer like every Consumer; a
// collection that must tell its own I/O consumer's acquisitions apart compares trigger with it.
type IOConsumer struct {
	base   ConsumerBase
	strict bool
}

// Init attaches the consumer to task tm, naming it after the collection it serves.
func (c *IOConsumer) Init(tm *TaskManager, collection string) {
	c.base.Init(tm, OnHeap, collection+" spill I/O", c)
	c.strict = tm.Manager().Accounting() == Strict
}

// Spill implements Consumer: open files' buffers cannot be given back.
func (c *IOConsumer) Spill(int64, Consumer) (int64, error) { return 0, nil }

// Used implements Consumer.
func (c *IOConsumer) Used() int64 { return c.base.Used() }

// Mode implements Consumer: OnHeap.
func (c *IOConsumer) Mode() Mode { return c.base.Mode() }

// String is the consumer's name.
func (c *IOConsumer) String() string { return c.base.String() }

// Strict reports whether the task's manager accounts the buffers (Strict accounting).
func (c *IOConsumer) Strict() bool { return c.strict }

// TaskManager is the consumer's task.
func (c *IOConsumer) TaskManager() *TaskManager { return c.base.TaskManager() }

// Acquire asks for n bytes and returns the grant, possibly less; without Strict accounting it
// grants n at once. It may spill the task's consumers, so a collection calls it without its own
// lock.
func (c *IOConsumer) Acquire(ctx context.Context, n int64) (int64, error) {
	if !c.strict || n <= 0 {
		return max(n, 0), nil
	}
	return c.base.Acquire(ctx, n)
}

// Release gives back n bytes acquired through Acquire.
func (c *IOConsumer) Release(n int64) {
	if c.strict && n > 0 {
		c.base.Free(n)
	}
}

// MergeShare is the most a merge asks for its readers (and writer) at once: half of the task's
// fair share of the on-heap execution memory (the pool less the storage it cannot evict, over
// the active tasks, this one included), so that whatever consumes the merged records (a
// collection filling from them, the next operator of a pipeline) keeps room: a merge that took
// the task's whole share would leave that consumer nothing and make it spill a tiny file every
// few records. The files beyond it are merged in passes first.
func (c *IOConsumer) MergeShare() int64 {
	tm := c.base.TaskManager()
	p := tm.Manager().Metrics().Pools[OnHeap]
	n := int64(len(p.Tasks))
	if _, ok := p.Tasks[tm.ID()]; !ok {
		n++
	}
	return (p.Max - min(p.StorageUsed, p.StorageRegion)) / n / 2
}
