package tungsten

import (
	"context"
	"fmt"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// spillIO is a collection's memory.IOConsumer: the execution memory of its spill files'
// buffers (see the package doc).
type spillIO struct{ memory.IOConsumer }

// piece returns a function that releases n bytes once (later calls do nothing).
func (m *spillIO) piece(n int64) func() {
	return func() {
		m.Release(n)
		n = 0
	}
}

func (m *spillIO) outOfMemory(what string, need, got int64) error {
	return fmt.Errorf("%w: tungsten: %s needs %s for %s, got %s\n%s", memory.ErrOutOfMemory, m,
		humanize.IBytes(uint64(need)), what, humanize.IBytes(uint64(got)), m.TaskManager().UsageReport())
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
	got, err := w.io.Acquire(ctx, need)
	if err != nil {
		return false, fmt.Errorf("tungsten: %s acquiring %s for its spill writer: %w", &w.io, humanize.IBytes(uint64(need)), err)
	}
	if got < need {
		w.io.Release(got)
		return false, nil
	}
	w.held, w.record = w.held+got, n
	return true, nil
}

// close releases the reservation.
func (w *spillWriterMemory) close() {
	w.io.Release(w.held)
	w.held, w.record = 0, -1
}
