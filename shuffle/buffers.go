package shuffle

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// bufferConsumer is the memory.Consumer through which a shuffle reader or writer holds, in
// Strict accounting, the buffers it cannot spill: fetched segments, record readers' and writers'
// buffers. It is nil under memory.SparkAllowances, where those buffers go unaccounted as in
// Spark; every method of a nil bufferConsumer does nothing. Its acquisitions may make the task's
// other consumers spill; its own Spill releases nothing.
type bufferConsumer struct {
	memory.ConsumerBase
	// shed, if set, gives back what can be dropped (a fetcher's loaded segments not yet read,
	// which are then streamed) and returns the bytes released.
	shed atomic.Pointer[func() int64]
}

// newBufferConsumer returns the task's consumer named name, or nil unless the task's memory
// manager accounts strictly.
func newBufferConsumer(tm *memory.TaskManager, name string) *bufferConsumer {
	if tm == nil || tm.Manager().Accounting() != memory.Strict {
		return nil
	}
	c := &bufferConsumer{}
	c.Init(tm, memory.OnHeap, name, c)
	return c
}

// Spill implements memory.Consumer: buffers in use cannot be written out; a fetcher's loaded
// segments not yet read are given back (shed) when another consumer asks.
func (c *bufferConsumer) Spill(_ int64, trigger memory.Consumer) (int64, error) {
	shed := c.shed.Load()
	if shed == nil || trigger == memory.Consumer(c) {
		return 0, nil
	}
	return (*shed)(), nil
}

// tryAcquire acquires n bytes, all or nothing, and reports whether it got them. A nil consumer
// always gets them.
func (c *bufferConsumer) tryAcquire(ctx context.Context, n int64) (bool, error) {
	if c == nil || n == 0 {
		return true, nil
	}
	got, err := c.Acquire(ctx, n)
	if err != nil {
		return false, err
	}
	if got < n {
		if got > 0 {
			c.Free(got)
		}
		return false, nil
	}
	return true, nil
}

// reserve acquires n bytes for what, or returns an error wrapping memory.ErrOutOfMemory that
// names the sizes and carries the task's usage report.
func (c *bufferConsumer) reserve(ctx context.Context, n int64, what string) error {
	ok, err := c.tryAcquire(ctx, n)
	if err != nil {
		return fmt.Errorf("shuffle: acquiring %s of execution memory for %s: %w", humanize.IBytes(uint64(n)), what, err)
	}
	if !ok {
		return c.outOfMemory(n, what)
	}
	return nil
}

// outOfMemory is the error of a request of n bytes for what that the task cannot grant.
func (c *bufferConsumer) outOfMemory(n int64, what string) error {
	return fmt.Errorf("shuffle: %v cannot acquire %s of execution memory for %s: %w\n%s",
		c, humanize.IBytes(uint64(n)), what, memory.ErrOutOfMemory, c.TaskManager().UsageReport())
}

// release gives back n bytes acquired before.
func (c *bufferConsumer) release(n int64) {
	if c != nil && n > 0 {
		c.Free(n)
	}
}

// zstdStateBytes is the estimated state of one zstd encoder or decoder of storage's record
// format (window 1 MiB plus tables).
const zstdStateBytes = 2 << 20

// batchBytes is the spill configuration's batch byte limit with its default.
func batchBytes(c collection.SpillConfig) int {
	if c.BatchBytes == 0 {
		return collection.DefaultSpillBatchBytes
	}
	return c.BatchBytes
}

// batchCap is the most a record batch of batchBytes holds, but for a record larger than the
// batch: a writer ends a batch once it reaches batchBytes and starts it with an eighth more
// capacity.
func batchCap(batchBytes int) int64 { return int64(batchBytes) + int64(batchBytes)/8 }

// compressedCap is the scratch buffer compressing a batch of n bytes takes (s2's worst case,
// n + n/6 + 32, rounded up).
func compressedCap(n int64) int64 { return n + n/6 + 64 }

// writerBytes estimates the buffers a storage.RecordWriter with cfg holds: its file buffer, its
// batch and, when compressing, the compressed copy (and a zstd encoder's state).
func writerBytes(cfg storage.RecordWriterConfig) int64 {
	if cfg.BatchBytes == 0 {
		cfg.BatchBytes = collection.DefaultSpillBatchBytes
	}
	b := batchCap(cfg.BatchBytes)
	n := int64(max(cfg.BufferSize, storage.DefaultBufferSize)) + b
	switch cfg.Compression {
	case storage.CompressionNone:
	case storage.CompressionZstd:
		n += b + zstdStateBytes
	default:
		n += compressedCap(b)
	}
	return n
}

// readerBytes estimates the buffers a storage.RecordReader holds while it reads sections of at
// most maxSection bytes written with batches of batchBytes and the given compression: its file
// buffer, the batch as stored and, when compressed, the decompressed batch (and a zstd
// decoder's state). A record larger than a batch makes its batch larger than this.
func readerBytes(maxSection int64, batchBytes int, c storage.Compression) int64 {
	b := batchCap(batchBytes)
	n := min(maxSection, storage.DefaultBufferSize) + min(maxSection, b)
	switch c {
	case storage.CompressionNone:
	case storage.CompressionZstd:
		n += b + zstdStateBytes
	default:
		n += b
	}
	return n
}
