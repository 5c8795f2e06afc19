package collection

import (
	"errors"
	"fmt"

	"github.com/spillway/spillway/storage"
)

// sorterSpill is Spark's SpilledFile: one spill file of an ExternalSorter, sorted by partition
// (and key), with the records and the byte range of every partition. Each partition starts on a
// batch boundary, so bytes [offsets[p], offsets[p+1]) of the file are an independent record
// stream, exactly like a partition of WritePartitionedFile's output.
type sorterSpill struct {
	file    spillFile
	counts  []int64 // records per partition (Spark's elementsPerPartition)
	offsets []int64 // n+1 entries: partition p is [offsets[p], offsets[p+1])
}

// partitionWriter writes records partition by partition through a RecordWriter, ending a batch
// at every partition boundary and recording each partition's record count and byte offset.
type partitionWriter[K, C any] struct {
	rw      *storage.RecordWriter
	tw      *storage.TypedWriter[Pair[K, C]]
	counts  []int64
	offsets []int64
	last    int // partition being written; -1 before the first
}

func newPartitionWriter[K, C any](rw *storage.RecordWriter, tw *storage.TypedWriter[Pair[K, C]], n int) *partitionWriter[K, C] {
	return &partitionWriter[K, C]{rw: rw, tw: tw, counts: make([]int64, n), offsets: make([]int64, n+1), last: -1}
}

// start begins partition p, which must not come before the partition being written.
func (w *partitionWriter[K, C]) start(p int) error {
	if p < w.last || p >= len(w.counts) {
		return fmt.Errorf("collection: partition %d written after partition %d (of %d): records out of order", p, w.last, len(w.counts))
	}
	if p == w.last {
		return nil
	}
	if err := w.rw.EndBatch(); err != nil {
		return err
	}
	for q := w.last + 1; q <= p; q++ {
		w.offsets[q] = w.rw.BytesWritten()
	}
	w.last = p
	return nil
}

// write appends one record to the partition being written.
func (w *partitionWriter[K, C]) write(rec Pair[K, C]) error {
	if err := w.tw.Write(rec); err != nil {
		return err
	}
	w.counts[w.last]++
	return nil
}

// finish closes the RecordWriter (flushing it) and fills in the offsets of the partitions after
// the last one written.
func (w *partitionWriter[K, C]) finish() error {
	if err := w.rw.Close(); err != nil {
		return err
	}
	for q := w.last + 1; q < len(w.offsets); q++ {
		w.offsets[q] = w.rw.BytesWritten()
	}
	return nil
}

// writeSorterSpill drains it, sorted by partition, into a new temporary shuffle file of scope
// (Spark's ExternalSorter.spillMemoryIteratorToDisk) and closes it. On error the file is
// deleted.
func writeSorterSpill[K, C any](scope *storage.Scope, cfg SpillConfig, codec storage.Codec[Pair[K, C]], n int,
	it Iterator[PartitionedPair[K, C]]) (sorterSpill, error) {
	defer it.Close()
	w, err := newSpillWriter(scope, scope.CreateTempShuffle, cfg, codec)
	if err != nil {
		return sorterSpill{}, err
	}
	pw := newPartitionWriter(w.rw, w.tw, n)
	fail := func(err error) (sorterSpill, error) {
		return sorterSpill{}, errors.Join(fmt.Errorf("collection: writing spill file %s after %d records: %w",
			w.id, w.rw.Records(), err), w.Abort())
	}
	for it.Next() {
		r := it.Value()
		if err := pw.start(int(r.Partition)); err != nil {
			return fail(err)
		}
		if err := pw.write(Pair[K, C]{Key: r.Key, Value: r.Value}); err != nil {
			return fail(err)
		}
	}
	if err := it.Err(); err != nil {
		return fail(err)
	}
	f, err := w.Commit()
	if err != nil {
		return sorterSpill{}, err
	}
	for q := pw.last + 1; q <= n; q++ {
		pw.offsets[q] = f.size
	}
	return sorterSpill{file: f, counts: pw.counts, offsets: pw.offsets}, nil
}

// spillSource reads a sorterSpill from start to end as PartitionedPairs (Spark's SpillReader),
// taking each record's partition from the recorded counts. Its reader deletes the file at the
// end and on Close.
type spillSource[K, C any] struct {
	r      *spillReader[Pair[K, C]]
	id     storage.BlockID
	counts []int64
	p      int   // partition of the next record
	left   int64 // records of partition p still to read
	cur    PartitionedPair[K, C]
	err    error
}

