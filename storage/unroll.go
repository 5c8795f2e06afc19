package storage

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/estimator"
	"github.com/spillway/spillway/memory"
)

// unrollState is the part of Spark's MemoryStore.putIterator shared by the values and
// bytes holders: the reservations made so far and the loop that stores records while the task
// keeps getting unroll memory.
type unrollState struct {
	ms         *MemoryStore
	task       memory.TaskID
	id         BlockID
	mode       memory.Mode
	unrollUsed int64 // unroll memory reserved by this put
}

// unrollOutcome says how the unroll loop ended.
type unrollOutcome int

const (
	unrolledAll unrollOutcome = iota // the input ended with enough memory
	outOfMemory                      // a reservation was refused: the rest stays in the input
	interrupted                      // ctx ended (Spark's task interruption, SPARK-45025)
	inputFailed                      // the input or an eviction failed: err is set
)

// run stores records with store (which returns false at the end of the input) until the input
// ends, a reservation fails or ctx ends, checking the estimated size every checkPeriod records
// and growing the reservation to growth × the size when the size reaches it.
//
// Under strict accounting (memory.Strict) the size is checked after every record, so one large
// record cannot slip between two checks, and before a record whose store grows the holder:
// growth, if not nil, returns the bytes the next store allocates beside what the estimate already
// counts (a new chunk), and the reservation must cover both before the store runs. A refused
// growth × size request is retried for the size alone.
func (u *unrollState) run(ctx context.Context, store func() (bool, error), estimate, growth func() int64) (unrollOutcome, error) {
	cfg := u.ms.cfg
	initial := cfg.UnrollMemoryThreshold
	keep, err := u.ms.ReserveUnrollMemoryForThisTask(u.task, u.id, initial, u.mode)
	if err != nil {
		return inputFailed, err
	}
	if !keep {
		u.ms.log.Warn("Failed to reserve initial memory threshold for computing block in memory",
			zap.Stringer("block", u.id), zap.Int64("task", int64(u.task)),
			zap.String("bytes", humanize.IBytes(uint64(initial))))
		return outOfMemory, nil
	}
	u.unrollUsed = initial
	threshold := initial
	done := ctx.Done()
	period := int64(cfg.UnrollMemoryCheckPeriod)
	strict := u.ms.m.Accounting() == memory.Strict
	if strict {
		period = 1
	}
	// reserve grows the reservation to growth × cur. Under strict accounting, once that is
	// refused, it asks for cur alone (now and for the rest of the put): a block is then refused
	// only when what it really holds cannot be had, not when its size times the growth factor
	// cannot.
	exact := false
	reserve := func(cur int64) (bool, error) {
		for {
			req := cur - threshold
			if !exact {
				req = int64(float64(cur)*cfg.UnrollMemoryGrowthFactor) - threshold
			}
			keep, err := u.ms.ReserveUnrollMemoryForThisTask(u.task, u.id, req, u.mode)
			if err == nil && keep {
				u.unrollUsed += req
				threshold += req
				return true, nil
			}
			if err != nil || !strict || exact {
				return false, err
			}
			exact = true
		}
	}
	for elements := int64(0); ; elements++ {
		select {
		case <-done:
			u.ms.log.Info("Failed to unroll block since the task was interrupted",
				zap.Stringer("block", u.id), zap.Int64("task", int64(u.task)), zap.Error(ctx.Err()))
			return interrupted, nil
		default:
		}
		if strict && growth != nil {
			if g := growth(); g > 0 {
				if cur := estimate() + g; cur >= threshold {
					if keep, err := reserve(cur); err != nil {
						return inputFailed, err
					} else if !keep {
						return outOfMemory, nil
					}
				}
			}
		}
		more, err := store()
		if err != nil {
			return inputFailed, err
		}
		if !more {
			return unrolledAll, nil
		}
		if elements%period != 0 {
			continue
		}
		if cur := estimate(); cur >= threshold {
			if keep, err := reserve(cur); err != nil {
				return inputFailed, err
			} else if !keep {
				return outOfMemory, nil
			}
		}
	}
}

