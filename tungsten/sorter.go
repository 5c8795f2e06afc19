package tungsten

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"go.uber.org/zap"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// Errors of the Tungsten collections, matched with errors.Is.
var (
	// ErrClosed is returned by a collection used after Close.
	ErrClosed = errors.New("tungsten: collection is closed")
	// ErrIterated is returned by inserts after the collection was read, and by a second read.
	ErrIterated = errors.New("tungsten: collection was already read")
	// ErrRecordTooLarge is returned for a record larger than MaxRecordSize.
	ErrRecordTooLarge = errors.New("tungsten: record too large")
)

// MaxRecordSize is the largest record the sorters and maps accept: what one spill record can
// hold (storage.MaxRecordSize less the 8-byte key prefix). Spark's limit is a page (about 16 GiB);
// a record larger than the page size gets a page of its own, as in Spark.
const MaxRecordSize = storage.MaxRecordSize - 8

// DefaultMergeFactor is the most spill files merged at once (UnsafeSorterBoundedSpillMerger).
const DefaultMergeFactor = 64

// SpillMetrics is a snapshot of a collection's spill counters, with Spark's task metric names.
type SpillMetrics struct {
	// Spills counts the sorted runs written (by the collection's own spills and forced ones).
	Spills int64
	// ForcedSpills counts the spills another consumer of the task asked for while reading.
	ForcedSpills int64
	// MemoryBytesSpilled is the bytes of pages freed by spills (memoryBytesSpilled).
	MemoryBytesSpilled int64
	// DiskBytesSpilled is the bytes written to spill files (diskBytesSpilled).
	DiskBytesSpilled int64
	// PeakMemoryUsedBytes is the most page and array bytes held at once (peakMemoryUsedBytes).
	PeakMemoryUsedBytes int64
	// MergePasses is the number of merge rounds that wrote intermediate files before the final
	// merge (0 when every spill was merged at once).
	MergePasses int64
}

// SorterConfig configures an ExternalSorter. Its zero value is Spark's defaults with no sort
// (records come back in insertion order).
type SorterConfig struct {
	// Prefix orders the key prefixes.
	Prefix PrefixComparator
	// Records orders records with equal prefixes. nil means no sort: records come back in
	// insertion order (Spark's null record comparator).
	Records RecordComparator
	// CanUseRadixSort says the prefix holds the whole key, so the prefixes are radix sorted and
	// Records is never called (Spark's canUseRadixSort).
	CanUseRadixSort bool
	// InitialSize is the number of records the pointer array first holds. Default 4096
	// (spark.shuffle.sort.initialBufferSize).
	InitialSize int
	// PageSize is the size of data pages. Default the memory manager's page size.
	PageSize int64
	// NumElementsForSpillThreshold spills once this many records are in memory. 0 means no
	// limit (spark.shuffle.spill.numElementsForceSpillThreshold).
	NumElementsForSpillThreshold int
	// SizeInBytesForSpillThreshold spills once the pages and array hold this many bytes. 0 means
	// no limit.
	SizeInBytesForSpillThreshold int64
	// MergeFactor is the most spill files merged at once; more are first merged in rounds. 0
	// means DefaultMergeFactor, -1 merges all at once.
	MergeFactor int
	// Spill configures the spill files (compression, batches). BatchBytes defaults to 64 KiB:
	// each run being read holds about two batches. In memory.Strict accounting the readers' and
	// writers' buffers are acquired from the task (see the package doc); with
	// memory.SparkAllowances they are not, as in Spark.
	Spill storage.RecordWriterConfig
	// Name names the sorter in logs and memory reports. Default "UnsafeExternalSorter".
	Name string
	// Logger receives spill logs. Default: none.
	Logger *zap.Logger
}

