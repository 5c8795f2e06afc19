package collection

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// readBatch is how many records a sorter's reader reads ahead from each source: for the
// in-memory records, how many it takes per lock acquisition.
const readBatch = 64

// insertBatch is how many input records InsertAll reads between lock acquisitions.
const insertBatch = 64

// ExternalSorter mirrors Spark's ExternalSorter (core/src/main/scala/org/apache/spark/util/
// collection/ExternalSorter.scala): it sorts (and optionally combines) key-value
// records by partition and key under the task's memory budget, spilling sorted runs to disk, and
// yields every partition in order — to a shuffle map output (WritePartitionedFile) or to a
// reader (Iterator).
//
// In memory it keeps a PartitionedAppendOnlyMap when it aggregates, else a
// PartitionedPairBuffer, under the Spillable policy: count the record, insert it, then maybe
// spill (Spark's call order). Spills are sorted by partition and then by the Ordering, or by
// key hash when aggregating without an Ordering, or by partition only; each spill file records
// the records and byte range of every partition. Reading merges the spills and the in-memory
// records partition by partition: combining equal keys when aggregating (runs of equal hash are
// searched for truly equal keys), merge-sorting with an Ordering, else concatenating. Merging by
// key hash goes through the tournament tree ExternalAppendOnlyMap merges with (Spark merge-sorts
// with a heap, then groups runs of equal hash): the same records and combiners.
//
// It is a memory.Consumer of its task (on-heap). A forced spill (the TaskManager asking on
// behalf of another consumer) does nothing while the sorter is filled or used for shuffle
// writing (PartitionedIterator, WritePartitionedFile), as in Spark; once Iterator has been
// called, a forced spill writes the unread in-memory records to disk and drops every reference
// to them, so the Go heap really shrinks (SPARK-22713).
//
// Use: InsertAll (any number of times), then one of Iterator, PartitionedIterator or
// WritePartitionedFile (once), then Close — always, also after errors and early stops: it
// releases the memory and deletes every spill file. The TaskManager may call Spill, and Close
// may be called while InsertAll waits for memory, from any goroutine of the task; everything
// else, reading included, is meant for one goroutine.
//
// Not accounted to the task, as in Spark: with memory.SparkAllowances, the free initial
// threshold (SpillConfig's InitialThreshold, Spark's 5 MiB), which the sorter holds without
// acquiring it (memory.Strict acquires it; see Spillable); while a merge
// runs, each spill file's reader's batch buffer (up to SpillConfig.BatchBytes, about
// 2 × BatchBytes when compressed); while a spill is written, the record writer's buffers (a
// batch of up to BatchBytes, its compressed copy, the file buffer; about 2 MiB more for zstd),
// all of which memory.Strict accounts (see Spillable and the package doc); and, with
// memory.SparkAllowances, the old array while the in-memory collection doubles (both
// arrays are live during the copy; memory.Strict asks for both).
//
// Differences from Spark, all deliberate:
//   - With SorterConfig.Overlap set (off by default: see its doc), spills without aggregation
//     are sorted and written by a background goroutine while inserting goes on into a second
//     buffer, and the final merge decodes each spill file a block ahead in a goroutine of its
//     own. A spill keeps its memory until its file is written; once the sorter has spilled, each
//     buffer is sized at once to half the task's fair share instead of doubling (see
//     sorter_overlap.go). With memory.SparkAllowances each of the two buffers has the free
//     initial threshold.
//   - Before the in-memory collection doubles, the sorter asks for the memory the doubled
//     collection will take (as ExternalAppendOnlyMap does), so it never grows past its grant.
//   - With aggregation and an Ordering, keys the Ordering calls equal are combined only if they
//     are == (Spark combines all keys its total ordering calls equal).
//   - Errors are values: a failed spill makes every later call return the error; Close still
//     releases everything. A key the Partitioner puts outside [0, NumPartitions) is an error.
//   - With memory.Strict, the sorter keeps a bounded number of spill files while it is filled:
//     past maxLiveSpills (at most 128, fewer with many partitions) it merges the smallest ones
//     (compactSpills), so its records of the files, 16 bytes per partition each, do not grow
//     with the number of spills. Spark keeps every spill until the merge. Such merges do not
//     count in SpillMetrics.MergePasses, and InsertAll may then fail like a merge does.
//   - Every partition of a spill file starts on a batch boundary, so each is an independent
//     record stream, and the file records each partition's byte range.
//   - WritePartitionedFile writes to an io.Writer and returns the partition lengths (Spark's
//     older writePartitionedFile); Spark's newer writePartitionedMapOutput goes through a
//     ShuffleMapOutputWriter plugin, which has no counterpart here.
type ExternalSorter[K comparable, V, C any] struct {
	sp     Spillable
	disk   *storage.Scope
	agg    *Aggregator[K, V, C]
	part   interface{ Partition(K) int } // nil with one partition
	n      int
	order  func(a, b K) int
	hasher Hasher[K]
	codec  pairCodec[K, C]
	keep   func(Pair[K, C], []byte) Pair[K, C]
	input  []Pair[K, V]
	sizes  recordSizes[K, V] // memory.Strict: the bytes a record references (see recordSizer)

	// Guarded by sp's lock.
	m        *PartitionedAppendOnlyMap[K, C] // with aggregation; nil once read, closed or broken
	buf      *PartitionedPairBuffer[K, C]    // without aggregation; likewise
	spills   []sorterSpill                   // spills not yet handed to a reader
	files    []storage.BlockID               // the spill files written and maybe live, deleted by Close
	maxLive  int                             // more spills than this are compacted (see compactSpills)
	numSpill int
	reading  *readingIterator[K, V, C] // the in-memory records being read
	out      *PartitionIterator[K, C]  // the reader handed out
	started  bool                      // a reader was created
	readUse  bool                      // Iterator was called: forced spills spill the reader
	err      error                     // sticky: a failed spill
	io       ioMemory                  // the spill readers' and merge writers' memory
	job      *spillJob[K, C]           // overlap: the spill being written in the background
	target   int                       // overlap: the records a buffer is sized for (see spillTarget)

	overlap  bool   // SorterConfig.Overlap is on (see sorter_overlap.go)
	jobStart func() // test hook: run by each spill job before it starts
}

