package collection

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync/atomic"
	"unsafe"
)

// Overlapped spills (SorterConfig.Overlap), without aggregation. When the sorter's buffer must
// spill while it is filled, handOff gives it to a spillJob: a goroutine sorts it and writes the
// spill file while the caller inserts into a new buffer. The job keeps the memory of the buffer
// it writes (and its spill writer's reservation) until the file is written, and gives it back
// itself; the new buffer fills what the task has left. So that two buffers alternate within the
// budget, once the sorter has spilled each buffer is sized at once for the records half the
// task's fair share holds (spillTarget) and spills when full instead of doubling. (A map that
// aggregates would have to spill at half its size and combine less: it spills as Spark's does.)
// At most one job is in flight: a spill due while one runs waits for it (ctx cancels the wait),
// and so does an acquisition the task cannot grant (the sorter's Spill waits for the job and
// reports the memory it gave back), which is also how a forced spill from another consumer frees
// memory. A job's result — the file, or its error, which breaks the sorter — is collected with
// the lock held at the next insert batch or spill, and at the end of InsertAll, which waits for
// it (callers insert once and then read, which would wait anyway; so every spill file is written
// when InsertAll returns). A sorter that breaks, and Close, stop the job, wait for it and delete
// its file.

// errSpillStopped is the error of a spill job stopped by Close or by a failure of the sorter.
var errSpillStopped = errors.New("collection: spill stopped")

// spillJob is a spill being sorted and written in the background.
type spillJob[K comparable, C any] struct {
	done   chan struct{} // closed when the job has ended and given back its memory
	stop   atomic.Bool   // set by stopSpill: end as soon as possible
	held   int64         // the collection's execution memory, given back when the job ends
	writer int64         // the spill writer's reservation on the sorter's spill I/O consumer, likewise
	bytes  int64         // the collection's estimated size, for the log

	// Written by the job before done is closed.
	f   sorterSpill
	err error

	// Guarded by the sorter's lock.
	reported bool // Spill reported the job's memory as released
}

// handOff is the overlapped spillCollection: it waits for the spill in flight, if any, then hands
// the in-memory collection and its memory to a new spillJob and starts an empty collection. It
// returns 0 bytes written: they are counted when the job's file is collected. Called by
// MaybeSpill with the lock held.
func (s *ExternalSorter[K, V, C]) handOff(ctx context.Context) (int64, error) {
	if err := s.waitSpill(ctx); err != nil {
		return 0, err
	}
	if err := s.checkUsable(); err != nil {
		return 0, err
	}
	sp := &s.sp
	j := &spillJob[K, C]{done: make(chan struct{}), held: sp.threshold - sp.allowance, writer: sp.writerHeld,
		bytes: s.collectionSize()}
	sp.threshold, sp.writerHeld = sp.allowance, 0 // the job gives them back (ReleaseMemory finds nothing)
	m, buf := s.m, s.buf
	s.m, s.buf = nil, nil
	s.job = j
	if j.held < j.writer {
		// The collection holds less than its spill writer's buffers (a tiny budget): the job's
		// memory would mostly sit on the spill I/O consumer, which the task cannot ask to spill,
		// and overlapping so small a spill gains nothing. Write it now.
		s.runSpill(j, m, buf)
		if err := s.collectSpill(); err != nil {
			return 0, err
		}
	} else {
		go s.runSpill(j, m, buf)
	}
	s.newCollection()
	s.target = s.spillTarget()
	return 0, nil
}

// runSpill is a spillJob's goroutine: it sorts the collection by partition and key (or key hash),
// writes it to a spill file, drops it and gives its memory back.
func (s *ExternalSorter[K, V, C]) runSpill(j *spillJob[K, C], m *PartitionedAppendOnlyMap[K, C], buf *PartitionedPairBuffer[K, C]) {
	defer close(j.done)
	if s.jobStart != nil {
		s.jobStart()
	}
	if j.stop.Load() {
		j.err = errSpillStopped
	} else {
		it := &stoppable[K, C]{Iterator: s.sorted(m, buf, true), stop: &j.stop}
		m, buf = nil, nil
		j.f, j.err = writeSorterSpill(s.disk, s.sp.cfg, s.codec, s.n, it) // drops the records as it goes
	}
	s.sp.base.Free(j.held)
	s.io.Release(j.writer)
}

// stoppable ends an iteration with errSpillStopped once stop is set (checked every
// cancelCheckPeriod records).
type stoppable[K comparable, C any] struct {
	Iterator[PartitionedPair[K, C]]
	stop *atomic.Bool
	n    int
	err  error
}

func (it *stoppable[K, C]) Next() bool {
	if it.n++; it.n%cancelCheckPeriod == 0 && it.stop.Load() {
		it.err = errSpillStopped
		return false
	}
	return it.Iterator.Next()
}