func (c SorterConfig) withDefaults() SorterConfig {
	if c.InitialSize == 0 {
		c.InitialSize = 4096
	}
	if c.NumElementsForSpillThreshold == 0 {
		c.NumElementsForSpillThreshold = math.MaxInt
	}
	if c.SizeInBytesForSpillThreshold == 0 {
		c.SizeInBytesForSpillThreshold = math.MaxInt64
	}
	if c.MergeFactor == 0 {
		c.MergeFactor = DefaultMergeFactor
	}
	if c.Name == "" {
		c.Name = "UnsafeExternalSorter"
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c SorterConfig) Validate() error {
	var errs []error
	if c.InitialSize < 0 {
		errs = append(errs, fmt.Errorf("tungsten: SorterConfig.InitialSize %d is negative", c.InitialSize))
	}
	if c.PageSize < 0 || c.PageSize > memory.MaxPageSize {
		errs = append(errs, fmt.Errorf("tungsten: SorterConfig.PageSize %d not in [0, %d]", c.PageSize, memory.MaxPageSize))
	}
	if c.NumElementsForSpillThreshold < 0 {
		errs = append(errs, fmt.Errorf("tungsten: SorterConfig.NumElementsForSpillThreshold %d is negative", c.NumElementsForSpillThreshold))
	}
	if c.SizeInBytesForSpillThreshold < 0 {
		errs = append(errs, fmt.Errorf("tungsten: SorterConfig.SizeInBytesForSpillThreshold %d is negative", c.SizeInBytesForSpillThreshold))
	}
	if c.MergeFactor < -1 || c.MergeFactor == 1 {
		errs = append(errs, fmt.Errorf("tungsten: SorterConfig.MergeFactor %d (must be -1, 0 or at least 2)", c.MergeFactor))
	}
	return errors.Join(append(errs, c.Spill.Validate())...)
}

// ExternalSorter is Spark's UnsafeExternalSorter
// (core/src/main/java/org/apache/spark/util/collection/unsafe/sort/UnsafeExternalSorter.java):
// it copies records as [4-byte length][bytes] into pages of the task's TaskManager, sorts an
// array of (record address, key prefix) pairs, radix sorting the prefixes when they hold the
// whole key, and spills sorted runs to disk when memory runs short; reading merges the runs and
// the in-memory rest.
//
// It is a memory.Consumer whose Used is exactly the bytes of its pages and pointer array. While
// it is filled, only its own allocations make it spill (a spill asked by another consumer
// returns 0, as in Spark); while it is read, another consumer may force the unread in-memory part
// to disk.
//
// Use from one goroutine: InsertRecord, then SortedIterator or Iterator once, then Close (always;
// it frees the memory and deletes the spill files).
type ExternalSorter struct {
	base
	cfg   SorterConfig
	scope *storage.Scope
	log   *zap.Logger

	// mu guards what forced spills and Close touch while the sorter is read: the in-memory
	// sorter, the pages, the spill files, the reading iterator and the metrics. The owner holds
	// it only while no memory is acquired.
	mu      sync.Mutex
	inMem   *inMemorySorter
	pages   []*memory.Page
	cur     *memory.Page
	cursor  int64
	spills  []spillFile // sorted runs, in spill order
	temps   []spillFile // intermediate merge files and runs of forced spills, deleted at Close
	reading *memIterator
	out     *SortedIterator
	metrics SpillMetrics
	read    bool
	closed  bool
	// inline: the array holds the pairs of a Sorter of Int64Key keys and values (inlinesorter.go),
	// their key words XOR flip; lastArray is the longs of the array the last self-spill freed.
	inline    bool
	flip      uint64
	lastArray int
}

// NewExternalSorter returns an empty sorter of task tm that spills into scope, with its pointer
// array allocated (which may spill other consumers of the task, or fail with an error wrapping
// memory.ErrOutOfMemory).
func NewExternalSorter(ctx context.Context, tm *memory.TaskManager, scope *storage.Scope, cfg SorterConfig) (*ExternalSorter, error) {
	if tm == nil || scope == nil {
		return nil, errors.New("tungsten: NewExternalSorter needs a TaskManager and a disk scope")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &ExternalSorter{cfg: cfg, scope: scope, log: cfg.Logger.Named("tungsten")}
	s.base.init(tm, s, cfg.Name, cfg.PageSize, cfg.Spill)
	a, err := s.allocateArray(ctx, 2*cfg.InitialSize)
	if err != nil {
		return nil, err
	}
	s.inMem = newInMemorySorter(&s.base, a, cfg.InitialSize, cfg.Prefix, cfg.Records, cfg.CanUseRadixSort)
	return s, nil
}

// NumRecords is the number of records in memory.
func (s *ExternalSorter) NumRecords() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inMem == nil {
		return 0
	}
	return s.inMem.numRecords()
}

// NumSpills is the number of sorted runs on disk.
func (s *ExternalSorter) NumSpills() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.spills)
}

// Metrics returns the spill counters.
func (s *ExternalSorter) Metrics() SpillMetrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.metrics
	m.PeakMemoryUsedBytes = s.peak.Load()
	return m
}

