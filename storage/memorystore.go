package storage

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/memory"
)

// Spark's unroll defaults (spark.storage.unrollMemoryThreshold and the internal
// spark.storage.unrollMemoryCheckPeriod / unrollMemoryGrowthFactor).
const (
	DefaultUnrollMemoryThreshold    int64 = 1 << 20
	DefaultUnrollMemoryCheckPeriod        = 16
	DefaultUnrollMemoryGrowthFactor       = 1.5
	// maxRoundedArrayLength is Spark's ByteArrayMethods.MAX_ROUNDED_ARRAY_LENGTH, the cap of
	// the default chunk size.
	maxRoundedArrayLength = math.MaxInt32 - 15
)

// MemoryStoreConfig configures a MemoryStore. The zero value means Spark's defaults.
type MemoryStoreConfig struct {
	// UnrollMemoryThreshold is the unroll memory reserved before unrolling a block
	// (spark.storage.unrollMemoryThreshold). Default 1 MiB.
	UnrollMemoryThreshold int64
	// UnrollMemoryCheckPeriod is how many records are unrolled between size checks
	// (spark.storage.unrollMemoryCheckPeriod). Default 16.
	UnrollMemoryCheckPeriod int
	// UnrollMemoryGrowthFactor is the factor by which the unroll reservation grows past the
	// current size when it runs out (spark.storage.unrollMemoryGrowthFactor). Default 1.5;
	// otherwise it must be > 1.
	UnrollMemoryGrowthFactor float64
	// ChunkSize is the size of the chunks serialized blocks are written into. Default
	// min(UnrollMemoryThreshold, 2^31 - 16), as Spark's putIteratorAsBytes.
	ChunkSize int
	// Compress compresses serialized blocks (in memory and on disk) with S2
	// (spark.rdd.compress). Default false, like Spark.
	Compress bool
	// Logger receives the store's logs under the name "storage". Default zap.NewNop().
	Logger *zap.Logger
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c MemoryStoreConfig) Validate() error {
	var errs []error
	if c.UnrollMemoryThreshold < 0 {
		errs = append(errs, fmt.Errorf("storage: MemoryStoreConfig.UnrollMemoryThreshold %d is negative", c.UnrollMemoryThreshold))
	}
	if c.UnrollMemoryCheckPeriod < 0 {
		errs = append(errs, fmt.Errorf("storage: MemoryStoreConfig.UnrollMemoryCheckPeriod %d is negative", c.UnrollMemoryCheckPeriod))
	}
	if c.UnrollMemoryGrowthFactor != 0 && !(c.UnrollMemoryGrowthFactor > 1) || math.IsInf(c.UnrollMemoryGrowthFactor, 0) {
		errs = append(errs, fmt.Errorf("storage: MemoryStoreConfig.UnrollMemoryGrowthFactor %v must be > 1 and finite", c.UnrollMemoryGrowthFactor))
	}
	if c.ChunkSize < 0 || c.ChunkSize > maxRoundedArrayLength {
		errs = append(errs, fmt.Errorf("storage: MemoryStoreConfig.ChunkSize %d not in [0, %d]", c.ChunkSize, maxRoundedArrayLength))
	}
	return errors.Join(errs...)
}