// NewExternalSorter returns an empty sorter of task tm that spills into disk (normally the
// task's disk scope), encoding the keys and combiners of its spill files and of
// WritePartitionedFile's output with keys and combiners. The codecs' decoded values must not
// alias their source bytes (string keys decoded by an aliasing codec are cloned). It returns an
// error naming every invalid setting: a missing task, scope or codec, a missing aggregator
// function, a partitioner without partitions, an invalid spill configuration, or — without an
// Aggregator — a combiner type C different from V.
func NewExternalSorter[K comparable, V, C any](tm *memory.TaskManager, disk *storage.Scope, keys storage.Codec[K],
	combiners storage.Codec[C], cfg SorterConfig[K, V, C]) (*ExternalSorter[K, V, C], error) {
	var errs []error
	if tm == nil {
		errs = append(errs, errors.New("collection: no TaskManager (an ExternalSorter belongs to a task)"))
	}
	if disk == nil {
		errs = append(errs, errors.New("collection: no disk scope for spill files"))
	}
	if keys == nil {
		errs = append(errs, errors.New("collection: NewExternalSorter's key codec is nil"))
	}
	if combiners == nil {
		errs = append(errs, errors.New("collection: NewExternalSorter's combiner codec is nil"))
	}
	if err := errors.Join(append(errs, cfg.Validate())...); err != nil {
		return nil, err
	}
	s := &ExternalSorter[K, V, C]{
		disk:   disk,
		agg:    cfg.Aggregator,
		n:      1,
		order:  cfg.Ordering,
		hasher: cfg.Hasher,
		codec:  pairCodec[K, C]{keys, combiners},
		input:  make([]Pair[K, V], 0, insertBatch),
	}
	if cfg.Partitioner != nil {
		if s.n = cfg.Partitioner.NumPartitions(); s.n > 1 {
			s.part = cfg.Partitioner
		}
	}
	if s.hasher.IsZero() {
		s.hasher = NewHasher[K]()
	}
	if keepKey := keeper[K](); keepKey != nil {
		s.keep = func(p Pair[K, C], buf []byte) Pair[K, C] { p.Key = keepKey(p.Key, buf); return p }
	}
	name := cfg.Name
	if name == "" {
		name = "ExternalSorter"
	}
	s.sp.Init(tm, s, name, cfg.Spill, s.forceSpill)
	s.io.Init(tm, name)
	s.sp.reserveWriterOn(&s.io)
	s.sp.writerAtCheck = true // forceSpill spills only the reading iterator
	s.sizes = newRecordSizes[K, V](s.sp.Strict())
	s.overlap = cfg.Overlap.on(runtime.GOMAXPROCS(0))
	if s.io.Strict() {
		s.maxLive = maxLiveSpills(s.n)
	}
	s.newCollection()
	return s, nil
}