func (it *stoppable[K, C]) Err() error {
	if it.err != nil {
		return it.err
	}
	return it.Iterator.Err()
}

// spillTarget is the records an overlapped buffer is sized for once the sorter has spilled: half
// the task's fair share of execution memory less a spill writer's reservation and a 1/64 margin
// (for the columns being copied and the records' sizes), so that the buffer being written and the
// one being filled fit in the task's share together; fewer if ForceSpillElements or
// ForceSpillBytes spill it before. 0 (grow by doubling) when that would not be more than a
// buffer's initial capacity.
func (s *ExternalSorter[K, V, C]) spillTarget() int {
	share, cfg := s.io.MergeShare(), s.sp.cfg
	n := min((share-share/64-s.sp.writerNeed())/s.buf.recordSize(), min(cfg.ForceSpillElements, math.MaxInt64-1)+1, cfg.ForceSpillBytes/s.buf.recordSize()+1)
	if n <= DefaultVectorCapacity {
		return 0
	}
	return int(min(n, int64(s.buf.vec.maxCapacity)))
}

// presize grows a full overlapped buffer to its target size at once, instead of doubling, if the
// task grants the memory (the old and the new columns, live during the copy), and reports whether
// it did. A short grant stays acquired, and the buffer doubles as usual. Call with the lock held;
// it releases it while acquiring.
func (s *ExternalSorter[K, V, C]) presize(ctx context.Context, est, rec int64) (bool, error) {
	need := max(est, s.sp.floor) + rec + int64(s.target)*s.buf.recordSize()
	short, err := s.sp.grow(ctx, need)
	if err == nil {
		err = s.checkUsable()
	}
	if err != nil || short {
		return false, err
	}
	s.buf.growTo(s.target)
	return true, nil
}

// pollSpill collects the job in flight if it has ended. Call with the lock held.
func (s *ExternalSorter[K, V, C]) pollSpill() error {
	if j := s.job; j != nil {
		select {
		case <-j.done:
			return s.collectSpill()
		default:
		}
	}
	return nil
}