func (c MemoryStoreConfig) withDefaults() MemoryStoreConfig {
	if c.UnrollMemoryThreshold == 0 {
		c.UnrollMemoryThreshold = DefaultUnrollMemoryThreshold
	}
	if c.UnrollMemoryCheckPeriod == 0 {
		c.UnrollMemoryCheckPeriod = DefaultUnrollMemoryCheckPeriod
	}
	if c.UnrollMemoryGrowthFactor == 0 {
		c.UnrollMemoryGrowthFactor = DefaultUnrollMemoryGrowthFactor
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = int(min(c.UnrollMemoryThreshold, maxRoundedArrayLength))
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// recordConfig is the record format of serialized blocks: uncompressed unless Compress, and
// batches no larger than a chunk so the bytes not yet in the block's chunks stay small.
func (c MemoryStoreConfig) recordConfig() RecordWriterConfig {
	rc := RecordWriterConfig{Compression: CompressionNone, BatchBytes: min(max(c.ChunkSize, 4<<10), defaultBatchBytes)}
	if c.Compress {
		rc.Compression = CompressionS2
	}
	return rc
}

// EvictionHandler is Spark's BlockEvictionHandler: what the MemoryStore calls for each block it
// evicts, before it removes the block from memory. The BlockManager implements it by writing the
// block to disk when its level uses disk and it is not there yet.
//
// DropFromMemory is called with the memory manager's lock held and the block's write lock held
// (taken by the eviction as NonTaskID). It must not call any memory.UnifiedManager method nor
// any MemoryStore method that acquires or releases memory (Put*, Remove, Clear, the unroll API);
// reading the store and writing to disk are fine. values is the block's *ChunkedValues[T] (as
// stored by PutIteratorAsValues) for a deserialized block, else nil; bytes is the block's buffer
// for a serialized block, else nil. It reports whether the block still exists elsewhere (on disk)
// after it leaves memory; if not, the eviction removes the block's info from the
// BlockInfoManager. An error stops the eviction: the block stays in memory.
type EvictionHandler interface {
	DropFromMemory(id BlockID, values any, bytes *ChunkedBuffer) (kept bool, err error)
}

// MemoryStore is Spark's MemoryStore (core/.../storage/memory/MemoryStore.scala): it keeps
// blocks in memory, either as deserialized values (a ChunkedValues) or as serialized bytes (a
// ChunkedBuffer), charges them to the storage pool of a memory.UnifiedManager, unrolls
// iterators of unknown size without ever holding more than the unroll memory granted (see
// PutIteratorAsValues and PutIteratorAsBytes), and evicts blocks in least-recently-used order
// when the memory manager needs space (it is the manager's memory.Evictor).
//
// Lock order: memory manager mutex → MemoryStore mutex → BlockInfoManager mutex. The memory
// manager calls EvictBlocksToFreeSpace with its mutex held; eviction takes the store's mutex to
// select blocks and only tries block write locks without blocking. The store never calls into
// the memory manager while holding its own mutex: Remove, for instance, takes the entry out under
// the store's mutex and releases its storage memory afterwards.
//
// All methods are safe for concurrent use. Blocks are normally put, read and removed by a
// BlockManager, which holds the block's locks; used directly, the caller must do the same (lock
// each block for writing in the BlockInfoManager around its put), or eviction skips the block.
type MemoryStore struct {
	m       *memory.UnifiedManager
	info    *BlockInfoManager
	handler EvictionHandler
	cfg     MemoryStoreConfig
	log     *zap.Logger

	mu      sync.Mutex
	entries map[BlockID]*memoryEntry
	lru     list.List // of *memoryEntry, least recently used first (Spark's access-ordered LinkedHashMap)
	unroll  [2]map[memory.TaskID]int64
	metrics MemoryStoreMetrics
}

// MemoryStoreMetrics counts what eviction did to a MemoryStore since it was created (Spark
// reports these per task as updatedBlockStatuses; a single counter is what a dashboard or a
// benchmark needs).
type MemoryStoreMetrics struct {
	// EvictedBlocks and EvictedBytes count the blocks, and their accounted sizes, that eviction
	// dropped from memory.
	EvictedBlocks, EvictedBytes int64
	// DroppedToDisk counts the evicted blocks that stayed available on disk (their level uses
	// disk, so the EvictionHandler wrote or kept them there).
	DroppedToDisk int64
}

// memoryEntry is Spark's MemoryEntry: DeserializedMemoryEntry when values is set,
// SerializedMemoryEntry when bytes is set.
type memoryEntry struct {
	id     BlockID
	size   int64
	mode   memory.Mode
	values storedValues
	bytes  *ChunkedBuffer
	elem   *list.Element
}

// storedValues is the *ChunkedValues[T] of a deserialized entry, with its element type hidden.
type storedValues interface {
	closeValues(log *zap.Logger, id BlockID)
}

// free drops what the entry holds: values implementing io.Closer are closed and the bytes
// released.
func (e *memoryEntry) free(log *zap.Logger) {
	if e.values != nil {
		e.values.closeValues(log, e.id)
		e.values = nil
	}
	if e.bytes != nil {
		e.bytes.Dispose()
		e.bytes = nil
	}
}

// NewMemoryStore returns an empty MemoryStore charging m, and wires it as m's Evictor
// (m.SetEvictor; Spark's MemoryManager.setMemoryStore). info holds the block locks eviction
// respects; handler is called for every evicted block (nil: evicted blocks are just dropped, as
// in Spark's MemoryStoreSuite).
func NewMemoryStore(m *memory.UnifiedManager, info *BlockInfoManager, handler EvictionHandler, cfg MemoryStoreConfig) (*MemoryStore, error) {
	if m == nil || info == nil {
		return nil, errors.New("storage: NewMemoryStore needs a memory manager and a BlockInfoManager")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ms := &MemoryStore{
		m: m, info: info, handler: handler, cfg: cfg,
		log:     cfg.Logger.Named("storage"),
		entries: map[BlockID]*memoryEntry{},
		unroll:  [2]map[memory.TaskID]int64{{}, {}},
	}
	max := ms.MaxMemory()
	if max < cfg.UnrollMemoryThreshold {
		ms.log.Warn("Max memory is less than the initial memory threshold needed to store a block in memory. Please configure with more memory.",
			zap.String("max", humanize.IBytes(uint64(max))),
			zap.String("threshold", humanize.IBytes(uint64(cfg.UnrollMemoryThreshold))))
	}
	ms.log.Info("MemoryStore started", zap.String("capacity", humanize.IBytes(uint64(max))))
	m.SetEvictor(ms)
	return ms, nil
}

// Metrics returns the store's eviction counters.
func (ms *MemoryStore) Metrics() MemoryStoreMetrics {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.metrics
}

// Config returns the store's configuration with defaults filled in.
func (ms *MemoryStore) Config() MemoryStoreConfig { return ms.cfg }

// MaxMemory is the most storage memory the store could use now, both modes (Spark's maxMemory).
func (ms *MemoryStore) MaxMemory() int64 { return ms.m.MaxOnHeapStorage() + ms.m.MaxOffHeapStorage() }

// MemoryUsed is the storage memory in use, unroll memory included (Spark's memoryUsed).
func (ms *MemoryStore) MemoryUsed() int64 { return ms.m.StorageUsed() }

// freeWithoutEviction is the storage memory of mode that can be had now without evicting a
// block: what neither storage nor execution uses.
func (ms *MemoryStore) freeWithoutEviction(mode memory.Mode) int64 {
	p := ms.m.Metrics().Pools[mode]
	return p.Max - p.ExecutionUsed - p.StorageUsed - p.Unmanaged
}

// BlocksMemoryUsed is the memory of the stored blocks (Spark's blocksMemoryUsed).
func (ms *MemoryStore) BlocksMemoryUsed() int64 {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var n int64
	for _, e := range ms.entries {
		n += e.size
	}
	return n
}

// Len returns the number of blocks in the store.
func (ms *MemoryStore) Len() int {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return len(ms.entries)
}

func (ms *MemoryStore) errPresent(id BlockID) error {
	return fmt.Errorf("%w: block %s is already present in the MemoryStore", ErrBlockExists, id)
}

// PutBytes is Spark's putBytes: it acquires size bytes of storage memory in mode for id (which
// may evict other blocks) and, only if they were granted, calls producer to make the block's
// bytes (so a block that cannot fit is never materialised: SPARK-6076) and stores them. It
// reports whether the block was stored. The producer's buffer must be exactly size bytes; a
// producer error, or a wrong size, releases the memory and is returned. id must not be in the
// store (ErrBlockExists).
func (ms *MemoryStore) PutBytes(id BlockID, size int64, mode memory.Mode, producer func() (*ChunkedBuffer, error)) (bool, error) {
	if size < 0 {
		panic(fmt.Sprintf("storage: PutBytes of block %s with negative size %d", id, size))
	}
	if ms.Contains(id) {
		return false, ms.errPresent(id)
	}
	ok, err := ms.m.AcquireStorage(id, size, mode)
	if err != nil || !ok {
		return false, err
	}
	buf, err := producer()
	if err == nil && buf.Size() != size {
		buf.Dispose()
		err = fmt.Errorf("storage: PutBytes of block %s: the producer made %d bytes, not the %d announced", id, buf.Size(), size)
	}
	if err != nil {
		ms.m.ReleaseStorage(size, mode)
		return false, err
	}
	if err := ms.insert(&memoryEntry{id: id, size: size, mode: mode, bytes: buf}); err != nil {
		buf.Dispose()
		ms.m.ReleaseStorage(size, mode)
		return false, err
	}
	ms.log.Info("Block stored as bytes in memory", zap.Stringer("block", id),
		zap.String("bytes", humanize.IBytes(uint64(size))), zap.String("free", humanize.IBytes(uint64(max(0, ms.MaxMemory()-ms.MemoryUsed())))))
	return true, nil
}

// insert adds e as the most recently used entry; the memory must already be accounted. The
// bytes of an off-heap entry are first copied into off-heap pages (copyOffHeap) and its on-heap
// buffer disposed, so a stored OFF_HEAP block costs the Go heap nothing; where off-heap pages are
// unsupported (memory.ErrOffHeapUnsupported) they stay on the heap.
func (ms *MemoryStore) insert(e *memoryEntry) error {
	if e.mode != memory.OffHeap || e.bytes == nil {
		return ms.insertEntry(e)
	}
	moved, err := e.bytes.copyOffHeap()
	if errors.Is(err, memory.ErrOffHeapUnsupported) {
		return ms.insertEntry(e)
	}
	if err != nil {
		return fmt.Errorf("storage: copying block %s off the heap: %w", e.id, err)
	}
	off := *e
	off.bytes = moved
	if err := ms.insertEntry(&off); err != nil {
		moved.Dispose()
		return err
	}
	e.bytes.Dispose()
	return nil
}

func (ms *MemoryStore) insertEntry(e *memoryEntry) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.entries[e.id] != nil {
		return ms.errPresent(e.id)
	}
	ms.entries[e.id] = e
	e.elem = ms.lru.PushBack(e)
	return nil
}

// get returns id's entry and marks it most recently used.
func (ms *MemoryStore) get(id BlockID) *memoryEntry {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	e := ms.entries[id]
	if e != nil {
		ms.lru.MoveToBack(e.elem)
	}
	return e
}

// GetBytes is Spark's getBytes: the buffer of serialized block id, and false if the store does
// not hold id. It is an error to ask for the bytes of a deserialized block. The buffer stays
// owned by the store: read it (ChunkedBuffer readers) while holding the block's read lock. An
// off-heap block's chunks are views of its off-heap pages, not copies: they are valid until the
// block is removed, evicted or cleared, which unmaps the pages (the read lock keeps them valid).
func (ms *MemoryStore) GetBytes(id BlockID) (*ChunkedBuffer, bool, error) {
	e := ms.get(id)
	switch {
	case e == nil:
		return nil, false, nil
	case e.bytes == nil:
		return nil, true, fmt.Errorf("storage: block %s is deserialized: should only call GetBytes on serialized blocks", id)
	}
	return e.bytes, true, nil
}

// GetValues is Spark's getValues: an iterator over the values of deserialized block id, and
// false if the store does not hold id. It is an error to ask for the values of a serialized block
// or with another element type than the block was stored with. The iterator shares the stored
// ChunkedValues; read it while holding the block's read lock.
func GetValues[T any](ms *MemoryStore, id BlockID) (Iterator[T], bool, error) {
	e := ms.get(id)
	switch {
	case e == nil:
		return nil, false, nil
	case e.values == nil:
		return nil, true, fmt.Errorf("storage: block %s is serialized: should only call GetValues on deserialized blocks", id)
	}
	vs, ok := e.values.(*ChunkedValues[T])
	if !ok {
		return nil, true, fmt.Errorf("storage: block %s holds %T, not %T", id, e.values, vs)
	}
	return vs.Iterator(), true, nil
}

// Size is Spark's getSize: the bytes block id is charged for, 0 if absent.
func (ms *MemoryStore) Size(id BlockID) int64 {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if e := ms.entries[id]; e != nil {
		return e.size
	}
	return 0
}

// Contains is Spark's contains.
func (ms *MemoryStore) Contains(id BlockID) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.entries[id] != nil
}

// Deserialized reports whether id is stored as values (and false if it is absent).
func (ms *MemoryStore) Deserialized(id BlockID) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	e := ms.entries[id]
	return e != nil && e.values != nil
}