func (s *ExternalSorter[K, V, C]) newCollection() {
	if s.agg != nil {
		s.m = NewPartitionedAppendOnlyMap[K, C](s.hasher)
	} else {
		s.buf = newPartitionedPairBuffer[K, C](s.n > 1)
	}
}

// Spill implements memory.Consumer (Spillable.spill): a forced spill when another consumer of
// the task is short of memory. It spills only while the sorter is read through Iterator. With a
// spill being written in the background (SorterConfig.Overlap), it first waits for it and
// counts the memory it gave back, also when the sorter itself asked for memory (trigger is the
// sorter).
func (s *ExternalSorter[K, V, C]) Spill(size int64, trigger memory.Consumer) (int64, error) {
	released := s.awaitSpill()
	n, err := s.sp.Spill(size, trigger)
	return released + n, err
}

// Used implements memory.Consumer: the execution memory the sorter holds beyond its free
// allowance.
func (s *ExternalSorter[K, V, C]) Used() int64 { return s.sp.Used() }

// Mode implements memory.Consumer: always memory.OnHeap.
func (s *ExternalSorter[K, V, C]) Mode() memory.Mode { return s.sp.Mode() }

// String is the sorter's name.
func (s *ExternalSorter[K, V, C]) String() string { return s.sp.name }

// NumPartitions returns the number of partitions (1 without a Partitioner).
func (s *ExternalSorter[K, V, C]) NumPartitions() int { return s.n }

// Metrics returns a snapshot of the spill counters (memoryBytesSpilled, diskBytesSpilled,
// peakMemoryUsedBytes).
func (s *ExternalSorter[K, V, C]) Metrics() SpillMetrics {
	s.sp.Lock()
	defer s.sp.Unlock()
	return s.sp.Metrics()
}

// NumSpills returns the number of spill files written so far, forced spills of the reader
// included (Spark's numSpills counts the spills of the collection only).
func (s *ExternalSorter[K, V, C]) NumSpills() int {
	s.sp.Lock()
	defer s.sp.Unlock()
	return s.numSpill
}

// checkUsable returns why the sorter cannot take records or hand out a reader.
func (s *ExternalSorter[K, V, C]) checkUsable() error {
	switch {
	case s.sp.Closed():
		return ErrClosed
	case s.err != nil:
		return s.err
	case s.started:
		return fmt.Errorf("%w: %s was already read (its iterators are destructive: create one, once, after the inserts)", ErrIterated, s.sp.name)
	}
	return nil
}

