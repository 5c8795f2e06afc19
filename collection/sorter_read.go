package collection

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spillway/spillway/storage"
)

// Iterator returns every record, partition after partition, as one stream (Spark's iterator:
// the flattened partitionedIterator), and marks the sorter as read by a consumer rather than a
// shuffle writer: from now on a forced spill moves the unread in-memory records to disk. It may
// be called once; see PartitionedIterator for the order and the errors. Close the iterator (or
// the sorter) when done.
func (s *ExternalSorter[K, V, C]) Iterator(ctx context.Context) (Iterator[Pair[K, C]], error) {
	pi, err := s.newReader(ctx, true)
	if err != nil {
		return nil, err
	}
	return &flatIterator[K, C]{pi: pi}, nil
}

// PartitionedIterator returns a reader of every partition in order, 0 to NumPartitions−1, empty
// ones included (Spark's partitionedIterator). Within a partition, records are sorted by the
// Ordering if there is one; when aggregating, each key comes once with its combiner; otherwise
// records come in no particular order. It takes the sorter's records over and may be created
// once, after the inserts (ErrIterated otherwise); it returns ErrClosed after Close, or the
// sorter's error.
func (s *ExternalSorter[K, V, C]) PartitionedIterator(ctx context.Context) (*PartitionIterator[K, C], error) {
	return s.newReader(ctx, false)
}

func (s *ExternalSorter[K, V, C]) newReader(ctx context.Context, readUse bool) (*PartitionIterator[K, C], error) {
	s.sp.Lock()
	defer s.sp.Unlock()
	if err := s.checkUsable(); err != nil {
		return nil, err
	}
	if err := s.waitSpill(ctx); err != nil { // the spill in flight (SorterConfig.Overlap)
		return nil, err
	}
	if err := s.checkUsable(); err != nil { // the lock may have been released
		return nil, err
	}
	if s.sp.strict {
		// The in-memory records may now be spilled (below, or by a forced spill while they are
		// read): their spill writer's buffers are reserved first.
		if err := s.sp.reserveWriterNow(ctx); err != nil {
			return nil, err
		}
		if err := s.checkUsable(); err != nil { // the lock was released
			return nil, err
		}
	}
	s.started, s.readUse = true, readUse
	if !readUse && s.io.Strict() && len(s.spills) > 0 {
		// No forced spill can free the in-memory records while they are merged for a shuffle
		// writer: spill them too, so their memory can hold the merge's readers.
		if _, err := s.spillCollection(); err != nil {
			return nil, err
		}
		s.sp.ReleaseMemory()
	}
	spills := s.spills
	s.spills = nil
	r := &readingIterator[K, V, C]{s: s, upstream: s.takeSorted(len(spills) > 0)}
	s.reading = r
	pi := &PartitionIterator[K, C]{ctx: ctx, n: s.n, part: -1}
	if len(spills) > 0 {
		s.mergeSettings(pi)
	}
	mp := &multiPass[sorterSpill]{io: &s.io, cfg: s.sp.cfg, info: func(f sorterSpill) fileInfo { return f.file.info() },
		merge: s.mergeGroup, remove: s.removeSpill}
	s.sp.Unlock()
	files, res, passes, err := mp.reduce(ctx, spills)
	var ahead, cost int64 // SorterConfig.Overlap: the spill files' read-ahead memory
	if err == nil {
		ahead, cost = s.aheadMemory(ctx, len(files)), aheadCost[K, C]()
	}
	s.sp.Lock()
	if err == nil && s.sp.Closed() {
		err = s.sp.closedError("while its spills were merged")
	}
	if err == nil {
		s.sp.metrics.MergePasses += int64(passes)
	}
	for i, f := range files {
		var src *spillSource[K, C]
		if err == nil {
			if src, err = s.openSpill(f, res.take(f.file.readCost)); err == nil {
				var rs recordSource[K, C] = src
				if ahead >= cost && cost > 0 {
					ahead -= cost
					rs = newAheadSource(src, func() { s.io.Release(cost) })
				}
				pi.sources = append(pi.sources, newCursor(rs))
				continue
			}
		}
		err = errors.Join(err, s.removeSpill(files[i]))
	}
	if res != nil {
		res.close()
	}
	s.io.Release(ahead)
	if err != nil {
		for _, c := range pi.sources {
			err = errors.Join(err, c.close())
		}
		return nil, s.fail(errors.Join(err, r.finishLocked()))
	}
	pi.sources = append(pi.sources, newCursor[K, C](r))
	s.out = pi
	return pi, nil
}

