package tungsten

import (
	"context"
	"fmt"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// spillIO is the execution memory of a collection's spill files: a memory.Consumer of the
// collection's task, named "<collection> spill I/O", that holds the Go-heap buffers of the files
// it writes and reads (record batches, decompression, file buffers) and cannot spill. Those
// buffers are on the Go heap whatever the Tungsten mode, so it is an on-heap consumer. In
// memory.Strict accounting every buffer is acquired through it before it is allocated; with
// memory.SparkAllowances it acquires nothing, as in Spark.
type spillIO struct {
	base   memory.ConsumerBase
	strict bool
}

func (m *spillIO) init(tm *memory.TaskManager, name string) {
	m.base.Init(tm, memory.OnHeap, name+" spill I/O", m)
	m.strict = tm.Manager().Accounting() == memory.Strict
}

// Spill implements memory.Consumer: open files' buffers cannot be given back.
func (m *spillIO) Spill(int64, memory.Consumer) (int64, error) { return 0, nil }

// Used implements memory.Consumer.
func (m *spillIO) Used() int64 { return m.base.Used() }

// Mode implements memory.Consumer: memory.OnHeap.
func (m *spillIO) Mode() memory.Mode { return m.base.Mode() }

func (m *spillIO) String() string { return m.base.String() }

// acquire asks for n bytes and returns the grant, possibly less (n when not accounting). It may
// spill the collection: call it without the collection's lock.
func (m *spillIO) acquire(ctx context.Context, n int64) (int64, error) {
	if !m.strict || n <= 0 {
		return max(n, 0), nil
	}
	return m.base.Acquire(ctx, n)
}

func (m *spillIO) release(n int64) {
	if m.strict && n > 0 {
		m.base.Free(n)
	}
}

// piece returns a function that releases n bytes once (later calls do nothing).
func (m *spillIO) piece(n int64) func() {
	return func() {
		m.release(n)
		n = 0
	}
}

// mergeShare is the most a merge asks for at once: half of the task's fair share of the on-heap
// execution memory (the pool less the storage it cannot evict, over the active tasks, this one
// included), so that whatever consumes the merged records keeps room.
func (m *spillIO) mergeShare() int64 {
	tm := m.base.TaskManager()
	p := tm.Manager().Metrics().Pools[memory.OnHeap]
	n := int64(len(p.Tasks))
	if _, ok := p.Tasks[tm.ID()]; !ok {
		n++
	}
	return (p.Max - min(p.StorageUsed, p.StorageRegion)) / n / 2
}

func (m *spillIO) outOfMemory(what string, need, got int64) error {
	return fmt.Errorf("%w: tungsten: %s needs %s for %s, got %s\n%s", memory.ErrOutOfMemory, m,
		humanize.IBytes(uint64(need)), what, humanize.IBytes(uint64(got)), m.base.TaskManager().UsageReport())
}

// writerCost bounds the Go-heap buffers of a spill writer of cfg (batch size already defaulted)
// writing records of at most record bytes: its file buffer, its batch (BatchBytes plus one
// record, which append may grow by a quarter), the compressed copy (about as large again), the
// record being framed, and a zstd encoder's state. It is at least what a reader of the file
// it writes holds (storage.RecordWriter.ReadBufferBytes), so one reservation covers the writer
// and then the reader of its file.
func writerCost(cfg storage.RecordWriterConfig, record int64) int64 {
	batch := int64(cfg.BatchBytes) + record + 8
	n := int64(max(cfg.BufferSize, storage.DefaultBufferSize)) + 5*batch/2 + record + writerSlack
	if cfg.Compression == storage.CompressionZstd {
		n += zstdEncoderBytes
	}
	return n
}

const (
	// writerSlack covers the rounding of a writer's batch growth and its small structures.
	writerSlack = 8 << 10
	// zstdEncoderBytes is the state of a zstd record writer (see storage.RecordWriter).
	zstdEncoderBytes = 2 << 20
)

// spillWriterMemory is a collection's reservation for its one spill writer: in memory.Strict
// accounting the writer's buffers for records up to the largest the collection holds, acquired
// before the collection holds such a record and kept until it closes. A spill (which runs when
// memory is short, and cannot acquire) writes within it, and the reader of a file a forced spill
// wrote while the collection is read, or of the map's spilled pages, reads within it.
type spillWriterMemory struct {
	io     spillIO
	held   int64 // bytes acquired
	record int64 // the largest record held covers; -1 before the first reservation
}

// reserve makes the reservation cover records of n bytes and reports whether it does; false (and
// nothing more held) when the task granted less. It may spill the collection: call it without
// the collection's lock.
func (w *spillWriterMemory) reserve(ctx context.Context, cfg storage.RecordWriterConfig, n int64) (bool, error) {
	need := writerCost(cfg, n) - w.held
	got, err := w.io.acquire(ctx, need)
	if err != nil {
		return false, fmt.Errorf("tungsten: %s acquiring %s for its spill writer: %w", &w.io, humanize.IBytes(uint64(need)), err)
	}
	if got < need {
		w.io.release(got)
		return false, nil
	}
	w.held, w.record = w.held+got, n
	return true, nil
}

// close releases the reservation.
func (w *spillWriterMemory) close() {
	w.io.release(w.held)
	w.held, w.record = 0, -1
}