// waitSpill waits for the job in flight, if any, and collects it; ctx cancels the wait (the job
// goes on). Call with the lock held; it releases it while it waits, so that the sorter's Spill can
// wait for the job too and report the memory it gives back, and Close can stop it (then it
// returns ErrClosed).
func (s *ExternalSorter[K, V, C]) waitSpill(ctx context.Context) error {
	j := s.job
	if j == nil {
		return nil
	}
	select {
	case <-j.done:
	default:
		s.sp.Unlock()
		var err error
		select {
		case <-j.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		s.sp.Lock()
		if err != nil {
			return err
		}
		if s.job != j { // Close, or a failure, took it
			return cmp.Or(s.err, s.sp.closedError("while it waited for a spill"))
		}
	}
	return s.collectSpill()
}

// collectSpill takes the ended job's file into the sorter's spills, or breaks the sorter with its
// error. Call with the lock held.
func (s *ExternalSorter[K, V, C]) collectSpill() error {
	j := s.job
	s.job = nil
	if j.err != nil {
		return s.fail(fmt.Errorf("collection: %s spilling %d bytes of in-memory data in the background: %w", s.sp.name, j.bytes, j.err))
	}
	s.files = appendLive(s.disk, s.files, j.f.file.id) // Close deletes it
	s.numSpill++
	s.sp.AddDiskBytesSpilled(j.f.file.size)
	if !s.sp.Closed() {
		s.spills = append(s.spills, j.f)
	}
	return nil
}

// awaitSpill waits for the job in flight, if any, and returns the execution memory it gave back
// (its collection's and its writer's): counted once per job, unless this call waited for it to
// end (the task acquires again after a spill that released something). Called without the lock.
func (s *ExternalSorter[K, V, C]) awaitSpill() int64 {
	s.sp.Lock()
	j := s.job
	if j == nil {
		s.sp.Unlock()
		return 0
	}
	reported := j.reported
	j.reported = true
	s.sp.Unlock()
	select {
	case <-j.done:
		if reported {
			return 0
		}
	default:
		<-j.done
	}
	return j.held + j.writer
}

// stopSpill stops the job in flight, if any, waits for it and deletes its file. It returns the
// job's error unless stopping caused it. Call with the lock held: by Close, and when the sorter
// breaks.
func (s *ExternalSorter[K, V, C]) stopSpill() error {
	j := s.job
	if j == nil {
		return nil
	}
	s.job = nil
	j.stop.Store(true)
	<-j.done
	switch {
	case errors.Is(j.err, errSpillStopped):
		return nil
	case j.err != nil:
		return fmt.Errorf("collection: %s spilling %d bytes of in-memory data in the background: %w", s.sp.name, j.bytes, j.err)
	}
	return s.removeSpill(j.f)
}

// beforeGrowth decides, for a full buffer of rec-byte records about to double its doubling
// bytes of columns, whether an overlapped sorter that has spilled spills it (full at its target
// size), grows it at once to its target size, or lets it double (no target); *doubling becomes 0
// when the buffer will not double. Call with the lock held.
func (s *ExternalSorter[K, V, C]) beforeGrowth(ctx context.Context, doubling *int64, rec int64) error {
	switch {
	case !s.overlap || s.target == 0:
		return nil
	case s.buf.capacity() >= s.target:
		est := s.buf.EstimateSize()
		if err := s.sp.spillNow(max(est, s.sp.floor), func() (int64, error) { return s.handOff(ctx) }); err != nil {
			return s.fail(err)
		}
		*doubling = 0
		return s.checkUsable()
	}
	grown, err := s.presize(ctx, s.buf.EstimateSize(), rec)
	if err != nil {
		return s.fail(err)
	}
	if grown {
		*doubling = 0
	}
	return nil
}

// Read-ahead in the final merge (SorterConfig.Overlap): each spill file's records are decoded by a
// goroutine of their own one block ahead of the merge (double buffering), so that decoding and
// decompressing overlap with merging. Only for pointer-free K and C, whose decoded records take
// exactly their slots: the blocks' memory is acquired on the spill I/O consumer before they are
// allocated (aheadBlock records, two blocks per file), and without it the merge reads as usual.

// aheadBlock is the records per read-ahead block.
const aheadBlock = 1024

// aheadCost is the memory of one file's read-ahead blocks, 0 if K or C holds pointers.
func aheadCost[K comparable, C any]() int64 {
	if hasPointers(reflect.TypeFor[PartitionedPair[K, C]]()) {
		return 0
	}
	return 2 * aheadBlock * int64(unsafe.Sizeof(PartitionedPair[K, C]{}))
}

// aheadSource is a spillSource read ahead by a goroutine: it fills one block while the merge
// consumes the other.
type aheadSource[K comparable, C any] struct {
	src     *spillSource[K, C]
	ready   chan []PartitionedPair[K, C] // filled blocks; an empty one at the end
	free    chan []PartitionedPair[K, C] // blocks to fill
	stop    chan struct{}
	done    chan struct{}
	cur     []PartitionedPair[K, C] // the block being consumed
	i       int
	ended   bool
	release func() // gives back the blocks' memory (at Close)
}

func newAheadSource[K comparable, C any](src *spillSource[K, C], release func()) *aheadSource[K, C] {
	a := &aheadSource[K, C]{src: src, release: release, ready: make(chan []PartitionedPair[K, C], 1), free: make(chan []PartitionedPair[K, C], 2),
		stop: make(chan struct{}), done: make(chan struct{})}
	a.free <- make([]PartitionedPair[K, C], aheadBlock)
	a.free <- make([]PartitionedPair[K, C], aheadBlock)
	go a.run()
	return a
}

func (a *aheadSource[K, C]) run() {
	defer close(a.done)
	for {
		var b []PartitionedPair[K, C]
		select {
		case b = <-a.free:
		case <-a.stop:
			return
		}
		n := a.src.fill(b)
		select {
		case a.ready <- b[:n]:
		case <-a.stop:
			return
		}
		if n == 0 {
			return // the source's Err tells why
		}
	}
}

func (a *aheadSource[K, C]) fill(dst []PartitionedPair[K, C]) int {
	n := 0
	for n < len(dst) && !a.ended {
		if a.i == len(a.cur) {
			if a.cur != nil {
				a.free <- a.cur[:cap(a.cur)]
			}
			a.cur, a.i = <-a.ready, 0
			if len(a.cur) == 0 {
				<-a.done
				a.cur, a.ended = nil, true
				break
			}
		}
		k := copy(dst[n:], a.cur[a.i:])
		n += k
		a.i += k
	}
	return n
}

// Err is the source's error once the read-ahead ended (nil before).
func (a *aheadSource[K, C]) Err() error {
	if !a.ended {
		return nil
	}
	return a.src.Err()
}

// Close stops the goroutine, waits for it and closes the source.
func (a *aheadSource[K, C]) Close() error {
	if !a.ended {
		close(a.stop)
		<-a.done
		a.ended = true
	}
	a.cur = nil
	if a.release != nil {
		a.release()
		a.release = nil
	}
	return a.src.Close()
}

// aheadMemory acquires the read-ahead blocks of n files on the spill I/O consumer and returns
// what it acquired: all of it, or 0 (read-ahead off) when K or C holds pointers or the task
// grants less. Call without the lock.
func (s *ExternalSorter[K, V, C]) aheadMemory(ctx context.Context, n int) int64 {
	need := aheadCost[K, C]() * int64(n)
	if !s.overlap || n < 2 || need == 0 {
		return 0
	}
	got, err := s.io.Acquire(ctx, need)
	if err != nil || got < need {
		s.io.Release(got)
		return 0
	}
	return need
}
