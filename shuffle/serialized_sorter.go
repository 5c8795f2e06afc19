package shuffle

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/internal/radix"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// recordLengthBytes is the length header in front of every record in a page: 4 bytes in native
// order (Spark's UnsafeAlignedOffset.getUaoSize() on the platforms Go runs on).
const recordLengthBytes = 4

// defaultInitialSortBufferSize is the pointer array's initial number of entries
// (spark.shuffle.sort.initialBufferSize).
const defaultInitialSortBufferSize = 4096

// shuffleInMemorySorter is Spark's ShuffleInMemorySorter
// (core/src/main/java/org/apache/spark/shuffle/sort/ShuffleInMemorySorter.java): an array of
// packed record pointers, one per record, that sorts by partition id. The array is a page of the
// task (allocated by its shuffleExternalSorter, accounted to the byte); part of it is scratch
// for the sort, so only usable entries hold records: half with the radix sort, two thirds with
// the comparison sort.
type shuffleInMemorySorter struct {
	page     *memory.Page // nil after reset until the next insert allocates one
	array    []int64      // the page viewed as words
	pos      int          // records inserted
	usable   int          // entries that may hold records
	useRadix bool
}

// usableCapacity is how many of n entries may hold records (Spark: size / (radix ? 2 : 1.5)).
func (s *shuffleInMemorySorter) usableCapacity(n int) int {
	if s.useRadix {
		return n / 2
	}
	return n * 2 / 3
}

func (s *shuffleInMemorySorter) hasSpaceForAnotherRecord() bool { return s.pos < s.usable }

// setArray adopts a (larger) pointer array, copying the records inserted so far, and returns the
// previous array's page for the caller to free (expandPointerArray).
func (s *shuffleInMemorySorter) setArray(p *memory.Page, array []int64) *memory.Page {
	if len(array) < len(s.array) {
		panic(fmt.Sprintf("shuffle: pointer array of %d entries replaced by a smaller one of %d", len(s.array), len(array)))
	}
	copy(array, s.array[:s.pos])
	old := s.page
	s.page, s.array, s.usable = p, array, s.usableCapacity(len(array))
	return old
}

// insert adds a record's packed pointer; the array must have space.
func (s *shuffleInMemorySorter) insert(address int64, partition int) {
	if !s.hasSpaceForAnotherRecord() {
		panic("shuffle: there is no space for new record in the pointer array")
	}
	s.array[s.pos] = int64(packPointer(address, partition))
	s.pos++
}

// reset forgets the records and hands back the array's page for the caller to free. Records go
// first (Spark sets pos = 0 before reallocating), so a spill asked for meanwhile finds nothing
// to write; the next insert allocates a new array.
func (s *shuffleInMemorySorter) reset() *memory.Page {
	s.pos = 0
	old := s.page
	s.page, s.array, s.usable = nil, nil, 0
	return old
}

// sorted sorts the records by partition id, stably (insertion order within a partition), and
// returns them: with the radix sort on the partition's three bytes, the array's second half as
// scratch, else with a stable comparison sort (Spark's TimSort path).
func (s *shuffleInMemorySorter) sorted() []int64 {
	if s.useRadix && s.pos > 0 {
		start := radix.Sort(s.array, s.pos, packedPartitionFirstByte, packedPartitionLastByte, false, false)
		return s.array[start : start+s.pos]
	}
	recs := s.array[:s.pos]
	slices.SortStableFunc(recs, func(a, b int64) int {
		return cmp.Compare(packedPointer(a).partition(), packedPointer(b).partition())
	})
	return recs
}

// spillFile is one sorted run a shuffleExternalSorter wrote (Spark's SpillInfo): a record file
// holding the partitions' segments in partition order.
type spillFile struct {
	id      storage.BlockID
	f       storage.File
	lengths []int64 // bytes of each partition's segment
	size    int64
}

// serializedSorterConfig configures a shuffleExternalSorter.
type serializedSorterConfig struct {
	partitions  int
	initialSize int // pointer array entries
	useRadix    bool
	// forceSpillRecords and forceSpillBytes force a spill once this many records, or record
	// bytes, are held (numElementsForSpillThreshold, maxRecordsSizeForSpillThreshold); 0: none.
	forceSpillRecords int64
	forceSpillBytes   int64
	records           storage.RecordWriterConfig // of spill files and of the data file
	log               *zap.Logger
}