// Mode returns the memory mode block id is stored in, and false if it is absent.
func (ms *MemoryStore) Mode(id BlockID) (memory.Mode, bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if e := ms.entries[id]; e != nil {
		return e.mode, true
	}
	return 0, false
}

// take removes id's entry, or returns nil if it is absent.
func (ms *MemoryStore) take(id BlockID) *memoryEntry {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	e := ms.entries[id]
	if e != nil {
		delete(ms.entries, id)
		ms.lru.Remove(e.elem)
		e.elem = nil
	}
	return e
}

// Remove is Spark's remove: it drops block id from memory (closing its values that implement
// io.Closer, logging close failures), releases its storage memory, and reports whether it was
// there.
func (ms *MemoryStore) Remove(id BlockID) bool {
	e := ms.take(id)
	if e == nil {
		return false
	}
	e.free(ms.log)
	ms.m.ReleaseStorage(e.size, e.mode)
	ms.log.Debug("Block of size removed from memory", zap.Stringer("block", id), zap.String("bytes", humanize.IBytes(uint64(e.size))))
	return true
}

// Clear is Spark's clear: it drops every block (closing values as Remove does), forgets all
// unroll reservations and releases all storage memory of the manager.
func (ms *MemoryStore) Clear() {
	ms.mu.Lock()
	all := make([]*memoryEntry, 0, len(ms.entries))
	for el := ms.lru.Front(); el != nil; el = el.Next() {
		all = append(all, el.Value.(*memoryEntry))
	}
	clear(ms.entries)
	ms.lru.Init()
	clear(ms.unroll[memory.OnHeap])
	clear(ms.unroll[memory.OffHeap])
	ms.mu.Unlock()
	for _, e := range all {
		e.free(ms.log)
	}
	ms.m.ReleaseAllStorage()
	ms.log.Info("MemoryStore cleared")
}