// InsertAll adds every record of records (Spark's insertAll), combining values of equal keys
// when aggregating and spilling when memory is short, and closes records. Acquiring memory may
// block (ctx cancels) and may spill other consumers of the task. It returns ErrIterated after a
// reader was created, ErrClosed after Close, an error for a key whose partition is out of range,
// the error of records, and the error of a failed spill (which breaks the sorter). With
// SorterConfig.Overlap, spills are sorted and written in the background while the insert goes
// on, and InsertAll waits for the last one before it returns.
func (s *ExternalSorter[K, V, C]) InsertAll(ctx context.Context, records Iterator[Pair[K, V]]) error {
	s.sp.Lock()
	err := s.checkUsable()
	s.sp.Unlock()
	if err != nil {
		_ = records.Close()
		return err
	}
	err = insertBatches(ctx, &s.sp, records, s.input, func(batch []Pair[K, V]) error {
		return s.insertLocked(ctx, batch)
	})
	if err == nil && s.overlap {
		// The last spill ends before InsertAll returns: its error is InsertAll's, and every spill
		// is a file when the sorter is read (which would wait for it anyway).
		s.sp.Lock()
		err = s.waitSpill(ctx)
		s.sp.Unlock()
	}
	return err
}

// insertLocked inserts a batch of records with the lock held: for each, Spark's
// addElementsRead, the insert into the map or buffer, then maybeSpillCollection.
func (s *ExternalSorter[K, V, C]) insertLocked(ctx context.Context, batch []Pair[K, V]) error {
	if err := s.checkUsable(); err != nil { // the lock was released since the last look
		return err
	}
	if err := s.pollSpill(); err != nil {
		return err
	}
	if s.agg == nil {
		plain, _ := any(batch).([]Pair[K, C]) // C is V without an Aggregator
		return s.insertPlainLocked(ctx, plain)
	}
	for _, r := range batch {
		p, err := s.partitionOf(r.Key)
		if err != nil {
			return err
		}
		s.sp.AddElementsRead()
		if err := s.insertCombined(ctx, p, r); err != nil {
			return err
		}
		if err := s.afterInsert(ctx, s.m.EstimateSize()); err != nil {
			return err
		}
		if err := s.afterSpill(ctx); err != nil {
			return err
		}
	}
	return nil
}

// insertPlainLocked is insertLocked without aggregation.
func (s *ExternalSorter[K, V, C]) insertPlainLocked(ctx context.Context, batch []Pair[K, C]) error {
	for _, r := range batch {
		p, err := s.partitionOf(r.Key)
		if err != nil {
			return err
		}
		s.sp.AddElementsRead()
		if err := s.insertPlain(ctx, p, r); err != nil {
			return err
		}
		if err := s.afterInsert(ctx, s.buf.EstimateSize()); err != nil {
			return err
		}
		if err := s.afterSpill(ctx); err != nil {
			return err
		}
	}
	return nil
}

// partitionOf returns the partition of key, or an error if the partitioner puts it out of range.
func (s *ExternalSorter[K, V, C]) partitionOf(key K) (int32, error) {
	if s.part == nil {
		return 0, nil
	}
	q := s.part.Partition(key)
	if q < 0 || q >= s.n {
		return 0, fmt.Errorf("collection: %s: the partitioner put key %v in partition %d, outside [0, %d)", s.sp.name, key, q, s.n)
	}
	return int32(q), nil
}

// afterInsert is the rest of Spark's maybeSpillCollection once a record is in, est being the
// collection's estimated size: it records the peak and calls maybeSpill when it would do
// anything.
func (s *ExternalSorter[K, V, C]) afterInsert(ctx context.Context, est int64) error {
	s.sp.UpdatePeak(est)
	if s.sp.strict {
		return nil // checked before the insert (beforeInsert)
	}
	if check := s.sp.checkDue(); s.sp.spillDue(est, check) {
		spill := s.spillCollection
		if s.overlap && s.agg == nil {
			spill = func() (int64, error) { return s.handOff(ctx) }
		}
		if _, err := s.sp.maybeSpill(ctx, est, check, spill); err != nil {
			return s.fail(err)
		}
	}
	return nil
}