// PeakMemoryUsedBytes is the most page and array bytes the sorter held at once.
func (s *ExternalSorter) PeakMemoryUsedBytes() int64 { return s.peak.Load() }

// InsertRecord copies rec into a page with its key prefix (UnsafeExternalSorter.insertRecord).
// prefixIsNull marks a null key: with radix sort, null keys come first or last per
// PrefixComparator.NullsFirst. It may spill the sorter (its thresholds, or memory short) and
// may block acquiring memory (ctx cancels).
func (s *ExternalSorter) InsertRecord(ctx context.Context, rec []byte, prefix int64, prefixIsNull bool) error {
	if s.inline {
		panic("tungsten: InsertRecord into a Sorter's ExternalSorter of inline pairs")
	}
	if err := s.beforeInsert(ctx, len(rec)); err != nil {
		return err
	}
	required := int64(len(rec)) + uao
	if err := s.allocateMemoryForRecordIfNecessary(ctx, required); err != nil {
		return err
	}
	data := s.cur.Bytes()
	order.PutUint32(data[s.cursor:], uint32(len(rec)))
	copy(data[s.cursor+uao:], rec)
	addr := memory.EncodePageNumberAndOffset(s.cur.Number(), s.cursor)
	s.cursor += required
	s.inMem.insertRecord(addr, prefix, prefixIsNull)
	return nil
}

// beforeInsert checks a record of n bytes can be inserted, spills at the thresholds and reserves
// the spill writer's buffers for it.
func (s *ExternalSorter) beforeInsert(ctx context.Context, n int) error {
	if err := s.checkWritable(n); err != nil {
		return err
	}
	if s.inMem.numRecords() >= s.cfg.NumElementsForSpillThreshold {
		s.log.Info("spilling data because number of spilledRecords crossed the threshold",
			zap.Int("records", s.inMem.numRecords()), zap.Int("threshold", s.cfg.NumElementsForSpillThreshold))
		if _, err := s.spillSelf(); err != nil {
			return err
		}
	} else if s.Used() >= s.cfg.SizeInBytesForSpillThreshold {
		if _, err := s.spillSelf(); err != nil {
			return err
		}
	}
	// The spill writer's buffers for such a record come first: the acquisition spills the
	// sorter if memory is short, within the reservation held so far.
	if ok, err := s.reserveWriter(ctx, int64(n)); err != nil || !ok {
		return errors.Join(err, s.outOfMemoryForWriter(n))
	}
	return nil
}

func (s *ExternalSorter) outOfMemoryForWriter(n int) error {
	return fmt.Errorf("tungsten: %s: the spill writer's buffers for a record of %d bytes (%d) do not fit in memory: %w\n%s",
		s.name, n, writerCost(s.spill, int64(n)), memory.ErrOutOfMemory, s.tm.UsageReport())
}

func (s *ExternalSorter) checkWritable(n int) error {
	switch {
	case s.closed:
		return ErrClosed
	case s.read:
		return ErrIterated
	case n > MaxRecordSize:
		return fmt.Errorf("%w: %d bytes, the maximum is %d", ErrRecordTooLarge, n, MaxRecordSize)
	}
	return nil
}

// allocateMemoryForRecordIfNecessary makes room for a record of required bytes and its pointer:
// a new page when the current one is full (of its own when the record is larger than a page),
// growing the pointer array before and again after (the page allocation may have spilled).
func (s *ExternalSorter) allocateMemoryForRecordIfNecessary(ctx context.Context, required int64) error {
	if err := s.growPointerArrayIfNecessary(ctx); err != nil {
		return err
	}
	if s.cur == nil || s.cursor+required > s.cur.Size() {
		p, err := s.allocatePage(ctx, required)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.cur, s.cursor = p, 0
		s.pages = append(s.pages, p)
		s.mu.Unlock()
		return s.growPointerArrayIfNecessary(ctx)
	}
	return nil
}

