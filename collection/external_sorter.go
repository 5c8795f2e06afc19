package collection

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"unsafe"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// SorterConfig configures an ExternalSorter. Only the codecs are required; the zero value of
// every other field means Spark's default.
type SorterConfig[K comparable, V, C any] struct {
	// Aggregator combines the values of each key into a combiner (map-side combine). nil means
	// no aggregation: records are kept as inserted, and then C must be the same type as V
	// (NewExternalSorter reports an error otherwise).
	Aggregator *Aggregator[K, V, C]
	// Partitioner assigns each key its partition. nil means one partition (0); with one
	// partition the partitioner is not called, as in Spark.
	Partitioner interface {
		NumPartitions() int
		Partition(K) int
	}
	// Ordering orders keys within a partition (cmp.Compare's contract). nil means no key
	// ordering: records come out grouped by partition only.
	Ordering func(a, b K) int
	// KeyCodec and ValueCodec encode the keys and combiners of spill files and of
	// WritePartitionedFile's output. Decoded values must not alias the bytes they were decoded
	// from (string keys decoded by an aliasing codec are cloned).
	KeyCodec   storage.Codec[K]
	ValueCodec storage.Codec[C]
	// Spill is the spill policy and spill-file format (zero: Spark's defaults).
	Spill SpillConfig
	// Hasher hashes keys for the in-memory map and, when aggregating without an Ordering, orders
	// spills and their merge by key hash. The zero Hasher means NewHasher. Tests force
	// collisions with HasherFunc.
	Hasher Hasher[K]
	// Name names the sorter in logs and memory usage reports. "" means "ExternalSorter".
	Name string
}

// Validate reports every invalid field, naming it and its value.
func (c SorterConfig[K, V, C]) Validate() error {
	var errs []error
	if c.Aggregator != nil {
		errs = append(errs, c.Aggregator.Validate())
	} else if reflect.TypeFor[V]() != reflect.TypeFor[C]() {
		errs = append(errs, fmt.Errorf("collection: SorterConfig without an Aggregator keeps values as they are, so C (%v) must be V (%v)",
			reflect.TypeFor[C](), reflect.TypeFor[V]()))
	}
	if c.Partitioner != nil {
		if n := c.Partitioner.NumPartitions(); n < 1 || n > math.MaxInt32 {
			errs = append(errs, fmt.Errorf("collection: SorterConfig.Partitioner has %d partitions, outside [1, %d]", n, math.MaxInt32))
		}
	}
	if c.KeyCodec == nil {
		errs = append(errs, errors.New("collection: SorterConfig.KeyCodec is nil"))
	}
	if c.ValueCodec == nil {
		errs = append(errs, errors.New("collection: SorterConfig.ValueCodec is nil"))
	}
	return errors.Join(append(errs, c.Spill.Validate())...)
}

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
}