// EvictBlocksToFreeSpace is Spark's evictBlocksToFreeSpace (core/src/main/scala/org/apache/
// spark/storage/memory/MemoryStore.scala) and implements
// memory.Evictor; the memory manager calls it with its lock held. It walks the blocks in
// least-recently-used order and selects those of the same mode that are not of the RDD of block
// (the block being stored, nil when execution memory is reclaiming) and whose write lock can be
// taken without blocking (blocks being read or written are skipped), until their sizes reach
// space. If they cannot, nothing is evicted and 0 is returned. Otherwise each selected block is
// passed to the EvictionHandler (which writes it to disk if its level uses disk), removed from
// memory without releasing its memory (the caller does that with the returned total), and then
// unlocked if it still exists on disk or removed from the BlockInfoManager if not. A handler
// error stops the eviction: the blocks not yet dropped are unlocked and stay in memory
// (SPARK-22083), and the bytes of those already dropped are returned with the error.
func (ms *MemoryStore) EvictBlocksToFreeSpace(block memory.Block, space int64, mode memory.Mode) (int64, error) {
	if space <= 0 {
		return 0, nil
	}
	rdd, hasRDD := -1, false
	if id, ok := block.(BlockID); ok {
		rdd, hasRDD = id.RDDID()
	}
	var selected []*memoryEntry
	var total int64
	ms.mu.Lock()
	for el := ms.lru.Front(); el != nil && total < space; el = el.Next() {
		e := el.Value.(*memoryEntry)
		if e.mode != mode {
			continue
		}
		if r, ok := e.id.RDDID(); hasRDD && ok && r == rdd {
			continue
		}
		if _, locked, _ := ms.info.LockForWriting(context.Background(), NonTaskID, e.id, false); locked {
			selected = append(selected, e)
			total += e.size
		}
	}
	ms.mu.Unlock()

	if total < space {
		for _, e := range selected {
			ms.info.Unlock(NonTaskID, e.id)
		}
		if block != nil {
			ms.log.Info("Will not store block: not enough memory can be freed by evicting others",
				zap.String("block", block.String()), zap.String("bytes", humanize.IBytes(uint64(space))))
		}
		return 0, nil
	}
	ms.log.Info("Blocks selected for dropping", zap.Int("blocks", len(selected)),
		zap.String("bytes", humanize.IBytes(uint64(total))))
	var freed int64
	for i, e := range selected {
		dropped, err := ms.drop(e)
		if err != nil {
			for _, rest := range selected[i:] {
				ms.info.Unlock(NonTaskID, rest.id)
			}
			return freed, fmt.Errorf("storage: dropping block %s (%s) from memory: %w", e.id, humanize.IBytes(uint64(e.size)), err)
		}
		freed += dropped
	}
	ms.log.Info("Dropped blocks from memory", zap.Int("blocks", len(selected)),
		zap.String("bytes", humanize.IBytes(uint64(freed))))
	return freed, nil
}