// fitPrecise reserves what size bytes need beyond the unroll memory already reserved (the
// precise size of a fully unrolled block, or what trimming it holds for a moment), and reports
// whether they are reserved.
func (u *unrollState) fitPrecise(size int64) (bool, error) {
	if size <= u.unrollUsed {
		return true, nil
	}
	ok, err := u.ms.ReserveUnrollMemoryForThisTask(u.task, u.id, size-u.unrollUsed, u.mode)
	if ok {
		u.unrollUsed = size
	}
	return ok, err
}

// transfer turns the put's unroll memory into size bytes of storage memory for the block, in one
// step of the memory manager (Spark's "transfer unroll memory to storage memory").
func (u *unrollState) transfer(size int64) error {
	ok, err := u.ms.m.TransferUnrollToStorage(u.id, u.unrollUsed, size, u.mode)
	if err == nil && !ok {
		err = fmt.Errorf("storage: transferring %d bytes of unroll memory to %d bytes of storage memory for block %s failed",
			u.unrollUsed, size, u.id)
	}
	if err != nil {
		return err
	}
	u.ms.mu.Lock()
	if held := u.ms.unroll[u.mode][u.task] - u.unrollUsed; held > 0 {
		u.ms.unroll[u.mode][u.task] = held
	} else {
		delete(u.ms.unroll[u.mode], u.task)
	}
	u.ms.mu.Unlock()
	u.unrollUsed = 0
	return nil
}

// release gives back the put's unroll memory (error paths).
func (u *unrollState) release() {
	u.ms.ReleaseUnrollMemoryForThisTask(u.task, u.mode, u.unrollUsed)
	u.unrollUsed = 0
}

// valuesHolder is Spark's DeserializedValuesHolder: the values unrolled so far, in a
// ChunkedValues, and their tracked size. The chunks' slots are known exactly (ChunkedValues
// bounds them as it allocates them); only what the values reference is measured, at the update
// counts of an estimator.Tracker, and extrapolated in between. Growing never moves the values,
// so unlike Spark's SizeTrackingVector the samples are never reset.
type valuesHolder[T any] struct {
	vals    *ChunkedValues[T]
	est     estimator.Estimator
	tracker *estimator.Tracker // of the bytes the values reference beyond their slots
}

func newValuesHolder[T any]() *valuesHolder[T] {
	h := &valuesHolder[T]{vals: &ChunkedValues[T]{}}
	h.tracker = estimator.NewTracker(func() int64 { return h.est.Estimate(h.vals.chunks) - h.vals.slots })
	return h
}

func (h *valuesHolder[T]) store(x T) {
	h.vals.append(x)
	h.tracker.AfterUpdate()
}

// estimatedSize is the memory the values take: their slots and what they reference.
func (h *valuesHolder[T]) estimatedSize() int64 { return h.vals.slots + h.tracker.EstimateSize() }

// growth is the bytes the next store allocates beside what the values take: a new chunk when the
// last one is full.
func (h *valuesHolder[T]) growth() int64 { return h.vals.growth() }

// build returns the values and their precise size (estimator.Estimate of the whole, so objects
// several values share count once); the holder is empty afterwards. Their free slots are trimmed
// first (ChunkedValues.trim) if room grants the bytes the copies take beside what the values
// hold.
func (h *valuesHolder[T]) build(room func(int64) (bool, error)) (*ChunkedValues[T], int64, error) {
	if b := h.vals.trimBytes(); b > 0 {
		ok, err := room(h.estimatedSize() + b)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			h.vals.trim()
		}
	}
	v := h.vals
	h.vals = nil
	return v, h.est.Estimate(v.chunks), nil
}

// take returns the values unrolled so far, to hand back; the holder is empty afterwards.
func (h *valuesHolder[T]) take() *ChunkedValues[T] {
	v := h.vals
	h.vals = nil
	return v
}