func openSorterSpill[K, C any](scope *storage.Scope, sp sorterSpill, codec storage.Codec[Pair[K, C]],
	keep func(Pair[K, C], []byte) Pair[K, C], release func()) (*spillSource[K, C], error) {
	r, err := openSpill(scope, sp.file, codec, keep, release)
	if err != nil {
		return nil, err
	}
	return &spillSource[K, C]{r: r, id: sp.file.id, counts: sp.counts, p: -1}, nil
}

func (s *spillSource[K, C]) Next() bool {
	s.cur = PartitionedPair[K, C]{}
	if s.r == nil {
		return false
	}
	for s.left == 0 {
		if s.p+1 >= len(s.counts) {
			// Every recorded record was read: the file must end here (its reader then deletes it).
			if s.r.Next() {
				s.err = fmt.Errorf("collection: spill file %s holds more records than its %d partitions recorded: %w",
					s.id, len(s.counts), storage.ErrCorrupt)
			} else {
				s.err = s.r.Err()
			}
			s.close()
			return false
		}
		s.p++
		s.left = s.counts[s.p]
	}
	if !s.r.Next() {
		s.err = s.r.Err()
		if s.err == nil {
			s.err = fmt.Errorf("collection: spill file %s ends with %d records of partition %d missing: %w",
				s.id, s.left, s.p, storage.ErrCorrupt)
		}
		s.close()
		return false
	}
	s.left--
	v := s.r.Value()
	s.cur = PartitionedPair[K, C]{Partition: int32(s.p), Key: v.Key, Value: v.Value}
	return true
}

func (s *spillSource[K, C]) fill(dst []PartitionedPair[K, C]) int { return fillFrom(s, dst) }

func (s *spillSource[K, C]) Value() PartitionedPair[K, C] { return s.cur }
func (s *spillSource[K, C]) Err() error                   { return s.err }

func (s *spillSource[K, C]) Close() error {
	s.cur = PartitionedPair[K, C]{}
	return s.close()
}

func (s *spillSource[K, C]) close() error {
	if s.r == nil {
		return nil
	}
	err := s.r.Close()
	s.r = nil
	return err
}

// recordSource is a stream of PartitionedPairs sorted by partition, read in batches by a
// cursor: a spill file (spillSource) or the sorter's in-memory records (readingIterator).
type recordSource[K, C any] interface {
	recordFiller[K, C]
	Err() error
	Close() error
}

// recordFiller is an iterator of PartitionedPairs that can hand out several at once.
type recordFiller[K, C any] interface {
	// fill moves the next records into dst, at most len(dst), and returns how many: 0 at the
	// end or on an error (which the iterator's Err then returns).
	fill(dst []PartitionedPair[K, C]) int
}

// fillFrom moves the next elements of it into dst, at most len(dst), and returns how many.
func fillFrom[T any](it Iterator[T], dst []T) int {
	n := 0
	for n < len(dst) && it.Next() {
		dst[n] = it.Value()
		n++
	}
	return n
}

// cursor reads one recordSource, one partition at a time (Spark's SpillReader.readNextPartition
// over a file, or the grouping of the in-memory iterator by partition). It reads the source
// readBatch records at a time (for the in-memory records, one lock acquisition per batch) and
// clears each record once consumed.
type cursor[K comparable, C any] struct {
	src  recordSource[K, C]      // nil once ended and closed
	buf  []PartitionedPair[K, C] // buf[i:n] are the records read ahead
	i, n int
	err  error
}

func newCursor[K comparable, C any](src recordSource[K, C]) *cursor[K, C] {
	return &cursor[K, C]{src: src, buf: make([]PartitionedPair[K, C], readBatch)}
}

// peek reports whether there is a next record, buf[i], reading a batch if needed.
func (c *cursor[K, C]) peek() bool {
	return c.i < c.n || c.refill()
}

func (c *cursor[K, C]) refill() bool {
	c.i, c.n = 0, 0
	if c.src == nil {
		return false
	}
	if c.n = c.src.fill(c.buf); c.n > 0 {
		return true
	}
	c.err = c.src.Err()
	if err := c.close(); c.err == nil {
		c.err = err
	}
	return false
}

// drop consumes the next record, which peek reported.
func (c *cursor[K, C]) drop() {
	c.buf[c.i] = PartitionedPair[K, C]{}
	c.i++
}

func (c *cursor[K, C]) close() error {
	clear(c.buf[c.i:c.n])
	c.buf, c.i, c.n = nil, 0, 0
	if c.src == nil {
		return nil
	}
	err := c.src.Close()
	c.src = nil
	return err
}

// view returns an Iterator over the cursor's records of partition p, skipping what is left of
// earlier partitions. With a hasher it computes each record's key hash (for merges by hash).
func (c *cursor[K, C]) view(p int32, hasher *Hasher[K]) *partitionView[K, C] {
	return &partitionView[K, C]{c: c, p: p, hasher: hasher}
}