// shuffleExternalSorter is Spark's ShuffleExternalSorter
// (core/src/main/java/org/apache/spark/shuffle/sort/ShuffleExternalSorter.java): a memory
// consumer that copies serialized records into pages of its task and sorts their packed pointers
// by partition. When the task cannot grant it a page or a larger pointer array, it spills: it
// writes its records, partition after partition, into a spill file and frees its pages and
// array. The task holds exactly its pages and its pointer array, in the task's Tungsten mode
// (off the Go heap when that is memory.OffHeap).
//
// Like Spark's, it spills only when it asks for memory itself: a spill requested for another of
// the task's consumers releases nothing. Spill is therefore only ever called from inside its own
// insert, on the inserting goroutine, which is why its state needs no lock.
type shuffleExternalSorter struct {
	tm       *memory.TaskManager
	disk     *storage.Scope
	name     string
	mode     memory.Mode
	cfg      serializedSorterConfig
	pageSize int64

	used atomic.Int64 // pages + array; read by the TaskManager from any goroutine
	peak int64

	pages    []*memory.Page // data pages, in allocation order
	byNumber [][]byte       // page bytes by page number
	cur      []byte         // the page being filled
	cursor   int
	inMem    shuffleInMemorySorter
	recBytes int64 // bytes of the records held, headers included

	spills []spillFile

	metrics struct {
		spills, memoryBytesSpilled, diskBytesSpilled int64
	}
}

func newShuffleExternalSorter(tm *memory.TaskManager, disk *storage.Scope, name string, cfg serializedSorterConfig) *shuffleExternalSorter {
	if cfg.initialSize <= 0 {
		cfg.initialSize = defaultInitialSortBufferSize
	}
	if cfg.log == nil {
		cfg.log = zap.NewNop()
	}
	s := &shuffleExternalSorter{tm: tm, disk: disk, name: name, mode: tm.Manager().TungstenMode(), cfg: cfg,
		pageSize: min(maxPackedPageSize, tm.Manager().PageSize())}
	s.inMem.useRadix = cfg.useRadix
	return s
}

// String names the consumer in logs and usage reports.
func (s *shuffleExternalSorter) String() string { return s.name }

// Used implements memory.Consumer: the bytes of the pages and of the pointer array.
func (s *shuffleExternalSorter) Used() int64 { return s.used.Load() }

// Mode implements memory.Consumer: the task's Tungsten mode.
func (s *shuffleExternalSorter) Mode() memory.Mode { return s.mode }

func (s *shuffleExternalSorter) addUsed(n int64) {
	if u := s.used.Add(n); u > s.peak {
		s.peak = u
	}
}

// allocate allocates a page of up to size bytes and at least required, or fails with an error
// wrapping memory.ErrOutOfMemory (MemoryConsumer.allocatePage; allocateArray with required =
// size).
func (s *shuffleExternalSorter) allocate(ctx context.Context, size, required int64) (*memory.Page, error) {
	p, err := s.tm.AllocatePage(ctx, size, s)
	if err != nil {
		return nil, err
	}
	got := p.Size()
	if got < required {
		s.tm.FreePage(p, s)
		return nil, fmt.Errorf("%w: %s unable to acquire %s of memory, got %s\n%s", memory.ErrOutOfMemory, s.name,
			humanize.IBytes(uint64(required)), humanize.IBytes(uint64(got)), s.tm.UsageReport())
	}
	s.addUsed(got)
	return p, nil
}

// free frees a page this sorter allocated.
func (s *shuffleExternalSorter) free(p *memory.Page) int64 {
	if p == nil {
		return 0
	}
	size := p.Size()
	s.tm.FreePage(p, s)
	s.used.Add(-size)
	return size
}

// allocateArray allocates a pointer array of n entries.
func (s *shuffleExternalSorter) allocateArray(ctx context.Context, n int) (*memory.Page, []int64, error) {
	p, err := s.allocate(ctx, int64(n)*8, int64(n)*8)
	if err != nil {
		return nil, nil, err
	}
	// A page is at least 8-byte aligned (a Go allocation of this size, or a mapping).
	return p, unsafe.Slice((*int64)(unsafe.Pointer(unsafe.SliceData(p.Bytes()))), n), nil
}