// mergeSettings sets how pi merges the sorter's streams of a partition.
func (s *ExternalSorter[K, V, C]) mergeSettings(pi *PartitionIterator[K, C]) {
	switch {
	case s.agg != nil && s.order == nil:
		pi.merge = s.agg.MergeCombiners
		pi.hasher = &s.hasher
	case s.order != nil:
		order := s.order
		pi.pairCmp = func(a, b Pair[K, C]) int { return order(a.Key, b.Key) }
		if s.agg != nil {
			pi.merge = s.agg.MergeCombiners
		}
	}
}

// WritePartitionedFile writes every partition, in order, into w: each partition's bytes form an
// independent record stream (its own CRC-framed batches of (K, C) pairs in storage's record
// format, key then combiner, which storage.PairCodec of the two codecs reads), so a reader can
// open [offset, offset+length) alone. It returns each partition's length in bytes; an empty
// partition has length 0. Without spills it writes the sorted in-memory records partition by
// partition, else the merged partitions (Spark's writePartitionedFile). It reads the sorter
// like PartitionedIterator (once; forced spills do nothing) and returns its errors, and w's,
// wrapped with the partition and the bytes written. It does not close w.
func (s *ExternalSorter[K, V, C]) WritePartitionedFile(ctx context.Context, w io.Writer) (lengths []int64, err error) {
	pi, err := s.PartitionedIterator(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := pi.Close(); err == nil && cerr != nil {
			lengths, err = nil, cerr
		}
	}()
	rw, err := storage.NewRecordWriter(w, s.sp.Config().recordWriterConfig())
	if err != nil {
		return nil, err
	}
	pw := newPartitionWriter(rw, storage.NewTypedWriter(rw, s.codec), s.n)
	fail := func(err error) ([]int64, error) {
		_ = rw.Close()
		return nil, fmt.Errorf("collection: %s writing partition %d of %d (%d bytes written): %w",
			s.sp.name, max(pw.last, 0), s.n, rw.BytesWritten(), err)
	}
	var records int64
	for pi.Next() {
		if err := pw.start(pi.Partition()); err != nil {
			return fail(err)
		}
		recs := pi.Records()
		for recs.Next() {
			if records++; records%cancelCheckPeriod == 0 {
				if err := ctx.Err(); err != nil {
					return fail(err)
				}
			}
			if err := pw.write(recs.Value()); err != nil {
				return fail(err)
			}
		}
	}
	if err := pi.Err(); err != nil {
		return fail(err)
	}
	if err := pw.finish(); err != nil {
		return fail(err)
	}
	lengths = make([]int64, s.n)
	for p := range lengths {
		lengths[p] = pw.offsets[p+1] - pw.offsets[p]
	}
	return lengths, nil
}

// cancelCheckPeriod is how many records are read between checks of the context.
const cancelCheckPeriod = 4096

// readingIterator is the in-memory records of a sorter being read (Spark's SpillableIterator
// behind destructiveIterator): a forced spill writes its unread rest to disk, after which it
// reads on from that file and holds no reference to the in-memory collection. When it ends or
// is closed the sorter's memory is released. Its cursor takes the sorter's lock once per batch
// of readBatch records; the records of the cursor's current batch stay in memory across a forced
// spill.
type readingIterator[K comparable, V, C any] struct {
	s *ExternalSorter[K, V, C]

	// Guarded by the sorter's lock.
	upstream Iterator[PartitionedPair[K, C]] // nil once ended or closed
	spilled  bool
	err      error
}

func (r *readingIterator[K, V, C]) fill(dst []PartitionedPair[K, C]) int {
	r.s.sp.Lock()
	defer r.s.sp.Unlock()
	if r.upstream == nil {
		return 0
	}
	var n int
	if f, ok := r.upstream.(recordFiller[K, C]); ok {
		n = f.fill(dst)
	} else {
		n = fillFrom(r.upstream, dst)
	}
	if n == 0 {
		r.err = r.upstream.Err()
		if err := r.finishLocked(); r.err == nil {
			r.err = err
		}
	}
	return n
}

