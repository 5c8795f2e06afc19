package collection

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// Defaults of SpillConfig, Spark's values.
const (
	// DefaultInitialThreshold is spark.shuffle.spill.initialMemoryThreshold: the free allowance
	// of every spillable collection (5 MiB).
	DefaultInitialThreshold int64 = 5 << 20
	// DefaultSpillBatchSize is spark.shuffle.spill.batchSize: records per spill-file batch.
	DefaultSpillBatchSize = 10000
	// DefaultSpillBatchBytes is the largest uncompressed batch of a spill file (1 MiB); it bounds
	// the buffer each spill reader holds. Spark batches by record count only.
	DefaultSpillBatchBytes = 1 << 20
	// NoInitialThreshold in SpillConfig.InitialThreshold gives a collection no free allowance:
	// every byte it holds is acquired from the memory manager.
	NoInitialThreshold int64 = -1
	// checkPeriod is how often (in elements read) maybeSpill asks for memory (Spark's 32).
	checkPeriod = 32
	// largeCheckBytes is, in memory.Strict accounting, the estimated bytes of records inserted
	// since the last memory check that make the next check run at once, whatever the number of
	// elements read: a large record is accounted before it is inserted, not up to 31 records
	// later.
	largeCheckBytes = 64 << 10
)

// SpillConfig configures the spill policy shared by ExternalAppendOnlyMap, ExternalGrouper and
// ExternalSorter (Spark's Spillable and the spill writers' settings). Its zero value means
// Spark's defaults.
type SpillConfig struct {
	// InitialThreshold is spark.shuffle.spill.initialMemoryThreshold. Its meaning depends on the
	// task's memory.Config.Accounting:
	//   - memory.SparkAllowances: the memory a collection may hold before it asks the memory
	//     manager for any. This allowance is free: it is never acquired, exactly as in Spark.
	//     0 means 5 MiB; NoInitialThreshold means none.
	//   - memory.Strict (the default): nothing is free. A positive value is the least the
	//     collection acquires whenever it starts holding memory (its first insert, the first
	//     insert after each spill), so small collections do not ask the manager for a few
	//     kilobytes at a time; it is acquired, accounted, and given back at the spill. 0 and
	//     NoInitialThreshold mean no minimum: the first acquisition is Spark's 2 × size.
	InitialThreshold int64
	// ForceSpillElements forces a spill once more than this many elements were read since the
	// last spill, whatever the memory (spark.shuffle.spill.numElementsForceSpillThreshold).
	// 0 means no limit (Spark: Int.MaxValue).
	ForceSpillElements int64
	// ForceSpillBytes forces a spill once the collection's estimated size exceeds this many bytes
	// (spark.shuffle.spill.maxSizeInBytesForSpillThreshold). 0 means no limit (Spark:
	// Long.MaxValue).
	ForceSpillBytes int64
	// BatchSize is the number of records per batch of a spill file, each batch independently
	// readable (spark.shuffle.spill.batchSize). 0 means 10000.
	BatchSize int
	// BatchBytes also ends a spill batch once its uncompressed records reach this many bytes, so
	// each spill reader holds at most about BatchBytes plus one record (twice that with
	// compression). 0 means 1 MiB, or under strict accounting (memory.Strict) 1/64 of the
	// on-heap unified memory when that is smaller (at least 8 KiB), so that a small budget can
	// hold several spill readers; at most 64 MiB. Spark has no byte limit.
	BatchBytes int
	// Compression of spill batches (spark.shuffle.spill.compress). The zero value is
	// storage.CompressionDefault (S2); storage.CompressionNone turns it off.
	Compression storage.Compression
	// Logger receives spill start and finish at Info under the name "collection". nil means
	// zap.NewNop().
	Logger *zap.Logger
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c SpillConfig) Validate() error {
	var errs []error
	if c.InitialThreshold < 0 && c.InitialThreshold != NoInitialThreshold {
		errs = append(errs, fmt.Errorf("collection: SpillConfig.InitialThreshold %d is negative (use NoInitialThreshold for none)", c.InitialThreshold))
	}
	if c.ForceSpillElements < 0 {
		errs = append(errs, fmt.Errorf("collection: SpillConfig.ForceSpillElements %d is negative", c.ForceSpillElements))
	}
	if c.ForceSpillBytes < 0 {
		errs = append(errs, fmt.Errorf("collection: SpillConfig.ForceSpillBytes %d is negative", c.ForceSpillBytes))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("collection: SpillConfig.BatchSize %d is negative", c.BatchSize))
	}
	if c.BatchBytes < 0 || c.BatchBytes > 64<<20 {
		errs = append(errs, fmt.Errorf("collection: SpillConfig.BatchBytes %d is outside [0, 64 MiB]", c.BatchBytes))
	}
	if c.Compression > storage.CompressionZstd {
		errs = append(errs, fmt.Errorf("collection: SpillConfig.Compression %d is unknown", c.Compression))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field replaced by its default.
func (c SpillConfig) withDefaults() SpillConfig {
	switch c.InitialThreshold {
	case 0:
		c.InitialThreshold = DefaultInitialThreshold
	case NoInitialThreshold:
		c.InitialThreshold = 0
	}
	if c.ForceSpillElements == 0 {
		c.ForceSpillElements = math.MaxInt64
	}
	if c.ForceSpillBytes == 0 {
		c.ForceSpillBytes = math.MaxInt64
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultSpillBatchSize
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultSpillBatchBytes
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// strictBatchBytes is the default spill batch size under strict accounting: 1/64 of the
// on-heap unified memory, between 8 KiB and DefaultSpillBatchBytes. Every open spill reader
// holds about two batches, all of it acquired, so batches sized for the budget let a merge open
// several files even when the budget is small.
func strictBatchBytes(m *memory.UnifiedManager) int {
	return int(min(DefaultSpillBatchBytes, max(8<<10, m.Metrics().Pools[memory.OnHeap].Max/64)))
}

// recordWriterConfig is the storage configuration of this config's spill files.
func (c SpillConfig) recordWriterConfig() storage.RecordWriterConfig {
	return storage.RecordWriterConfig{Compression: c.Compression, BatchRecords: c.BatchSize, BatchBytes: c.BatchBytes}
}

// SpillMetrics is a value snapshot of a spillable collection's spill counters, with Spark's task
// metric names.
type SpillMetrics struct {
	// Spills counts the spills the collection decided itself (Spark's spillCount, which leaves
	// out forced spills).
	Spills int64
	// ForcedSpills counts spills the TaskManager asked for (Spark's forceSpill calls that
	// spilled).
	ForcedSpills int64
	// MemoryBytesSpilled is the estimated in-memory size of everything spilled
	// (memoryBytesSpilled).
	MemoryBytesSpilled int64
	// DiskBytesSpilled is the bytes written to spill files (diskBytesSpilled).
	DiskBytesSpilled int64
	// PeakMemoryUsedBytes is the largest estimated size of the in-memory collection
	// (peakMemoryUsedBytes, reported as PeakExecutionBytes).
	PeakMemoryUsedBytes int64
	// MergePasses is the number of passes over the spilled data when it was read: 1 when every
	// spill file was merged at once, more when the memory for the readers allowed only a few
	// at a time and groups were first merged into larger files; 0 without spills. Spark
	// always merges in one pass.
	MergePasses int64
}

// Spillable is Spark's Spillable (core/src/main/scala/org/apache/spark/util/collection/
// Spillable.scala): the spill policy and memory bookkeeping of one collection that holds
// execution memory of a task and writes itself to disk when memory is short.
//
// A collection keeps a Spillable as a field, initialises it with Init, and forwards the
// memory.Consumer methods (Spill, Used, Mode) to it, so the TaskManager sees the collection:
//
//	type myMap struct{ sp Spillable; ... }
//	func (m *myMap) Spill(size int64, trigger memory.Consumer) (int64, error) { return m.sp.Spill(size, trigger) }
//	func (m *myMap) Used() int64       { return m.sp.Used() }
//	func (m *myMap) Mode() memory.Mode { return m.sp.Mode() }
//
// The policy (Spark's): every 32 elements read, once the collection's estimated size reaches
// its threshold, MaybeSpill asks for 2 × size − threshold more bytes; if the threshold still
// does not cover the size, the collection spills and gives back everything it acquired. It also
// spills when more than ForceSpillElements elements were read since the last spill or its size
// exceeds ForceSpillBytes. When another consumer of the task is short, the TaskManager calls
// Spill and the collection's forceSpill hook writes what it can to disk; a request the
// collection made itself (trigger == the collection) returns 0, since it spills through
// MaybeSpill instead.
//
// What is accounted follows the task's memory.Config.Accounting:
//   - memory.SparkAllowances, for comparisons with Spark: the collection's first
//     InitialThreshold bytes (5 MiB by default) are free, never acquired; a large record is
//     noticed only at the next check (up to 31 records later), so the collection can hold its
//     threshold plus 31 records; when the table doubles, the check asks for the doubled size
//     (the old array, live during the copy, is not counted).
//   - memory.Strict (the default): nothing is free. The threshold starts at 0, so the first
//     insert acquires the collection's memory before it is used (at least InitialThreshold when
//     set, see SpillConfig). Before a table or buffer doubles the check asks for the old and the
//     new array together, both live during the copy, and spills instead of growing when they
//     cannot be had. Each insert estimates the bytes its record references beyond its slot (the
//     length of a string or a slice of pointer-free elements, the estimator's walk for other
//     pointerful types, nothing for pointer-free types, whose bytes are all in the table the
//     tracker measures) and runs the check at once when the records inserted since the last
//     check reach 64 KiB, counting the record about to be inserted. The bytes of the records
//     kept since the last spill are also a floor under the tracker's estimate, which samples
//     and extrapolates and so can miss a large record. A record that does not fit even once
//     the collection spilled everything and the task spilled its other consumers (more than
//     the task can ever grant it) fails the insert with an error wrapping memory.ErrOutOfMemory
//     carrying the task's usage report: it is never held unaccounted.
//     The spill writer's buffers (its batch, the compressed copy and the file buffer, for
//     records as large as the largest inserted so far) are reserved on the collection's
//     "spill I/O" consumer before the collection holds data, while the lock is released, and
//     given back with the collection's memory (after a spill, at Close): a spill, forced or
//     not, runs with the lock held and so cannot acquire them itself. If the task cannot grant
//     them the collection spills what it holds and asks again, then fails the insert with
//     memory.ErrOutOfMemory.
//
// Concurrency: the TaskManager may call Spill from any goroutine of the task. Lock and Unlock
// guard the collection's state against that: the collection holds the lock in every method
// that touches its data, and Spill takes it before calling forceSpill. MaybeSpill, called with
// the lock held, releases it while it waits for memory (acquiring memory may spill this very
// collection from the same goroutine) and takes it again before it returns. Nothing else may
// be called with the lock held that acquires memory.
//
// Closing: the collection's Close calls MarkClosed with the lock held. Because MaybeSpill
// releases the lock while it waits for memory, Close may run in the middle of an insert's
// acquisition; when the acquisition returns, MaybeSpill sees the mark under the lock, gives the
// grant back at once and returns an error wrapping ErrClosed without calling spill, so a closed
// collection never holds memory again and its spill function never runs on freed state. After
// MarkClosed, Spill does nothing and MaybeSpill returns ErrClosed.
//
// Differences from Spark: Spark only force-spills when the task's Tungsten mode is on-heap;
// Spillway force-spills in either mode (the collection's memory is on-heap in both). Forced
// spills are counted (ForcedSpills) where Spark counts nothing. Spill errors are returned as
// values, wrapped with the sizes involved.
type Spillable struct {
	base  memory.ConsumerBase
	cfg   SpillConfig // defaults filled in
	log   *zap.Logger
	self  memory.Consumer
	name  string
	force func() (spilled bool, diskBytes int64, err error)

	strict     bool  // the task's manager is in memory.Strict accounting
	allowance  int64 // the free initial threshold: InitialThreshold (SparkAllowances), 0 (Strict)
	minAcquire int64 // Strict: the least a collection holding nothing acquires (InitialThreshold)

	// Strict: the spill writer's buffers, reserved on io (the collection's spill I/O consumer)
	// before the collection holds data, so that a spill, forced or not, never allocates
	// unaccounted buffers with the lock held (acquiring then could deadlock).
	io *ioMemory
	// Strict: the collection is force-spilled only while it is read (ExternalSorter), so while
	// it takes inserts its spill writer is reserved at the next memory check, not at once after
	// a spill; it reserves it (ensureWriter) before it is read.
	writerAtCheck bool

	mu           sync.Mutex
	threshold    int64 // myMemoryThreshold: the allowance + the bytes acquired
	writerHeld   int64 // Strict: the spill writer's reservation on io, given back by ReleaseMemory
	largest      int64 // Strict: the largest record inserted (estimated bytes beyond its slot)
	floor        int64 // Strict: estimated bytes referenced by the records kept since the last spill
	pending      int64 // Strict: estimated bytes of the records inserted since the last check
	elementsRead int64 // since the last spill
	forcedGen    int64 // forced spills so far; MaybeSpill notices one that ran while it waited
	closed       bool  // MarkClosed ran
	metrics      SpillMetrics
}

// Init attaches the policy to its task. self is the collection (what the TaskManager calls Spill
// on, and what Spill compares trigger with); name appears in logs and usage reports; forceSpill
// is Spark's forceSpill: called with the lock held when the TaskManager asks the collection to
// spill, it writes what it can to disk, drops every reference to the in-memory data it wrote,
// and reports whether it spilled and the bytes it wrote. cfg must be valid (Init panics
// otherwise: check it with Validate first).
func (s *Spillable) Init(tm *memory.TaskManager, self memory.Consumer, name string, cfg SpillConfig,
	forceSpill func() (spilled bool, diskBytes int64, err error)) {
	if err := cfg.Validate(); err != nil {
		panic(err.Error())
	}
	if forceSpill == nil {
		panic("collection: Spillable.Init needs a forceSpill function")
	}
	s.base.Init(tm, memory.OnHeap, name, self)
	s.cfg = cfg.withDefaults()
	if cfg.BatchBytes == 0 && tm.Manager().Accounting() == memory.Strict {
		s.cfg.BatchBytes = strictBatchBytes(tm.Manager())
	}
	s.log = s.cfg.Logger.Named("collection").With(zap.Int64("task", int64(tm.ID())), zap.String("consumer", name))
	s.self, s.name, s.force = self, name, forceSpill
	s.strict = tm.Manager().Accounting() == memory.Strict
	s.allowance = s.cfg.InitialThreshold
	if s.strict {
		s.allowance, s.minAcquire = 0, max(cfg.InitialThreshold, 0)
	}
	s.threshold = s.allowance
}

// reserveWriterOn makes the collection, in memory.Strict accounting, reserve its spill writer's
// buffers on io before it holds any data (see writerNeed). Call it after Init, before any insert.
func (s *Spillable) reserveWriterOn(io *ioMemory) {
	if s.strict {
		s.io = io
	}
}

// writerNeed is the memory of the spill writer writing the collection's records (the largest
// so far included): writerCost with a batch of BatchBytes plus that record. Call with the lock
// held.
func (s *Spillable) writerNeed() int64 {
	return writerCost(s.cfg, s.largest, math.MaxInt64)
}

// writerShort reports whether the spill writer's reservation must grow before the next insert.
// Call with the lock held.
func (s *Spillable) writerShort() bool {
	return s.io != nil && !s.closed && s.writerHeld < s.writerNeed()
}

// reserveWriter grows the spill writer's reservation towards writerNeed, releasing the lock
// while it acquires (the acquisition may force-spill this collection, whose records the
// reservation held so far covers). It reports whether the reservation now covers writerNeed;
// the error is the memory manager's, or ErrClosed's when Close ran meanwhile. Call with the
// lock held.
func (s *Spillable) reserveWriter(ctx context.Context) (bool, error) {
	request := s.writerNeed() - s.writerHeld
	granted, err := s.acquireUnlocked(ctx, request, "for its spill writer", s.io.Acquire, s.io.Release)
	if errors.Is(err, ErrClosed) {
		return false, err
	}
	s.writerHeld += granted
	if err != nil {
		return false, fmt.Errorf("collection: %s acquiring %s for its spill writer (records of up to about %s): %w",
			s.name, humanize.IBytes(uint64(request)), humanize.IBytes(uint64(s.largest)), err)
	}
	return granted >= request, nil
}

// ensureWriter makes the spill writer's reservation cover writerNeed, again if a forced spill
// released it while the lock was released, and reports whether the task granted less. Call with
// the lock held; it releases it while acquiring.
func (s *Spillable) ensureWriter(ctx context.Context) (short bool, err error) {
	for s.writerShort() {
		ok, err := s.reserveWriter(ctx)
		if err != nil || !ok {
			return !ok, err
		}
	}
	return false, nil
}

// reserveWriterNow is ensureWriter with a grant short of writerNeed an error wrapping
// memory.ErrOutOfMemory: for a collection that holds no data to spill.
func (s *Spillable) reserveWriterNow(ctx context.Context) error {
	if short, err := s.ensureWriter(ctx); err != nil || short {
		return cmp.Or(err, s.writerOutOfMemory())
	}
	return nil
}

// writerOutOfMemory is the error of a record whose spill writer's buffers the task cannot grant
// even with the collection spilled: it wraps memory.ErrOutOfMemory and carries the usage report.
func (s *Spillable) writerOutOfMemory() error {
	return fmt.Errorf("collection: %s cannot hold a record of about %s even with everything spilled: "+
		"%w: unable to acquire %s of memory for its spill writer, holding %s\n%s", s.name, humanize.IBytes(uint64(s.largest)),
		memory.ErrOutOfMemory, humanize.IBytes(uint64(s.writerNeed())), humanize.IBytes(uint64(s.writerHeld)),
		s.base.TaskManager().UsageReport())
}

// Strict reports whether the task's manager is in memory.Strict accounting.
func (s *Spillable) Strict() bool { return s.strict }

// Config returns the configuration with defaults filled in.
func (s *Spillable) Config() SpillConfig { return s.cfg }

// Logger returns the collection's logger (named "collection", with the task and consumer).
func (s *Spillable) Logger() *zap.Logger { return s.log }

// Lock takes the collection's lock (see the type's doc).
func (s *Spillable) Lock() { s.mu.Lock() }

// Unlock releases the collection's lock.
func (s *Spillable) Unlock() { s.mu.Unlock() }

// Used is the execution memory the collection holds: what it acquired beyond its free allowance
// (none in memory.Strict accounting) (memory.Consumer).
func (s *Spillable) Used() int64 { return s.base.Used() }

// Mode is memory.OnHeap: spillable collections live in the Go heap (memory.Consumer).
func (s *Spillable) Mode() memory.Mode { return s.base.Mode() }

// MarkClosed is the Spillable's part of the collection's Close, called with the lock held: it
// gives back everything acquired and marks the collection closed, so that Spill does nothing
// and MaybeSpill returns an error wrapping ErrClosed from now on — also a MaybeSpill that was
// waiting for memory when Close ran, which frees what it is granted. Later calls do nothing.
func (s *Spillable) MarkClosed() {
	s.closed = true
	s.ReleaseMemory()
}

// Closed reports whether MarkClosed ran. Call with the lock held.
func (s *Spillable) Closed() bool { return s.closed }

// closedError is the error of an operation of the collection cut short by its Close: it wraps
// ErrClosed and names the collection and the operation.
func (s *Spillable) closedError(during string) error {
	return fmt.Errorf("collection: %s was closed %s: %w", s.name, during, ErrClosed)
}

// AddElementsRead counts one element read (Spark's addElementsRead). Call with the lock held.
func (s *Spillable) AddElementsRead() { s.elementsRead++ }

// ElementsRead returns the elements read since the last spill.
func (s *Spillable) ElementsRead() int64 { return s.elementsRead }

// Threshold returns the current memory threshold (myMemoryThreshold): the free allowance (none
// in memory.Strict accounting) plus what the collection acquired.
func (s *Spillable) Threshold() int64 { return s.threshold }

// UpdatePeak records currentMemory as the peak if it is the largest seen. Call with the lock
// held.
func (s *Spillable) UpdatePeak(currentMemory int64) {
	s.metrics.PeakMemoryUsedBytes = max(s.metrics.PeakMemoryUsedBytes, currentMemory)
}

// AddDiskBytesSpilled adds n bytes written to disk outside a spill (e.g. by a reader that was
// force-spilled) to DiskBytesSpilled. Call with the lock held.
func (s *Spillable) AddDiskBytesSpilled(n int64) { s.metrics.DiskBytesSpilled += n }

// Metrics returns a snapshot of the spill counters. Call with the lock held, or after the
// collection stopped changing.
func (s *Spillable) Metrics() SpillMetrics { return s.metrics }

// MaybeSpill is Spark's maybeSpill: given the collection's estimated size, it acquires more
// memory or spills. It must be called with the lock held; it releases the lock while acquiring
// memory. When it decides to spill it calls spill (with the lock held), which writes the
// in-memory data to disk and returns the bytes written; the collection must then start a new,
// empty in-memory structure. It reports whether spill ran. When a forced spill emptied the
// collection while MaybeSpill waited for memory, it returns false: there is nothing left to
// spill.
//
// The error is the memory manager's (cancellation, a failed spill of another consumer) or
// spill's, wrapped with the sizes involved; the collection should then be closed. After
// MarkClosed, and when MarkClosed ran while it waited for memory, it returns an error wrapping
// ErrClosed (see the type's doc).
func (s *Spillable) MaybeSpill(ctx context.Context, currentMemory int64, spill func() (diskBytes int64, err error)) (bool, error) {
	return s.maybeSpill(ctx, currentMemory, s.checkDue(), spill)
}

// MaybeSpillNow is MaybeSpill checking the memory whatever the number of elements read: for a
// collection about to grow by a large step, with currentMemory the most it will hold during the
// step, so the step is granted or spilled before it happens. For a table doubling that is its
// size after the step in memory.SparkAllowances accounting, and its size plus the old array in
// memory.Strict, where both arrays are live during the copy (see GrowthMemory).
func (s *Spillable) MaybeSpillNow(ctx context.Context, currentMemory int64, spill func() (diskBytes int64, err error)) (bool, error) {
	return s.maybeSpill(ctx, currentMemory, true, spill)
}

// GrowthMemory returns the memory a collection of estimated size est holds while an array of
// oldBytes (counted in est) doubles: est plus the new array less the old one, which is freed
// after the copy, in memory.SparkAllowances accounting; est plus the new array in memory.Strict,
// where the old and the new array coexist during the copy.
func (s *Spillable) GrowthMemory(est, oldBytes int64) int64 {
	if s.strict {
		return est + 2*oldBytes
	}
	return est + oldBytes
}

// beforeInsert returns the memory figure and whether the check is due before a record is
// inserted into a collection of tracked size est: with doubling the bytes of an array the insert
// doubles (0 if none), and rec the bytes the record references beyond its slot (0 unless
// memory.Strict; see recordSizer). Call with the lock held.
func (s *Spillable) beforeInsert(est, doubling, rec int64) (mem int64, check bool) {
	mem, check = est, s.checkDue()
	if s.strict {
		mem = max(est, s.floor) + rec
		s.pending += rec
		s.largest = max(s.largest, rec)
		// A collection holding nothing acquires before its first record, not 32 records later.
		check = check || s.pending >= largeCheckBytes || s.threshold == 0
	}
	if check {
		s.pending = 0 // the memory is looked at now
	}
	if doubling > 0 {
		mem, check = s.GrowthMemory(mem, doubling), true
	}
	return mem, check
}

// admit is the memory check before an insert (Spark's maybeSpill before the record, plus the
// check before a doubling and, in memory.Strict accounting, the check for a large record): est,
// doubling and rec are beforeInsert's; spill is MaybeSpill's; size returns the collection's
// tracked size after a spill (0 if it has no in-memory data any more). In memory.Strict, once
// the check spilled, it acquires the room for the record in the emptied collection, and returns
// an error wrapping memory.ErrOutOfMemory with the task's usage report if the task cannot grant
// it. Call with the lock held; it releases it while acquiring.
func (s *Spillable) admit(ctx context.Context, est, doubling, rec int64, spill func() (int64, error), size func() int64) error {
	if mem, check := s.beforeInsert(est, doubling, rec); s.spillDue(mem, check) {
		return s.admitChecked(ctx, mem, check, rec, spill, size)
	}
	return nil
}

// admitChecked is admit once beforeInsert returned mem and check and spillDue said the check
// does something.
func (s *Spillable) admitChecked(ctx context.Context, mem int64, check bool, rec int64, spill func() (int64, error), size func() int64) error {
	if _, err := s.maybeSpill(ctx, mem, check, spill); err != nil {
		return err
	}
	if !s.strict {
		return nil
	}
	// A spill, forced or not, released the spill writer's reservation: reserve it again before
	// the record is in, unless no forced spill can come before the next check.
	if !s.writerAtCheck {
		if err := s.reserveWriterNow(ctx); err != nil {
			return err
		}
	}
	if rec == 0 {
		return nil
	}
	if held := size(); held > 0 {
		// When the task cannot grant the record on top of what the collection holds (the check
		// did not spill: the collection was below its threshold), spill it and ask again with
		// the collection empty. An error is reported by reserve.
		if short, err := s.grow(ctx, held+rec); err == nil && short {
			if err := s.spillNow(held, spill); err != nil {
				return err
			}
			if !s.writerAtCheck {
				if err := s.reserveWriterNow(ctx); err != nil {
					return err
				}
			}
		}
	}
	return s.reserve(ctx, size()+rec, rec)
}

// retain records, in memory.Strict accounting, that the collection now keeps n more bytes
// referenced by its records: the floor under the tracker's estimate. Call with the lock held.
func (s *Spillable) retain(n int64) { s.floor += n }

// reserve makes the threshold cover need bytes, the collection's size with a record of rec
// bytes it is about to insert, after the memory check (and the collection spilled if the task
// could not grant the record on top of its data): it acquires what is missing, and
// if the task grants less, the record can never fit and it returns an error wrapping
// memory.ErrOutOfMemory with the task's usage report. Call with the lock held.
func (s *Spillable) reserve(ctx context.Context, need, rec int64) error {
	request := need - s.threshold
	short, err := s.grow(ctx, need)
	switch {
	case errors.Is(err, ErrClosed):
		return err
	case err != nil:
		return fmt.Errorf("collection: %s acquiring %s of execution memory for a record of about %s: %w",
			s.name, humanize.IBytes(uint64(request)), humanize.IBytes(uint64(rec)), err)
	case short:
		granted := request - (need - s.threshold)
		return fmt.Errorf("collection: %s cannot hold a record of about %s even with everything spilled: "+
			"%w: unable to acquire %s of memory, got %s\n%s", s.name, humanize.IBytes(uint64(rec)), memory.ErrOutOfMemory,
			humanize.IBytes(uint64(request)), humanize.IBytes(uint64(granted)), s.base.TaskManager().UsageReport())
	}
	return nil
}

// grow acquires what the threshold lacks to cover need bytes and reports whether the task
// granted less. Call with the lock held.
func (s *Spillable) grow(ctx context.Context, need int64) (bool, error) {
	request := need - s.threshold
	if request <= 0 {
		return false, nil
	}
	granted, err := s.acquireUnlocked(ctx, request, "of execution memory for a record", s.base.Acquire, s.base.Free)
	s.threshold += granted
	return granted < request, err
}

// acquireUnlocked runs acquire with the collection's lock released (acquiring memory may spill
// this very collection from the same goroutine) and takes the lock again. If Close ran in the
// meantime, it gave back everything the collection held and dropped its data: the grant goes
// back through free at once and the error wraps ErrClosed, so a closed collection never holds
// memory again. This is the only place the collection waits for memory. Call with the lock held.
func (s *Spillable) acquireUnlocked(ctx context.Context, n int64, forWhat string,
	acquire func(context.Context, int64) (int64, error), free func(int64)) (int64, error) {
	s.mu.Unlock()
	granted, err := acquire(ctx, n)
	s.mu.Lock()
	if s.closed {
		if granted > 0 {
			free(granted)
		}
		return 0, s.closedError(fmt.Sprintf("while it waited for %s %s", humanize.IBytes(uint64(n)), forWhat))
	}
	return granted, err
}

// checkDue reports whether the periodic memory check is due (every checkPeriod elements read).
func (s *Spillable) checkDue() bool { return s.elementsRead%checkPeriod == 0 }

// spillDue reports whether maybeSpill with these arguments would do anything (acquire memory or
// spill), so callers can skip the call in the common case.
func (s *Spillable) spillDue(currentMemory int64, check bool) bool {
	return check && currentMemory >= s.threshold || s.writerShort() ||
		s.elementsRead > s.cfg.ForceSpillElements || currentMemory > s.cfg.ForceSpillBytes
}

func (s *Spillable) maybeSpill(ctx context.Context, currentMemory int64, check bool, spill func() (int64, error)) (bool, error) {
	if s.closed {
		return false, s.closedError("before a memory check")
	}
	// Strict: the spill writer's buffers for the records held and the one about to be inserted
	// are reserved first. If the task cannot grant them, the collection spills (its reservation
	// covers the records it holds) and asks again.
	gen := s.forcedGen
	writerShort, err := s.ensureWriter(ctx)
	switch {
	case err != nil:
		return false, err
	case writerShort && s.threshold == s.allowance: // nothing to spill
		return false, s.writerOutOfMemory()
	case gen != s.forcedGen:
		return false, nil // an acquisition spilled the collection: nothing left to spill
	}
	shouldSpill := writerShort
	if check && currentMemory >= s.threshold && !writerShort {
		// Claim up to double the current memory (Spark's amountToRequest); in Strict accounting a
		// collection holding nothing claims at least InitialThreshold.
		request := 2*currentMemory - s.threshold
		if s.threshold == 0 {
			request = max(request, s.minAcquire)
		}
		granted, err := s.acquireUnlocked(ctx, request, "of execution memory", s.base.Acquire, s.base.Free)
		if errors.Is(err, ErrClosed) {
			return false, err // nothing is spilled: Close dropped the data
		}
		s.threshold += granted
		if err != nil {
			return false, fmt.Errorf("collection: %s acquiring %s of execution memory for %s in memory: %w",
				s.name, humanize.IBytes(uint64(request)), humanize.IBytes(uint64(currentMemory)), err)
		}
		if gen != s.forcedGen {
			// A forced spill emptied the collection while it waited: the grant was for data now on
			// disk, and its spill writer's reservation went with it. Holding the grant would leave
			// the writer's buffers short with the task's share full; give it back.
			s.ReleaseMemory()
			return false, nil
		}
		shouldSpill = currentMemory >= s.threshold
	}
	shouldSpill = shouldSpill || s.elementsRead > s.cfg.ForceSpillElements || currentMemory > s.cfg.ForceSpillBytes
	if !shouldSpill {
		return false, nil
	}
	if err := s.spillNow(currentMemory, spill); err != nil {
		return false, err
	}
	if writerShort {
		return true, s.reserveWriterNow(ctx)
	}
	return true, nil
}

// spillNow writes the collection's currentMemory bytes of in-memory data out with spill and
// gives its memory back. Call with the lock held.
func (s *Spillable) spillNow(currentMemory int64, spill func() (int64, error)) error {
	s.metrics.Spills++
	s.log.Info("spilling in-memory collection to disk",
		zap.String("bytes", humanize.IBytes(uint64(currentMemory))), zap.Int64("spills", s.metrics.Spills))
	disk, err := spill()
	if err != nil {
		return fmt.Errorf("collection: %s spilling %s of in-memory data (spill %d): %w",
			s.name, humanize.IBytes(uint64(currentMemory)), s.metrics.Spills, err)
	}
	s.elementsRead = 0
	s.metrics.MemoryBytesSpilled += currentMemory
	s.metrics.DiskBytesSpilled += disk
	s.log.Info("spilled in-memory collection to disk",
		zap.String("bytes", humanize.IBytes(uint64(currentMemory))), zap.String("disk", humanize.IBytes(uint64(disk))),
		zap.String("released", humanize.IBytes(uint64(s.threshold-s.allowance))))
	s.ReleaseMemory()
	return nil
}

// writerToReader moves up to n bytes of the spill writer's reservation (memory.Strict) to the
// reader of the file a forced spill of the collection's iterator just wrote, and returns the
// function that gives them back (once; nil when nothing is reserved): that reader's buffers are
// accounted while it is open, and ReleaseMemory gives back only the rest. A writer's buffers
// are at least a reader's of the same records (writerCost against
// storage.RecordWriter.ReadBufferBytes). Call with the lock held.
func (s *Spillable) writerToReader(n int64) func() {
	if s.io == nil || s.writerHeld == 0 {
		return nil
	}
	n = min(n, s.writerHeld)
	s.writerHeld -= n
	io := s.io
	return func() {
		io.Release(n)
		n = 0
	}
}

// ReleaseMemory gives back everything acquired beyond the free allowance and resets the
// threshold to it (Spark's releaseMemory), for a collection that no longer holds its in-memory
// data; in memory.Strict accounting also its spill writer's reservation, acquired again before
// the collection holds data again. Call with the lock held.
func (s *Spillable) ReleaseMemory() {
	if acquired := s.threshold - s.allowance; acquired > 0 {
		s.base.Free(acquired)
	}
	if s.io != nil {
		s.io.Release(s.writerHeld)
		s.writerHeld = 0
	}
	s.threshold = s.allowance
	s.floor, s.pending = 0, 0
}

// Spill is the memory.Consumer callback (Spillable.spill(size, trigger)): when another consumer
// of the task is short of memory, it takes the lock and runs the collection's forceSpill; if
// that spilled, it gives back everything acquired and returns that amount. A request the
// collection made itself (trigger == the collection) returns 0, and so does a closed collection.
func (s *Spillable) Spill(_ int64, trigger memory.Consumer) (int64, error) {
	if trigger == s.self {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, nil
	}
	acquired := s.threshold - s.allowance
	s.log.Info("force spilling in-memory collection to disk", zap.String("bytes", humanize.IBytes(uint64(acquired))))
	spilled, disk, err := s.force()
	s.metrics.DiskBytesSpilled += disk
	if err != nil {
		return 0, fmt.Errorf("collection: %s force spilling (holding %s): %w", s.name, humanize.IBytes(uint64(acquired)), err)
	}
	if !spilled {
		return 0, nil
	}
	s.forcedGen++
	s.metrics.ForcedSpills++
	s.metrics.MemoryBytesSpilled += acquired
	s.ReleaseMemory()
	s.log.Info("force spilled in-memory collection to disk",
		zap.String("released", humanize.IBytes(uint64(acquired))), zap.String("disk", humanize.IBytes(uint64(disk))))
	return acquired, nil
}