// PutIteratorAsValues is Spark's MemoryStore.putIteratorAsValues: it unrolls values into
// memory as a ChunkedValues[T] for block id of task, reserving unroll memory in mode as it goes
// (first UnrollMemoryThreshold, then, every UnrollMemoryCheckPeriod records,
// UnrollMemoryGrowthFactor × the tracked size whenever the size reaches the reservation), so no
// more than the memory granted is ever held. When the input ends, the precise size of the values
// (estimator.Estimate) is charged as storage memory in place of the unroll memory and the block
// is stored: size is returned. The values are not copied as they grow (see ChunkedValues), so
// under strict accounting a block fits when its values and about one chunk do.
//
// When a reservation is refused, or ctx ends (Spark's task interruption, SPARK-45025: the
// partial result is returned, not ctx.Err()), partial hands back every record exactly once: the
// unrolled ones, then the rest of values. partial holds the unroll memory reserved so far until
// its unrolled part is consumed or it is closed.
//
// PutIteratorAsValues owns values: it closes it, unless it is handed on in partial. On an input
// error or an eviction failure it releases its unroll memory and returns the error. id must not
// be in the store (ErrBlockExists).
func PutIteratorAsValues[T any](ctx context.Context, ms *MemoryStore, task memory.TaskID, id BlockID, values Iterator[T], mode memory.Mode) (size int64, partial *PartiallyUnrolledIterator[T], err error) {
	if ms.Contains(id) {
		return 0, nil, errors.Join(ms.errPresent(id), values.Close())
	}
	u := &unrollState{ms: ms, task: task, id: id, mode: mode}
	h := newValuesHolder[T]()
	outcome, err := u.run(ctx, func() (bool, error) {
		if !values.Next() {
			return false, values.Err()
		}
		h.store(values.Value())
		return true, nil
	}, h.estimatedSize, h.growth)
	switch outcome {
	case inputFailed:
		u.release()
		return 0, nil, errors.Join(err, values.Close())
	case unrolledAll:
		room := func(n int64) (bool, error) {
			// Trimming saves less than a chunk: not worth evicting another block for.
			if need := n - u.unrollUsed; need > 0 && need > ms.freeWithoutEviction(mode) {
				return false, nil
			}
			return u.fitPrecise(n)
		}
		if ms.m.Accounting() != memory.Strict {
			room = func(int64) (bool, error) { return true, nil } // Spark does not count its copy
		}
		vals, size, err := h.build(room)
		if err != nil {
			u.release()
			return 0, nil, errors.Join(err, values.Close())
		}
		ok, err := u.fitPrecise(size)
		if err != nil {
			u.release()
			return 0, nil, errors.Join(err, values.Close())
		}
		if !ok {
			ms.logUnrollFailure(id, size)
			return 0, newPartiallyUnrolled(u, vals.draining(), values), nil
		}
		if err := u.transfer(size); err != nil {
			u.release()
			return 0, nil, errors.Join(err, values.Close())
		}
		if err := ms.insert(&memoryEntry{id: id, size: size, mode: mode, values: vals}); err != nil {
			ms.m.ReleaseStorage(size, mode)
			return 0, nil, errors.Join(err, values.Close())
		}
		ms.log.Info("Block stored as values in memory", zap.Stringer("block", id),
			zap.String("bytes", humanize.IBytes(uint64(size))),
			zap.String("free", humanize.IBytes(uint64(max(0, ms.MaxMemory()-ms.MemoryUsed())))))
		return size, nil, values.Close()
	case outOfMemory:
		ms.logUnrollFailure(id, h.estimatedSize())
	}
	// outOfMemory or interrupted: hand back what was unrolled, then the rest.
	return 0, newPartiallyUnrolled(u, h.take().draining(), values), nil
}

// PartiallyUnrolledIterator is Spark's PartiallyUnrolledIterator: the result of a put that could
// not keep a block in memory. It yields the values that were unrolled, then the rest of the
// input, each exactly once. It holds the put's unroll memory until the unrolled values are
// consumed (then it releases it and drops them: SPARK-17503) or it is closed. Close also closes
// the rest of the input. Not safe for concurrent use.
type PartiallyUnrolledIterator[T any] struct {
	ms       *MemoryStore
	task     memory.TaskID
	mode     memory.Mode
	unroll   int64       // unroll memory still held
	unrolled Iterator[T] // nil once consumed
	rest     Iterator[T]
	cur      T
	err      error
	closed   bool
}