// NewExternalSorter returns an empty sorter of task tm that spills into disk (normally the
// task's disk scope). It returns an error naming every invalid setting: a missing task or scope,
// a missing codec or aggregator function, a partitioner without partitions, an invalid spill
// configuration, or — without an Aggregator — a combiner type C different from V.
func NewExternalSorter[K comparable, V, C any](tm *memory.TaskManager, disk *storage.Scope, cfg SorterConfig[K, V, C]) (*ExternalSorter[K, V, C], error) {
	var errs []error
	if tm == nil {
		errs = append(errs, errors.New("collection: no TaskManager (an ExternalSorter belongs to a task)"))
	}
	if disk == nil {
		errs = append(errs, errors.New("collection: no disk scope for spill files"))
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
		codec:  pairCodec[K, C]{cfg.KeyCodec, cfg.ValueCodec},
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
	s.io.init(tm, name)
	s.sp.reserveWriterOn(&s.io)
	s.sp.writerAtCheck = true // forceSpill spills only the reading iterator
	s.sizes = newRecordSizes[K, V](s.sp.Strict())
	if s.io.strict {
		s.maxLive = maxLiveSpills(s.n)
	}
	s.newCollection()
	return s, nil
}

// The sorter keeps a record of every spill file it has not handed to a reader (its partitions'
// record counts and byte offsets, 16 bytes per partition, its id, and the DiskBlockManager's
// and scope's entries for the file), so that the memory of these records does not grow with the
// number of spills it compacts them (compactSpills): it keeps at most maxLiveSpills files, which
// is about spillRecordsBytes of records (at least minLiveSpills files, at most maxLiveSpillsCap).
const (
	spillRecordBytes  = 512 // a spill file's record, apart from its partitions
	spillRecordsBytes = 256 << 10
	minLiveSpills     = 8
	maxLiveSpillsCap  = 128
)

// maxLiveSpills is the most spill files a sorter of n partitions keeps before it compacts them.
func maxLiveSpills(n int) int {
	per := spillRecordBytes + 16*int64(n) + 8
	return int(min(max(spillRecordsBytes/per, minLiveSpills), maxLiveSpillsCap))
}

// compactSpills merges the smallest spill files (through multiPass with a limit, the memory of
// the readers and the writer acquired on the spill I/O consumer) until at most half of maxLive
// are left (in memory.Strict accounting: with memory.SparkAllowances the sorter keeps every
// spill file until it is read, as Spark does), so that the sorter's records of its files, and the files, do not grow with the
// number of spills: with the spills of a tiny budget merged k at a time, each record is
// rewritten about log_k(spills) times, as a multi-pass merge at the end would. Called while
// inserting, with the lock held; it releases it while merging. On error every spill file is
// deleted and the sorter is broken.
func (s *ExternalSorter[K, V, C]) compactSpills(ctx context.Context) error {
	spills := s.spills
	s.spills = nil
	mp := &multiPass[sorterSpill]{io: &s.io, cfg: s.sp.cfg, info: func(f sorterSpill) fileInfo { return f.file.info() },
		merge: s.mergeGroup, remove: s.removeSpill, limit: s.maxLive / 2}
	s.sp.Unlock()
	files, res, _, err := mp.reduce(ctx, spills)
	s.sp.Lock()
	if res != nil {
		res.close()
	}
	if err == nil && s.sp.Closed() {
		err = s.sp.closedError("while its spills were merged") // Close deleted the files
	}
	if err != nil {
		return s.fail(err)
	}
	s.spills = append(files, s.spills...)
	return nil
}

// afterSpill compacts the spill files when there are more than maxLive. Call with the lock held
// while inserting.
func (s *ExternalSorter[K, V, C]) afterSpill(ctx context.Context) error {
	if s.maxLive == 0 || len(s.spills) <= s.maxLive {
		return nil
	}
	if err := s.compactSpills(ctx); err != nil {
		return err
	}
	return s.checkUsable()
}

func (s *ExternalSorter[K, V, C]) newCollection() {
	if s.agg != nil {
		s.m = NewPartitionedAppendOnlyMap[K, C](s.hasher)
	} else {
		s.buf = newPartitionedPairBuffer[K, C](s.n > 1)
	}
}

// Spill implements memory.Consumer (Spillable.spill): a forced spill when another consumer of
// the task is short of memory. It spills only while the sorter is read through Iterator.
func (s *ExternalSorter[K, V, C]) Spill(size int64, trigger memory.Consumer) (int64, error) {
	return s.sp.Spill(size, trigger)
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
// the error of records, and the error of a failed spill (which breaks the sorter).
func (s *ExternalSorter[K, V, C]) InsertAll(ctx context.Context, records Iterator[Pair[K, V]]) error {
	s.sp.Lock()
	err := s.checkUsable()
	s.sp.Unlock()
	if err != nil {
		_ = records.Close()
		return err
	}
	return insertBatches(ctx, &s.sp, records, s.input, func(batch []Pair[K, V]) error {
		return s.insertLocked(ctx, batch)
	})
}

// insertLocked inserts a batch of records with the lock held: for each, Spark's
// addElementsRead, the insert into the map or buffer, then maybeSpillCollection.
func (s *ExternalSorter[K, V, C]) insertLocked(ctx context.Context, batch []Pair[K, V]) error {
	if err := s.checkUsable(); err != nil { // the lock was released since the last look
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
		if _, err := s.sp.maybeSpill(ctx, est, check, s.spillCollection); err != nil {
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
	if buf := s.buf; buf.Len() == buf.capacity() {
		// The next record doubles the buffer: ask for the memory it will take now.
		doubling = int64(buf.capacity()) * buf.recordSize()
	}
	kb, vb := s.sizes.of(r.Key, *(*V)(unsafe.Pointer(&r.Value))) // C is V without an Aggregator
	rec := kb + vb
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
	var err error
	switch {
	case s.sp.strict:
		err = s.sp.admit(ctx, est, doubling, rec, s.spillCollection, s.collectionSize)
	case doubling > 0:
		_, err = s.sp.MaybeSpillNow(ctx, s.sp.GrowthMemory(est, doubling), s.spillCollection)
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
	return err
}

// takeSorted hands the in-memory records over to a destructive iterator sorted by partition and
// then by the Ordering — or, when aggregating without one, by key hash if the records will be
// merged with spills (byHash), else by partition only (Spark's
// partitionedDestructiveSortedIterator with the comparator it picks). The sorter no longer
// references the collection.
func (s *ExternalSorter[K, V, C]) takeSorted(byHash bool) Iterator[PartitionedPair[K, C]] {
	if s.agg != nil {
		m := s.m
		s.m = nil
		if s.order == nil && byHash {
			return m.PartitionedDestructiveSortedByHash()
		}
		return m.PartitionedDestructiveSortedIterator(s.order)
	}
	b := s.buf
	s.buf = nil
	return b.PartitionedDestructiveSortedIterator(s.order)
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
	if !readUse && s.io.strict && len(s.spills) > 0 {
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
				pi.sources = append(pi.sources, newCursor[K, C](src))
				continue
			}
		}
		err = errors.Join(err, s.removeSpill(files[i]))
	}
	if res != nil {
		res.close()
	}
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

// mergeGroup merges a group of the sorter's spills into one, partition by partition, as the
// final merge would (a pass of a multi-pass merge), with the lock not held: the readers and the
// writer take their memory from res.
func (s *ExternalSorter[K, V, C]) mergeGroup(ctx context.Context, group []sorterSpill, res *reservation) (sorterSpill, error) {
	pi := &PartitionIterator[K, C]{ctx: ctx, n: s.n, part: -1}
	s.mergeSettings(pi)
	for _, f := range group {
		src, err := s.openSpill(f, res.take(f.file.readCost))
		if err != nil {
			return sorterSpill{}, errors.Join(err, pi.Close())
		}
		pi.sources = append(pi.sources, newCursor[K, C](src))
	}
	defer res.take(res.left)() // the writer's
	f, err := writeSorterSpill(s.disk, s.sp.cfg, s.codec, s.n, &partitionedRecords[K, C]{pi: pi})
	if err != nil {
		return sorterSpill{}, err
	}
	s.sp.Lock()
	defer s.sp.Unlock()
	if s.sp.Closed() {
		return sorterSpill{}, errors.Join(s.sp.closedError("while its spills were merged"), s.removeSpill(f))
	}
	s.files = appendLive(s.disk, s.files, f.file.id)
	return f, nil
}

// removeSpill deletes a spill file of the sorter (if it still exists).
func (s *ExternalSorter[K, V, C]) removeSpill(f sorterSpill) error {
	if _, err := s.disk.Remove(f.file.id); err != nil {
		return fmt.Errorf("collection: deleting spill file %s: %w", f.file.id, err)
	}
	return nil
}

// partitionedRecords is a PartitionIterator's records as one stream of PartitionedPairs.
type partitionedRecords[K comparable, C any] struct {
	pi   *PartitionIterator[K, C]
	recs Iterator[Pair[K, C]]
	cur  PartitionedPair[K, C]
}

func (r *partitionedRecords[K, C]) Next() bool {
	for {
		if r.recs != nil && r.recs.Next() {
			p := r.recs.Value()
			r.cur = PartitionedPair[K, C]{Partition: int32(r.pi.Partition()), Key: p.Key, Value: p.Value}
			return true
		}
		r.cur = PartitionedPair[K, C]{}
		if !r.pi.Next() {
			r.recs = nil
			return false
		}
		r.recs = r.pi.Records()
	}
}

func (r *partitionedRecords[K, C]) Value() PartitionedPair[K, C] { return r.cur }
func (r *partitionedRecords[K, C]) Err() error                   { return r.pi.Err() }
func (r *partitionedRecords[K, C]) Close() error                 { return r.pi.Close() }

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