func (s *ExternalSorter[K, V, C]) insertCombined(ctx context.Context, p int32, r Pair[K, V]) error {
	var doubling int64
	if tbl := s.m.m; tbl.AtGrowThreshold() {
		// The next new key doubles the table: ask for the memory it will take now.
		doubling = int64(tbl.Capacity()) * int64(unsafe.Sizeof(slot[partKey[K], C]{}))
	}
	kb, vb := s.sizes.of(r.Key, r.Value)
	if err := s.beforeInsert(ctx, s.m.EstimateSize(), doubling, kb+vb); err != nil {
		return err
	}
	agg, isNew := s.agg, false
	if _, err := s.m.ChangeValue(p, r.Key, func(had bool, old C) C {
		if had {
			return agg.MergeValue(old, r.Value)
		}
		isNew = true
		return agg.CreateCombiner(r.Value)
	}); err != nil {
		return fmt.Errorf("collection: %s: %w", s.sp.name, err) // ErrMapFull: nothing changed
	}
	if isNew {
		s.sp.retain(kb + vb)
	}
	return nil
}

func (s *ExternalSorter[K, V, C]) insertPlain(ctx context.Context, p int32, r Pair[K, C]) error {
	var doubling int64
	kb, vb := s.sizes.of(r.Key, *(*V)(unsafe.Pointer(&r.Value))) // C is V without an Aggregator
	rec := kb + vb
	if buf := s.buf; buf.Len() == buf.capacity() {
		// The next record doubles the buffer: ask for the memory it will take now.
		doubling = int64(buf.capacity()) * buf.recordSize()
		if err := s.beforeGrowth(ctx, &doubling, rec); err != nil {
			return err
		}
	}
	if err := s.beforeInsert(ctx, s.buf.EstimateSize(), doubling, rec); err != nil {
		return err
	}
	if err := s.buf.Insert(p, r.Key, r.Value); err != nil {
		return fmt.Errorf("collection: %s: %w", s.sp.name, err) // ErrBufferFull: nothing changed
	}
	s.sp.retain(rec)
	return nil
}

// beforeInsert is the memory check before a record of rec bytes (see recordSizer) is inserted
// into the in-memory collection of tracked size est, which the insert grows by doubling an array
// of doubling bytes (0 if not). In memory.SparkAllowances accounting it only asks for the memory
// of the collection after a doubling (the periodic check follows the insert, as in Spark); in
// memory.Strict it runs the whole check (Spillable.admit), the periodic one included.
func (s *ExternalSorter[K, V, C]) beforeInsert(ctx context.Context, est, doubling, rec int64) error {
	spill := s.spillCollection
	if s.overlap && s.agg == nil {
		spill = func() (int64, error) { return s.handOff(ctx) }
	}
	var err error
	switch {
	case s.sp.strict:
		err = s.sp.admit(ctx, est, doubling, rec, spill, s.collectionSize)
	case doubling > 0:
		_, err = s.sp.MaybeSpillNow(ctx, s.sp.GrowthMemory(est, doubling), spill)
	default:
		return nil
	}
	if err != nil {
		return s.fail(err)
	}
	return s.checkUsable() // the lock was released while acquiring
}

// collectionSize is the in-memory collection's tracked size (0 without one).
func (s *ExternalSorter[K, V, C]) collectionSize() int64 {
	switch {
	case s.m != nil:
		return s.m.EstimateSize()
	case s.buf != nil:
		return s.buf.EstimateSize()
	}
	return 0
}

// fail records err as the sorter's sticky error (unless it is closed), drops the in-memory
// records and gives back the memory. Called with the lock held.
func (s *ExternalSorter[K, V, C]) fail(err error) error {
	if s.err == nil && !s.sp.Closed() {
		s.err = err
	}
	s.m, s.buf = nil, nil
	s.sp.ReleaseMemory()
	if serr := s.stopSpill(); serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}

// takeSorted hands the in-memory records over to a destructive iterator sorted by partition and
// then by the Ordering — or, when aggregating without one, by key hash if the records will be
// merged with spills (byHash), else by partition only (Spark's
// partitionedDestructiveSortedIterator with the comparator it picks). The sorter no longer
// references the collection.
func (s *ExternalSorter[K, V, C]) takeSorted(byHash bool) Iterator[PartitionedPair[K, C]] {
	m, buf := s.m, s.buf
	s.m, s.buf = nil, nil
	return s.sorted(m, buf, byHash)
}