func newPartiallyUnrolled[T any](u *unrollState, unrolled, rest Iterator[T]) *PartiallyUnrolledIterator[T] {
	p := &PartiallyUnrolledIterator[T]{ms: u.ms, task: u.task, mode: u.mode, unroll: u.unrollUsed, unrolled: unrolled, rest: rest}
	u.unrollUsed = 0
	return p
}

// UnrollMemory returns the unroll memory the iterator still holds.
func (p *PartiallyUnrolledIterator[T]) UnrollMemory() int64 { return p.unroll }

// releaseUnrolled closes the unrolled part and gives back the unroll memory.
func (p *PartiallyUnrolledIterator[T]) releaseUnrolled() error {
	if p.unrolled == nil {
		return nil
	}
	err := p.unrolled.Close()
	p.unrolled = nil
	p.ms.ReleaseUnrollMemoryForThisTask(p.task, p.mode, p.unroll)
	p.unroll = 0
	return err
}

// Next implements Iterator.
func (p *PartiallyUnrolledIterator[T]) Next() bool {
	var zero T
	p.cur = zero
	if p.closed || p.err != nil {
		return false
	}
	if p.unrolled != nil {
		if p.unrolled.Next() {
			p.cur = p.unrolled.Value()
			return true
		}
		p.err = p.unrolled.Err()
		if err := p.releaseUnrolled(); p.err == nil {
			p.err = err
		}
		if p.err != nil {
			return false
		}
	}
	if p.rest.Next() {
		p.cur = p.rest.Value()
		return true
	}
	p.err = p.rest.Err()
	return false
}

// Value implements Iterator.
func (p *PartiallyUnrolledIterator[T]) Value() T { return p.cur }

// Err implements Iterator.
func (p *PartiallyUnrolledIterator[T]) Err() error { return p.err }

// Close releases the unroll memory if the unrolled values were not all consumed, drops them, and
// closes the rest of the input.
func (p *PartiallyUnrolledIterator[T]) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	var zero T
	p.cur = zero
	return errors.Join(p.releaseUnrolled(), p.rest.Close())
}

// serializedHolder is Spark's SerializedValuesHolder: records encoded with a Codec into a record
// writer whose output goes to a ChunkedBuffer (through a writer that FinishWritingToStream can
// redirect).
type serializedHolder[T any] struct {
	codec   Codec[T]
	out     *redirectWriter
	chunks  *ChunkedWriter
	w       *RecordWriter
	scratch []byte
	pending int64 // encoded bytes in the record writer's current batch
	count   int64 // records written
}

// redirectWriter is Spark's RedirectableOutputStream.
type redirectWriter struct{ w io.Writer }

func (r *redirectWriter) Write(p []byte) (int, error) { return r.w.Write(p) }

func newSerializedHolder[T any](ms *MemoryStore, codec Codec[T]) (*serializedHolder[T], error) {
	h := &serializedHolder[T]{codec: codec, chunks: NewChunkedWriter(ms.cfg.ChunkSize)}
	h.out = &redirectWriter{w: h.chunks}
	w, err := NewRecordWriter(h.out, ms.cfg.recordConfig())
	if err != nil {
		return nil, err
	}
	h.w = w
	return h, nil
}

func (h *serializedHolder[T]) store(v T) error {
	h.scratch = h.codec.Append(h.scratch[:0], v)
	if err := h.w.Write(h.scratch); err != nil {
		return err
	}
	h.count++
	h.pending += int64(len(h.scratch)) + 1 // the record and its uvarint length prefix
	for n := len(h.scratch) >> 7; n > 0; n >>= 7 {
		h.pending++
	}
	if h.w.Records() == h.count {
		h.pending = 0 // the batch was written out
	}
	if cap(h.scratch) > 64<<10 {
		h.scratch = nil // do not keep a buffer sized for one huge record
	}
	return nil
}

// estimatedSize is the memory the bytes serialized so far take: the chunks allocated (the last
// one is allocated whole), the bytes buffered by the record writer, and the current batch.
func (h *serializedHolder[T]) estimatedSize() int64 {
	return h.chunks.Allocated() + (h.w.BytesWritten() - h.chunks.Size()) + h.pending
}