// drop evicts one selected, write-locked entry (Spark's dropBlock) and returns the bytes it
// freed: 0 if the entry was removed meanwhile by someone else, who then releases its memory.
func (ms *MemoryStore) drop(e *memoryEntry) (int64, error) {
	kept := false
	if ms.handler != nil && ms.Contains(e.id) {
		var values any // nil, not a nil storedValues, for a serialized block
		if e.values != nil {
			values = e.values
		}
		var err error
		if kept, err = ms.handler.DropFromMemory(e.id, values, e.bytes); err != nil {
			return 0, err
		}
	}
	var freed int64
	ms.mu.Lock()
	if ms.entries[e.id] == e {
		delete(ms.entries, e.id)
		ms.lru.Remove(e.elem)
		e.elem = nil
		freed = e.size
		ms.metrics.EvictedBlocks++
		ms.metrics.EvictedBytes += freed
		if kept {
			ms.metrics.DroppedToDisk++
		}
	}
	ms.mu.Unlock()
	if freed > 0 {
		e.free(ms.log)
	}
	if kept {
		ms.info.Unlock(NonTaskID, e.id)
	} else {
		ms.info.RemoveBlock(NonTaskID, e.id)
	}
	return freed, nil
}

// ReserveUnrollMemoryForThisTask is Spark's reserveUnrollMemoryForThisTask: it acquires n bytes
// of unroll memory in mode for task to unroll block id (which may evict other blocks) and
// reports whether they were granted. The error comes from eviction.
func (ms *MemoryStore) ReserveUnrollMemoryForThisTask(task memory.TaskID, id BlockID, n int64, mode memory.Mode) (bool, error) {
	ok, err := ms.m.AcquireUnroll(id, n, mode)
	if !ok || err != nil {
		return false, err
	}
	ms.mu.Lock()
	ms.unroll[mode][task] += n
	ms.mu.Unlock()
	return true, nil
}