// sorted is takeSorted on a collection the sorter no longer references: the map m when
// aggregating, else the buffer buf.
func (s *ExternalSorter[K, V, C]) sorted(m *PartitionedAppendOnlyMap[K, C], buf *PartitionedPairBuffer[K, C], byHash bool) Iterator[PartitionedPair[K, C]] {
	if s.agg != nil {
		if s.order == nil && byHash {
			return m.PartitionedDestructiveSortedByHash()
		}
		return m.PartitionedDestructiveSortedIterator(s.order)
	}
	return buf.PartitionedDestructiveSortedIterator(s.order)
}

// spillCollection writes the in-memory collection to a spill file and starts a new one (Spark's
// spill(collection)). Called by MaybeSpill with the lock held.
func (s *ExternalSorter[K, V, C]) spillCollection() (int64, error) {
	f, err := s.writeSpill(s.takeSorted(true))
	if err != nil {
		return 0, s.fail(err)
	}
	s.spills = append(s.spills, f)
	s.newCollection()
	return f.file.size, nil
}

// writeSpill drains it into a new spill file of the sorter, tracked for Close.
func (s *ExternalSorter[K, V, C]) writeSpill(it Iterator[PartitionedPair[K, C]]) (sorterSpill, error) {
	f, err := writeSorterSpill(s.disk, s.sp.Config(), s.codec, s.n, it)
	if err != nil {
		return sorterSpill{}, err
	}
	s.files = appendLive(s.disk, s.files, f.file.id)
	s.numSpill++
	return f, nil
}

// openSpill opens a spill of the sorter whose reader's memory release gives back (nil: nothing
// accounted for it).
func (s *ExternalSorter[K, V, C]) openSpill(f sorterSpill, release func()) (*spillSource[K, C], error) {
	return openSorterSpill(s.disk, f, s.codec, s.keep, release)
}

// forceSpill is Spark's forceSpill, called by Spillable.Spill with the lock held: nothing while
// the sorter is filled or used for shuffle writing; once Iterator was called, the reader's unread
// in-memory records go to disk.
func (s *ExternalSorter[K, V, C]) forceSpill() (bool, int64, error) {
	if s.err != nil || !s.readUse || s.reading == nil { // Spill does not call it once closed
		return false, 0, nil
	}
	return s.reading.spillLocked()
}

// Close is Spark's stop: it closes the reader, drops the in-memory records, releases the memory
// and deletes every spill file the sorter wrote, whatever state it is in (also mid-iteration and
// after errors). It is safe while an InsertAll waits for memory in another goroutine: that
// InsertAll gives back what it is granted and returns ErrClosed. A reader not read to its end
// stops: its Next returns false and its Err (and that of the partition being read) returns an
// error wrapping ErrClosed. Later calls return nil; other methods then return ErrClosed.
func (s *ExternalSorter[K, V, C]) Close() error {
	s.sp.Lock()
	if s.sp.Closed() {
		s.sp.Unlock()
		return nil
	}
	s.sp.MarkClosed()
	out := s.out
	s.out = nil
	closedErr := s.sp.closedError("while it was read")
	s.sp.Unlock()
	var errs []error
	if out != nil {
		errs = append(errs, out.abort(closedErr)) // takes the lock to close the in-memory reader
	}
	s.sp.Lock()
	defer s.sp.Unlock()
	errs = append(errs, s.stopSpill())
	if s.reading != nil {
		errs = append(errs, s.reading.finishLocked())
	}
	s.m, s.buf, s.spills = nil, nil, nil
	for _, id := range s.files {
		if _, err := s.disk.Remove(id); err != nil {
			errs = append(errs, fmt.Errorf("collection: deleting spill file %s: %w", id, err))
		}
	}
	s.files = nil
	return errors.Join(errs...)
}