// discard drops everything the holder holds.
func (h *serializedHolder[T]) discard() {
	h.out.w = io.Discard
	_ = h.w.Close()
	h.chunks = nil
	h.scratch = nil
}

// PutIteratorAsBytes is Spark's MemoryStore.putIteratorAsBytes: as PutIteratorAsValues,
// but the records are encoded with codec in the record file format (checksummed batches,
// compressed if MemoryStoreConfig.Compress) into a ChunkedBuffer of ChunkSize chunks, and the
// tracked size is the memory those bytes take (the chunks allocated, the last one whole, plus the
// record writer's buffered bytes). The stored size is the buffer's Allocated bytes (at least its
// Size; Spark charges the size).
//
// When a reservation is refused, partial holds the bytes written so far and the rest of the
// input: finish it with exactly one of FinishWritingToStream, ValuesIterator or Discard. When ctx
// ends, partial is returned together with ctx.Err() (Spark kills the task); Discard it.
// PutIteratorAsBytes owns values as PutIteratorAsValues does.
func PutIteratorAsBytes[T any](ctx context.Context, ms *MemoryStore, task memory.TaskID, id BlockID, values Iterator[T], mode memory.Mode, codec Codec[T]) (size int64, partial *PartiallySerializedBlock[T], err error) {
	if ms.Contains(id) {
		return 0, nil, errors.Join(ms.errPresent(id), values.Close())
	}
	h, err := newSerializedHolder(ms, codec)
	if err != nil {
		return 0, nil, errors.Join(err, values.Close())
	}
	u := &unrollState{ms: ms, task: task, id: id, mode: mode}
	fail := func(err error) (int64, *PartiallySerializedBlock[T], error) {
		h.discard()
		u.release()
		return 0, nil, errors.Join(err, values.Close())
	}
	outcome, err := u.run(ctx, func() (bool, error) {
		if !values.Next() {
			return false, values.Err()
		}
		return true, h.store(values.Value())
	}, h.estimatedSize, nil)
	switch outcome {
	case inputFailed:
		return fail(err)
	case unrolledAll:
		if err := h.w.Close(); err != nil {
			return fail(err)
		}
		buf := h.chunks.Finish()
		h.chunks = nil
		size := buf.Allocated() // what the chunks really hold, at least buf.Size()
		ok, err := u.fitPrecise(size)
		if err != nil {
			buf.Dispose()
			return fail(err)
		}
		if !ok {
			ms.logUnrollFailure(id, size)
			// Spark would hand back a PartiallySerializedBlock over the whole block here; the
			// finished buffer is equivalent to one whose input is exhausted.
			return 0, newPartiallySerialized(u, h, buf, values), nil
		}
		if err := u.transfer(size); err != nil {
			buf.Dispose()
			return fail(err)
		}
		if err := ms.insert(&memoryEntry{id: id, size: size, mode: mode, bytes: buf}); err != nil {
			buf.Dispose()
			ms.m.ReleaseStorage(size, mode)
			return 0, nil, errors.Join(err, values.Close())
		}
		ms.log.Info("Block stored as bytes in memory", zap.Stringer("block", id),
			zap.String("bytes", humanize.IBytes(uint64(size))),
			zap.String("free", humanize.IBytes(uint64(max(0, ms.MaxMemory()-ms.MemoryUsed())))))
		return size, nil, values.Close()
	case outOfMemory:
		ms.logUnrollFailure(id, h.estimatedSize())
		return 0, newPartiallySerialized(u, h, nil, values), nil
	}
	return 0, newPartiallySerialized(u, h, nil, values), ctx.Err()
}

// PartiallySerializedBlock is Spark's PartiallySerializedBlock: the result of a serialized put
// that could not keep a block in memory. It holds the records serialized so far (and the unroll
// memory they use) and the rest of the input. Call exactly one of FinishWritingToStream and
// ValuesIterator, once (a second call panics: "can only call one of FinishWritingToStream or
// ValuesIterator, and only once"), or Discard, which may be called any time and more than once;
// after Discard the other two panic ("cannot call methods on a discarded
// PartiallySerializedBlock"). Not safe for concurrent use.
type PartiallySerializedBlock[T any] struct {
	u        *unrollState
	h        *serializedHolder[T]
	finished *ChunkedBuffer // set when the input was already exhausted
	rest     Iterator[T]
	consumed bool
	discard  bool
}