func (r *readingIterator[K, V, C]) Err() error {
	r.s.sp.Lock()
	defer r.s.sp.Unlock()
	return r.err
}

func (r *readingIterator[K, V, C]) Close() error {
	r.s.sp.Lock()
	defer r.s.sp.Unlock()
	return r.finishLocked()
}

// finishLocked closes the upstream and releases the sorter's memory, once (Spark's destroy).
func (r *readingIterator[K, V, C]) finishLocked() error {
	if r.upstream == nil {
		return nil
	}
	err := r.upstream.Close()
	r.upstream = nil
	if r.s.reading == r {
		r.s.reading = nil
	}
	r.s.sp.ReleaseMemory()
	return err
}

// spillLocked moves the unread in-memory records to a spill file and reads on from it (Spark's
// SpillableIterator.spill). It reports whether it spilled and the bytes written; false if it
// already spilled or ended. On error the unread records are lost: the reader ends with the error.
func (r *readingIterator[K, V, C]) spillLocked() (bool, int64, error) {
	if r.spilled || r.upstream == nil {
		return false, 0, nil
	}
	r.spilled = true
	up := r.upstream
	r.upstream = emptyIterator[PartitionedPair[K, C]]{}
	f, err := r.s.writeSpill(up) // closes up: the collection is unreachable from here on
	if err == nil {
		var src *spillSource[K, C]
		if src, err = r.s.openSpill(f, r.s.sp.writerToReader(f.file.readCost)); err == nil {
			r.upstream = src
			return true, f.file.size, nil
		}
	}
	r.err = err
	_ = r.finishLocked()
	return false, f.file.size, err
}

// PartitionIterator reads an ExternalSorter partition by partition (Spark's partitionedIterator,
// an Iterator[(Int, Iterator[Product2[K, C]])]). Next advances to the next partition — every id
// from 0 to NumPartitions−1 in order, empty ones included — and Records returns that partition's
// records; moving on skips what is left of them. Check Err after Next returns false, and Close it
// (or the sorter) when done: Close deletes the spill files it still reads. Not safe for
// concurrent use.
type PartitionIterator[K comparable, C any] struct {
	ctx     context.Context
	n       int
	sources []*cursor[K, C]           // spills, then the in-memory records
	merge   func(a, b C) C            // with aggregation
	pairCmp func(a, b Pair[K, C]) int // with an ordering
	hasher  *Hasher[K]                // aggregating without an ordering: merging by hash
	part    int
	recs    Iterator[Pair[K, C]]
	err     error
	closed  bool
}

// Next advances to the next partition and reports whether there is one; false after the last
// partition, after an error, and after Close.
func (it *PartitionIterator[K, C]) Next() bool {
	if it.closed || it.err != nil {
		return false
	}
	if it.recs != nil {
		err := it.recs.Err()
		if cerr := it.recs.Close(); err == nil {
			err = cerr
		}
		it.recs = nil
		if err != nil {
			it.fail(fmt.Errorf("collection: reading partition %d of %d: %w", it.part, it.n, err))
			return false
		}
	}
	if it.part+1 >= it.n {
		err := it.closeSources()
		it.closed = true // ended: Close and abort have nothing left to do
		it.fail(err)
		return false
	}
	if err := it.ctx.Err(); err != nil {
		it.fail(err)
		return false
	}
	it.part++
	it.recs = it.records(int32(it.part))
	return true
}

// records returns the merged records of partition p (Spark's merge for one partition).
func (it *PartitionIterator[K, C]) records(p int32) Iterator[Pair[K, C]] {
	if len(it.sources) == 1 {
		return it.sources[0].view(p, nil) // reports the error abort leaves in the cursor
	}
	return mergedRecords[K, C]{it.merged(p), it}
}

// mergedRecords is the merge of a partition's sources; once the merge stops (Close stops it), Err
// also reports the PartitionIterator's error (abort's ErrClosed).
type mergedRecords[K comparable, C any] struct {
	Iterator[Pair[K, C]]
	pi *PartitionIterator[K, C]
}

func (r mergedRecords[K, C]) Err() error {
	if err := r.Iterator.Err(); err != nil {
		return err
	}
	return r.pi.err
}