// partitionView is the Iterator of one partition of a cursor. Closing it leaves the cursor
// open: the cursor belongs to the PartitionIterator.
type partitionView[K comparable, C any] struct {
	c      *cursor[K, C]
	p      int32
	hasher *Hasher[K]
	cur    slot[K, C] // hash 0 unless hashing
	done   bool
}

func (v *partitionView[K, C]) Next() bool {
	v.cur = slot[K, C]{}
	for !v.done && v.c.peek() {
		h := &v.c.buf[v.c.i]
		switch {
		case h.Partition < v.p: // left unread by an earlier partition's reader
			v.c.drop()
			continue
		case h.Partition == v.p:
			v.cur.key, v.cur.val = h.Key, h.Value
			if v.hasher != nil {
				v.cur.hash = v.hasher.Hash(h.Key)
			}
			v.c.drop()
			return true
		}
		break
	}
	v.done = true
	return false
}

func (v *partitionView[K, C]) Value() Pair[K, C] { return Pair[K, C]{Key: v.cur.key, Value: v.cur.val} }
func (v *partitionView[K, C]) Err() error        { return v.c.err }

func (v *partitionView[K, C]) Close() error {
	v.done, v.cur = true, slot[K, C]{}
	return nil
}

// slotView is a partitionView yielding records as slots (hash, key and value): an input of the
// hashMerge that merges a partition's streams when aggregating without an ordering.
type slotView[K comparable, C any] struct{ *partitionView[K, C] }

func (v slotView[K, C]) Value() slot[K, C] { return v.cur }

// mergedPairs is a hashMerge yielding pairs.
type mergedPairs[K comparable, C any] struct{ *hashMerge[K, C] }

func (m mergedPairs[K, C]) Value() Pair[K, C] { return Pair[K, C]{Key: m.cur.key, Value: m.cur.val} }

// combineIterator is the grouping half of Spark's ExternalSorter.mergeWithAggregation with an
// ordering: its input is the k-way merge of one partition's streams sorted by cmp (the key
// ordering), each stream combined already. It reads each run of records cmp calls equal,
// combines the combiners of keys that are equal (==) and emits each key of the run once, in the
// order the run met them. Keys the ordering calls equal but == tells apart stay distinct (Spark
// would combine them when the ordering is total). Without an ordering the streams are merged by
// key hash by a hashMerge, which never combines distinct keys sharing a hash (Spark's
// mergeWithAggregation, in ExternalSorter.scala).
type combineIterator[K comparable, C any] struct {
	in      Iterator[Pair[K, C]]
	cmp     func(a, b Pair[K, C]) int
	merge   func(a, b C) C
	run     []Pair[K, C] // the current run's distinct keys, combined
	i       int          // next element of run to emit
	ahead   Pair[K, C]   // first record of the next run, read ahead
	hasNext bool
	cur     Pair[K, C]
	err     error
}

func (c *combineIterator[K, C]) Next() bool {
	c.cur = Pair[K, C]{}
	if c.i < len(c.run) {
		c.cur = c.run[c.i]
		c.run[c.i] = Pair[K, C]{}
		c.i++
		return true
	}
	if c.err != nil || c.in == nil {
		return false
	}
	c.run, c.i = c.run[:0], 0
	switch {
	case c.hasNext:
		c.run = append(c.run, c.ahead)
		c.ahead, c.hasNext = Pair[K, C]{}, false
	case c.in.Next():
		c.run = append(c.run, c.in.Value())
	default:
		c.err = c.in.Err()
		return false
	}
	for c.in.Next() {
		x := c.in.Value()
		if c.cmp(x, c.run[0]) != 0 {
			c.ahead, c.hasNext = x, true
			break
		}
		c.add(x)
	}
	if !c.hasNext {
		if c.err = c.in.Err(); c.err != nil {
			clear(c.run)
			c.run = c.run[:0]
			return false
		}
	}
	c.cur = c.run[0]
	c.run[0] = Pair[K, C]{}
	c.i = 1
	return true
}

// add merges x into the run's record with the same key, or appends it.
func (c *combineIterator[K, C]) add(x Pair[K, C]) {
	for j := range c.run {
		if c.run[j].Key == x.Key {
			c.run[j].Value = c.merge(c.run[j].Value, x.Value)
			return
		}
	}
	c.run = append(c.run, x)
}

func (c *combineIterator[K, C]) Value() Pair[K, C] { return c.cur }
func (c *combineIterator[K, C]) Err() error        { return c.err }

func (c *combineIterator[K, C]) Close() error {
	clear(c.run)
	c.run, c.ahead, c.cur = nil, Pair[K, C]{}, Pair[K, C]{}
	if c.in == nil {
		return nil
	}
	err := c.in.Close()
	c.in = nil
	return err
}