func newPartiallySerialized[T any](u *unrollState, h *serializedHolder[T], finished *ChunkedBuffer, rest Iterator[T]) *PartiallySerializedBlock[T] {
	p := &PartiallySerializedBlock[T]{u: &unrollState{}, h: h, finished: finished, rest: rest}
	*p.u = *u
	u.unrollUsed = 0
	return p
}

// UnrollMemory returns the unroll memory the block still holds.
func (p *PartiallySerializedBlock[T]) UnrollMemory() int64 { return p.u.unrollUsed }

func (p *PartiallySerializedBlock[T]) verify() {
	if p.discard {
		panic("storage: cannot call methods on a discarded PartiallySerializedBlock")
	}
	if p.consumed {
		panic("storage: can only call one of FinishWritingToStream or ValuesIterator, and only once")
	}
	p.consumed = true
}

// Discard drops the serialized bytes, releases the unroll memory and closes the rest of the
// input. It is idempotent.
func (p *PartiallySerializedBlock[T]) Discard() error {
	if p.discard {
		return nil
	}
	p.discard = true
	if p.consumed {
		return nil // the other call took ownership of everything
	}
	p.h.discard()
	if p.finished != nil {
		p.finished.Dispose()
		p.finished = nil
	}
	p.u.release()
	return p.rest.Close()
}

// FinishWritingToStream writes the whole block to w in the record file format: the bytes
// serialized so far (releasing them and the unroll memory), then the rest of the input, encoded
// as it is read. It closes the input. It returns the first error of the input, the codec or w.
func (p *PartiallySerializedBlock[T]) FinishWritingToStream(w io.Writer) error {
	p.verify()
	defer p.rest.Close()
	if p.finished != nil {
		_, err := p.finished.WriteTo(w)
		p.finished.Dispose()
		p.finished = nil
		p.u.release()
		return err
	}
	// Bytes already in chunks go first; the record writer's buffered ones follow once redirected.
	p.h.out.w = w
	buf := p.h.chunks.Finish()
	p.h.chunks = nil
	_, err := buf.WriteTo(w)
	buf.Dispose()
	p.u.release()
	if err != nil {
		p.h.discard()
		return fmt.Errorf("storage: writing the serialized part of block %s: %w", p.u.id, err)
	}
	for p.rest.Next() {
		if err := p.h.store(p.rest.Value()); err != nil {
			p.h.discard()
			return err
		}
	}
	if err := p.rest.Err(); err != nil {
		p.h.discard()
		return err
	}
	return p.h.w.Close()
}

// ValuesIterator returns an iterator over all the block's records: the serialized ones, decoded
// from the bytes, then the rest of the input. It is a PartiallyUnrolledIterator that releases the
// unroll memory and the bytes once the serialized records are consumed, or when it is closed.
func (p *PartiallySerializedBlock[T]) ValuesIterator() Iterator[T] {
	p.verify()
	buf := p.finished
	p.finished = nil
	if buf == nil {
		if err := p.h.w.Close(); err != nil {
			p.h.discard()
			it := newPartiallyUnrolled(p.u, ErrorIterator[T](err), p.rest)
			return it
		}
		buf = p.h.chunks.Finish()
		p.h.chunks = nil
	}
	p.h.scratch = nil
	return newPartiallyUnrolled(p.u, decodeChunks(buf, p.h.codec), p.rest)
}

// decodeChunks iterates over the records of a record-format ChunkedBuffer and disposes of the
// buffer when it is closed.
func decodeChunks[T any](buf *ChunkedBuffer, codec Codec[T]) Iterator[T] {
	rr := NewRecordReader(buf.Reader(), buf.Size())
	return recordIterator(rr, codec, func() error {
		err := rr.Close()
		buf.Dispose()
		return err
	})
}