// merged returns the merge of the sources' records of partition p.
func (it *PartitionIterator[K, C]) merged(p int32) Iterator[Pair[K, C]] {
	if it.hasher != nil { // aggregating without an ordering: by key hash
		ins := make([]Iterator[slot[K, C]], len(it.sources))
		for i, c := range it.sources {
			ins[i] = slotView[K, C]{c.view(p, it.hasher)}
		}
		return mergedPairs[K, C]{newHashMerge(it.merge, ins)}
	}
	ins := make([]Iterator[Pair[K, C]], len(it.sources))
	for i, c := range it.sources {
		ins[i] = c.view(p, nil)
	}
	switch {
	case it.merge != nil: // aggregating with an ordering
		return &combineIterator[K, C]{in: Merge(it.pairCmp, ins...), cmp: it.pairCmp, merge: it.merge}
	case it.pairCmp != nil:
		return Merge(it.pairCmp, ins...)
	}
	return Concat(ins...)
}

// Partition returns the partition Next advanced to.
func (it *PartitionIterator[K, C]) Partition() int { return it.part }

// Records returns the records of the partition Next advanced to, valid until the next call to
// Next or Close. Its elements belong to the caller; closing it is optional.
func (it *PartitionIterator[K, C]) Records() Iterator[Pair[K, C]] {
	if it.recs == nil {
		return emptyIterator[Pair[K, C]]{}
	}
	return it.recs
}

// Err returns the error that stopped the iteration, or nil.
func (it *PartitionIterator[K, C]) Err() error { return it.err }

// Close stops the iteration, deletes the spill files still being read and releases the sorter's
// memory. Later calls return nil.
func (it *PartitionIterator[K, C]) Close() error {
	if it.closed {
		return nil
	}
	var errs []error
	if it.recs != nil {
		errs = append(errs, it.recs.Close())
		it.recs = nil
	}
	errs = append(errs, it.closeSources())
	it.closed = true
	return errors.Join(errs...)
}

// abort ends an iteration that has not ended with err (the sorter was closed under it) and
// closes it: Next returns false, and Err and the Err of the partition being read return err.
func (it *PartitionIterator[K, C]) abort(err error) error {
	if it.closed {
		return nil
	}
	if it.err == nil {
		it.err = err
	}
	for _, c := range it.sources {
		if c.err == nil {
			c.err = err // what the partition's view reports
		}
	}
	return it.Close()
}

func (it *PartitionIterator[K, C]) fail(err error) {
	if err == nil {
		return
	}
	if it.err == nil {
		it.err = err
	}
	_ = it.Close()
}

func (it *PartitionIterator[K, C]) closeSources() error {
	var errs []error
	for _, c := range it.sources {
		errs = append(errs, c.close())
	}
	it.sources = nil
	return errors.Join(errs...)
}

// flatIterator is ExternalSorter.Iterator: the records of every partition in order.
type flatIterator[K comparable, C any] struct {
	pi   *PartitionIterator[K, C]
	recs Iterator[Pair[K, C]]
	view *partitionView[K, C] // recs when it reads a single source, called directly
	n    int64
	cur  Pair[K, C]
}

func (f *flatIterator[K, C]) Next() bool {
	for {
		if f.next() {
			if f.n++; f.n%cancelCheckPeriod == 0 {
				if err := f.pi.ctx.Err(); err != nil {
					f.pi.fail(err)
					f.cur, f.recs, f.view = Pair[K, C]{}, nil, nil
					return false
				}
			}
			return true
		}
		f.cur = Pair[K, C]{}
		if !f.pi.Next() {
			f.recs, f.view = nil, nil
			return false
		}
		f.recs = f.pi.Records()
		f.view, _ = f.recs.(*partitionView[K, C])
	}
}

// next moves to the next record of the current partition, if there is one.
func (f *flatIterator[K, C]) next() bool {
	switch {
	case f.view != nil:
		if !f.view.Next() {
			return false
		}
		f.cur = f.view.Value()
	case f.recs != nil:
		if !f.recs.Next() {
			return false
		}
		f.cur = f.recs.Value()
	default:
		return false
	}
	return true
}

func (f *flatIterator[K, C]) Value() Pair[K, C] { return f.cur }
func (f *flatIterator[K, C]) Err() error        { return f.pi.Err() }

func (f *flatIterator[K, C]) Close() error {
	f.cur, f.recs, f.view = Pair[K, C]{}, nil, nil
	return f.pi.Close()
}