// insertRecord copies one serialized record into the sorter's pages (insertRecord).
func (s *shuffleExternalSorter) insertRecord(ctx context.Context, rec []byte, partition int) error {
	if partition < 0 || partition >= s.cfg.partitions {
		panic(fmt.Sprintf("shuffle: partition %d outside [0, %d)", partition, s.cfg.partitions))
	}
	if len(rec) > storage.MaxRecordSize {
		return fmt.Errorf("shuffle: a serialized record of %d bytes exceeds the maximum record size of %d bytes", len(rec), storage.MaxRecordSize)
	}
	if s.inMem.pos > 0 && (s.cfg.forceSpillRecords > 0 && int64(s.inMem.pos) >= s.cfg.forceSpillRecords ||
		s.cfg.forceSpillBytes > 0 && s.recBytes >= s.cfg.forceSpillBytes) {
		s.cfg.log.Info("spilling data because the number or size of records crossed the threshold",
			zap.Int("records", s.inMem.pos), zap.String("bytes", humanize.IBytes(uint64(s.recBytes))))
		if _, err := s.spill(); err != nil {
			return err
		}
	}
	if err := s.growPointerArrayIfNecessary(ctx); err != nil {
		return err
	}
	required := len(rec) + recordLengthBytes
	if err := s.acquireNewPageIfNecessary(ctx, required); err != nil {
		return err
	}
	// A spill while acquiring the page emptied the pointer array; it is allocated again.
	if err := s.growPointerArrayIfNecessary(ctx); err != nil {
		return err
	}
	off := s.cursor
	binary.NativeEndian.PutUint32(s.cur[off:], uint32(len(rec)))
	copy(s.cur[off+recordLengthBytes:], rec)
	s.cursor += required
	s.recBytes += int64(required)
	s.inMem.insert(memory.EncodePageNumberAndOffset(s.pages[len(s.pages)-1].Number(), int64(off)), partition)
	return nil
}

// growPointerArrayIfNecessary makes room for one more pointer (growPointerArrayIfNecessary): it
// allocates an array twice as large while the old one is held (the task holds both until the
// copy is done). When that allocation made the sorter spill, the spill emptied it, and a new
// array of the initial size is allocated instead. A page too large to allocate makes it spill.
func (s *shuffleExternalSorter) growPointerArrayIfNecessary(ctx context.Context) error {
	if s.inMem.page == nil {
		p, array, err := s.allocateArray(ctx, s.cfg.initialSize)
		if err != nil {
			return err
		}
		s.inMem.setArray(p, array)
		return nil
	}
	if s.inMem.hasSpaceForAnotherRecord() {
		return nil
	}
	p, array, err := s.allocateArray(ctx, 2*len(s.inMem.array))
	switch {
	case errors.Is(err, memory.ErrPageTooLarge):
		_, err := s.spill()
		if err == nil && s.inMem.page == nil {
			return s.growPointerArrayIfNecessary(ctx)
		}
		return err
	case err != nil && s.inMem.page == nil && errors.Is(err, memory.ErrOutOfMemory):
		// A spill made room but the larger array could not be had: start again small.
		return s.growPointerArrayIfNecessary(ctx)
	case err != nil:
		if errors.Is(err, memory.ErrOutOfMemory) {
			s.cfg.log.Error("unable to grow the pointer array", zap.Int("entries", len(s.inMem.array)))
		}
		return err
	case s.inMem.page == nil:
		// The allocation spilled this sorter, which freed its array: a fresh one of the initial
		// size replaces it, as Spark's reset allocates.
		s.free(p)
		return s.growPointerArrayIfNecessary(ctx)
	}
	s.free(s.inMem.setArray(p, array))
	return nil
}

// acquireNewPageIfNecessary makes sure the current page has required bytes free, allocating a
// page of max(page size, required) bytes otherwise (acquireNewPageIfNecessary).
func (s *shuffleExternalSorter) acquireNewPageIfNecessary(ctx context.Context, required int) error {
	if s.cur != nil && s.cursor+required <= len(s.cur) && s.cursor < maxPackedPageSize {
		return nil
	}
	p, err := s.allocate(ctx, max(s.pageSize, int64(required)), int64(required))
	if err != nil {
		return err
	}
	s.pages = append(s.pages, p)
	if n := p.Number(); n >= len(s.byNumber) {
		s.byNumber = slices.Grow(s.byNumber, n+1-len(s.byNumber))[:n+1]
	}
	s.byNumber[p.Number()] = p.Bytes()
	s.cur, s.cursor = p.Bytes(), 0
	return nil
}

// Spill implements memory.Consumer: only a spill the sorter asked for itself writes anything
// (Spark's spill returns 0 for another trigger).
func (s *shuffleExternalSorter) Spill(_ int64, trigger memory.Consumer) (int64, error) {
	if trigger != memory.Consumer(s) {
		return 0, nil
	}
	return s.spill()
}

// spill writes the records held into a spill file and frees the pages and the pointer array. It
// returns the bytes released.
func (s *shuffleExternalSorter) spill() (int64, error) {
	if s.inMem.pos == 0 {
		return 0, nil
	}
	s.cfg.log.Info("spilling sort data to disk", zap.String("consumer", s.name),
		zap.String("bytes", humanize.IBytes(uint64(s.Used()))), zap.Int("spills so far", len(s.spills)))
	if err := s.writeSpillFile(); err != nil {
		return 0, err
	}
	pages := s.freePages()
	s.metrics.spills++
	s.metrics.memoryBytesSpilled += pages
	return pages + s.free(s.inMem.reset()), nil
}