// ReleaseUnrollMemoryForThisTask is Spark's releaseUnrollMemoryForThisTask: it releases
// min(n, held) bytes of task's unroll memory in mode (n = math.MaxInt64 releases all of it).
func (ms *MemoryStore) ReleaseUnrollMemoryForThisTask(task memory.TaskID, mode memory.Mode, n int64) {
	if n < 0 {
		panic(fmt.Sprintf("storage: releasing negative unroll memory %d", n))
	}
	ms.mu.Lock()
	held := ms.unroll[mode][task]
	n = min(n, held)
	if held -= n; held == 0 {
		delete(ms.unroll[mode], task)
	} else {
		ms.unroll[mode][task] = held
	}
	ms.mu.Unlock()
	if n > 0 {
		ms.m.ReleaseUnroll(n, mode)
	}
}

// ReleaseAllUnrollMemoryForTask releases all of task's unroll memory in both modes, as Spark
// does when a task ends, and returns the bytes released.
func (ms *MemoryStore) ReleaseAllUnrollMemoryForTask(task memory.TaskID) int64 {
	var total int64
	for _, mode := range []memory.Mode{memory.OnHeap, memory.OffHeap} {
		n := ms.CurrentUnrollMemoryForTask(task, mode)
		ms.ReleaseUnrollMemoryForThisTask(task, mode, n)
		total += n
	}
	return total
}

// CurrentUnrollMemory is the unroll memory held by all tasks in both modes.
func (ms *MemoryStore) CurrentUnrollMemory() int64 {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var n int64
	for _, m := range ms.unroll {
		for _, v := range m {
			n += v
		}
	}
	return n
}

// CurrentUnrollMemoryForTask is the unroll memory task holds in mode
// (currentUnrollMemoryForThisTask for one mode).
func (ms *MemoryStore) CurrentUnrollMemoryForTask(task memory.TaskID, mode memory.Mode) int64 {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.unroll[mode][task]
}

// NumTasksUnrolling is the number of tasks holding unroll memory (numTasksUnrolling).
func (ms *MemoryStore) NumTasksUnrolling() int {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	tasks := map[memory.TaskID]bool{}
	for _, m := range ms.unroll {
		for t := range m {
			tasks[t] = true
		}
	}
	return len(tasks)
}

// logUnrollFailure is Spark's logUnrollFailure.
func (ms *MemoryStore) logUnrollFailure(id BlockID, computed int64) {
	blocks := ms.BlocksMemoryUsed()
	unroll := ms.CurrentUnrollMemory()
	ms.log.Warn("Not enough space to cache block in memory", zap.Stringer("block", id),
		zap.String("computedSoFar", humanize.IBytes(uint64(computed))))
	ms.log.Info("Memory use",
		zap.String("blocks", humanize.IBytes(uint64(blocks))),
		zap.String("unroll", humanize.IBytes(uint64(unroll))),
		zap.Int("tasksUnrolling", ms.NumTasksUnrolling()),
		zap.String("total", humanize.IBytes(uint64(blocks+unroll))),
		zap.String("limit", humanize.IBytes(uint64(ms.MaxMemory()))))
}