func (s *ExternalSorter) growPointerArrayIfNecessary(ctx context.Context) error {
	in := s.inMem
	if in.hasSpaceForAnotherRecord() {
		return nil
	}
	if in.numRecords() > 0 {
		// The array doubles in place (memory.TaskManager.GrowPage), its memory acquired first:
		// when the acquisition spills the sorter, the spill frees the array and a small one is
		// all it needs. Spark copies into a new array, allocated before it knows whether the
		// acquisition spilled (a budget-sized garbage array per spill).
		size := in.array.size()
		ok, err := s.growArray(ctx, in.array, 2*size)
		switch {
		case errors.Is(err, memory.ErrPageTooLarge):
			if _, err := s.spillSelf(); err != nil {
				return err
			}
		case err != nil:
			return err
		case ok:
			in.setArray(in.array)
			return nil
		case in.numRecords() > 0:
			err := fmt.Errorf("tungsten: %s: unable to grow the pointer array from %d to %d bytes: %w\n%s",
				s.name, 8*size, 16*size, memory.ErrOutOfMemory, s.tm.UsageReport())
			s.log.Error("unable to grow the pointer array", zap.Error(err))
			return err
		}
	}
	a, err := s.firstArray(ctx) // a spill freed the array
	if err != nil {
		return err
	}
	in.expandPointerArray(a)
	return nil
}

// Spill is memory.Consumer's Spill. While the sorter is read it forces the unread in-memory
// records to disk (SpillableIterator.spill); otherwise it spills only when trigger is the sorter
// itself (a self-spill while acquiring, or an explicit call) or its spill I/O consumer, as in
// Spark.
func (s *ExternalSorter) Spill(_ int64, trigger memory.Consumer) (int64, error) {
	s.mu.Lock()
	it := s.reading
	s.mu.Unlock()
	if it != nil {
		return it.spill()
	}
	if trigger != memory.Consumer(s) && !s.isSpillIO(trigger) {
		return 0, nil
	}
	return s.spillSelf()
}

// spillSelf writes the in-memory records as one sorted run and frees the pages and the array.
func (s *ExternalSorter) spillSelf() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.inMem == nil || s.inMem.numRecords() == 0 {
		return 0, nil
	}
	s.log.Info("spilling sort data to disk", zap.String("consumer", s.name),
		zap.Int64("bytes", s.Used()), zap.Int("spills so far", len(s.spills)))
	first, second := s.inMem.sortedPairs()
	f, err := s.writeRun(first, second)
	if err != nil {
		return 0, err
	}
	s.spills = append(s.spills, f)
	pages := s.freePagesLocked(-1)
	array := s.inMem.memoryUsage()
	s.lastArray = s.inMem.array.size()
	s.inMem.freeMemory()
	s.metrics.Spills++
	s.metrics.MemoryBytesSpilled += pages
	s.metrics.DiskBytesSpilled += f.size
	return pages + array, nil
}

// writeRun writes pairs as a sorted run.
func (s *ExternalSorter) writeRun(runs ...[]pair) (spillFile, error) {
	w, err := newSpillWriter(s.scope, s.spill)
	if err != nil {
		return spillFile{}, err
	}
	for _, run := range runs {
		write := s.writePairs
		if s.inline {
			write = s.writeInlinePairs
		}
		if err := write(w, run); err != nil {
			return spillFile{}, errors.Join(err, w.Abort())
		}
	}
	return w.commit()
}

// writePairs writes the records of pairs in order, touching each group before writing it.
func (b *base) writePairs(w *spillWriter, ps []pair) error {
	for i, p := range ps {
		if i%touchGroup == 0 {
			b.touch(ps[i:])
		}
		if err := w.write(b.record(p.addr), p.prefix); err != nil {
			return err
		}
	}
	return nil
}

// freePagesLocked frees every data page but the one numbered keep, returning the bytes freed
// and keeping that page (or none) as the only allocated page.
func (s *ExternalSorter) freePagesLocked(keep int) int64 {
	var freed int64
	var kept []*memory.Page
	for _, p := range s.pages {
		if p.Number() == keep {
			kept = append(kept, p)
			continue
		}
		freed += p.Size()
		s.freePage(p)
	}
	s.pages, s.cur, s.cursor = kept, nil, 0
	return freed
}

// Close frees the pages and the array and deletes every spill file (cleanupResources). It is
// idempotent; iterators still open stop with ErrClosed.
func (s *ExternalSorter) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.updatePeak()
	if s.reading != nil {
		s.reading.lastPage = nil // freed below with the other pages
	}
	s.freePagesLocked(-1)
	if s.inMem != nil {
		s.inMem.freeMemory()
	}
	var errs []error
	if s.out != nil && s.out.src != nil {
		s.out.done = true
		errs = append(errs, s.out.src.close())
	}
	for _, f := range append(s.spills, s.temps...) {
		errs = append(errs, f.remove(s.scope))
	}
	s.spills, s.temps = nil, nil
	s.writer.close()
	return errors.Join(errs...)
}