// writeSpillFile writes the records held, sorted, into a new spill file (writeSortedFile with
// isFinal false), and keeps it.
func (s *shuffleExternalSorter) writeSpillFile() error {
	id, f, err := s.disk.CreateTempShuffle()
	if err != nil {
		return fmt.Errorf("shuffle: creating a spill file: %w", err)
	}
	lengths, size, err := s.writeSorted(context.Background(), f)
	if err != nil {
		_, rmErr := s.disk.Remove(id)
		return joinErrors(fmt.Errorf("shuffle: writing spill file %s: %w", id, err), f.Close(), rmErr)
	}
	s.spills = append(s.spills, spillFile{id: id, f: f, lengths: lengths, size: size})
	s.metrics.diskBytesSpilled += size
	return nil
}

// writeSorted writes the records held, sorted by partition, to w in storage's record format, a
// partition's segment being whole batches, and returns the segments' lengths and the bytes
// written.
func (s *shuffleExternalSorter) writeSorted(ctx context.Context, w io.Writer) ([]int64, int64, error) {
	rw, err := storage.NewRecordWriter(w, s.cfg.records)
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) ([]int64, int64, error) {
		_ = rw.Close() // releases its buffers; the error is err's
		return nil, 0, err
	}
	lengths := make([]int64, s.cfg.partitions)
	last, start := -1, int64(0)
	for i, word := range s.inMem.sorted() {
		if i%cancelCheckPeriod == 0 && ctx.Err() != nil {
			return fail(ctx.Err())
		}
		p := packedPointer(word)
		if part := p.partition(); part != last {
			if err := rw.EndBatch(); err != nil {
				return fail(err)
			}
			if last >= 0 {
				lengths[last] = rw.BytesWritten() - start
			}
			last, start = part, rw.BytesWritten()
		}
		page, off := s.byNumber[p.pageNumber()], p.offset()
		n := int64(binary.NativeEndian.Uint32(page[off:]))
		if err := rw.Write(page[off+recordLengthBytes : off+recordLengthBytes+n]); err != nil {
			return fail(err)
		}
	}
	if err := rw.Close(); err != nil {
		return nil, 0, err
	}
	if last >= 0 {
		lengths[last] = rw.BytesWritten() - start
	}
	return lengths, rw.BytesWritten(), nil
}

// freePages frees the data pages and returns their bytes (freeMemory).
func (s *shuffleExternalSorter) freePages() int64 {
	var freed int64
	for _, p := range s.pages {
		s.byNumber[p.Number()] = nil
		freed += s.free(p)
	}
	s.pages, s.cur, s.cursor, s.recBytes = s.pages[:0], nil, 0, 0
	return freed
}

// hasSpills reports whether the sorter spilled.
func (s *shuffleExternalSorter) hasSpills() bool { return len(s.spills) > 0 }

// writeFinal writes the records held, sorted, to w, when the sorter never spilled (the final
// writeSortedFile, whose file Spark moves into place as the data file), and frees its memory.
func (s *shuffleExternalSorter) writeFinal(ctx context.Context, w io.Writer) ([]int64, error) {
	lengths, _, err := s.writeSorted(ctx, w)
	s.freeMemory()
	return lengths, err
}

// closeAndGetSpills writes the records still held into a last spill file, which counts as
// spilled bytes but not as a spill (closeAndGetSpills), frees the memory, and returns the
// spill files in the order written.
func (s *shuffleExternalSorter) closeAndGetSpills() ([]spillFile, error) {
	if s.inMem.pos > 0 {
		if err := s.writeSpillFile(); err != nil {
			return nil, err
		}
	}
	s.freeMemory()
	return s.spills, nil
}

// freeMemory frees the pages and the pointer array.
func (s *shuffleExternalSorter) freeMemory() {
	s.freePages()
	s.free(s.inMem.reset())
}

// cleanup frees the memory and closes and deletes every spill file (cleanupResources), each one
// whatever the others do.
func (s *shuffleExternalSorter) cleanup() error {
	s.freeMemory()
	var errs []error
	for _, sp := range s.spills {
		closeErr := sp.f.Close()
		_, rmErr := s.disk.Remove(sp.id)
		if rmErr != nil {
			rmErr = fmt.Errorf("shuffle: unable to delete spill file %s: %w", sp.id, rmErr)
		}
		errs = append(errs, closeErr, rmErr)
	}
	s.spills = nil
	return errors.Join(errs...)
}
