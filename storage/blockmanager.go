package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/memory"
)

// Config configures a BlockManager. Memory is required; the zero value of every other field
// means Spark's defaults.
type Config struct {
	// Memory is the process's memory manager; the BlockManager's MemoryStore becomes its Evictor.
	Memory *memory.UnifiedManager
	// Disk holds the block files. nil means a DiskBlockManager made from DiskConfig, which the
	// BlockManager closes (deleting its files) on Close.
	Disk *DiskBlockManager
	// DiskConfig configures the DiskBlockManager made when Disk is nil.
	DiskConfig DiskConfig
	// MemoryStore configures unrolling (spark.storage.unrollMemoryThreshold and friends), the
	// chunk size of serialized blocks and their compression (spark.rdd.compress, also used for
	// disk blocks). Its Logger defaults to Logger.
	MemoryStore MemoryStoreConfig
	// Logger receives the package's logs under the name "storage". Default zap.NewNop().
	Logger *zap.Logger
}

// Validate reports every invalid field, naming it and its value (errors.Join), those of
// DiskConfig and MemoryStore included.
func (c Config) Validate() error {
	var errs []error
	if c.Memory == nil {
		errs = append(errs, errors.New("storage: Config.Memory is nil"))
	}
	if c.Disk == nil {
		errs = append(errs, c.DiskConfig.Validate())
	}
	return errors.Join(append(errs, c.MemoryStore.Validate())...)
}

// BlockManager is Spark's BlockManager (core/.../storage/BlockManager.scala) for one executor:
// it stores blocks by storage Level in its MemoryStore and on disk, with a BlockInfoManager
// holding each block's read/write locks, and implements Spark's put and get paths (doPut,
// getLocalValues, getLocalBytes),
// GetOrElseUpdate (RDD caching), removal, and the eviction handler that drops evicted blocks to
// disk when their level allows.
//
// Differences from Spark, on purpose: there is no master, no remote fetch and no replication
// (this is a single process; a level's replication is recorded and ignored); typed values need a
// Codec[T] for every level that serializes (serialized memory levels, disk, off-heap), and
// blocks are kept in the record file format (checksummed batches) both on disk and as
// serialized memory bytes, so the bytes move between the two unchanged. OffHeap blocks are
// serialized bytes charged to the off-heap storage pool and kept in off-heap pages outside the
// Go heap (see MemoryStore.GetBytes).
//
// Locks: a put holds the block's write lock; readers hold a read lock until the iterator or
// BlockBytes they got is drained or closed; EndTask releases what a finished task still holds
// and reports it as a leak. All methods are safe for concurrent use.
type BlockManager struct {
	log     *zap.Logger
	mem     *memory.UnifiedManager
	info    *BlockInfoManager
	ms      *MemoryStore
	dm      *DiskBlockManager
	disk    *DiskStore
	ownDisk bool
	records RecordWriterConfig // disk blocks

	mu     sync.Mutex
	blocks map[BlockID]*blockMeta
}

// blockMeta is what the BlockManager knows of a block beyond its BlockInfo.
type blockMeta struct {
	level Level
	// writeValues encodes a deserialized memory entry's *ChunkedValues[T] in the record format;
	// set for deserialized levels, so eviction can drop the block to disk.
	writeValues func(values any, w io.Writer) error
}

// NewBlockManager returns a BlockManager with an empty MemoryStore wired as cfg.Memory's
// Evictor.
func NewBlockManager(cfg Config) (*BlockManager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	bm := &BlockManager{log: log.Named("storage"), mem: cfg.Memory, info: NewBlockInfoManager(), dm: cfg.Disk, blocks: map[BlockID]*blockMeta{}}
	if bm.dm == nil {
		dc := cfg.DiskConfig
		if dc.Logger == nil {
			dc.Logger = log
		}
		d, err := NewDiskBlockManager(dc)
		if err != nil {
			return nil, err
		}
		bm.dm, bm.ownDisk = d, true
	}
	msCfg := cfg.MemoryStore.withDefaults()
	if cfg.MemoryStore.Logger == nil {
		msCfg.Logger = log
	}
	ds, err := NewDiskStore(bm.dm, DiskStoreConfig{ChunkSize: msCfg.ChunkSize, Logger: log})
	if err == nil {
		bm.disk = ds
		bm.ms, err = NewMemoryStore(cfg.Memory, bm.info, bm, msCfg)
	}
	if err != nil {
		if bm.ownDisk {
			_ = bm.dm.Close()
		}
		return nil, err
	}
	bm.records = RecordWriterConfig{Compression: msCfg.recordConfig().Compression}
	return bm, nil
}

// MemoryStore returns the BlockManager's MemoryStore.
func (bm *BlockManager) MemoryStore() *MemoryStore { return bm.ms }

// BlockInfo returns the BlockManager's BlockInfoManager.
func (bm *BlockManager) BlockInfo() *BlockInfoManager { return bm.info }

// DiskStore returns the DiskStore holding the blocks on disk.
func (bm *BlockManager) DiskStore() *DiskStore { return bm.disk }

// DiskBlockManager returns the DiskBlockManager holding the block files.
func (bm *BlockManager) DiskBlockManager() *DiskBlockManager { return bm.dm }

// Close drops every block from memory and disk and forgets all locks (Spark's stop). It closes
// the DiskBlockManager if the BlockManager made it.
func (bm *BlockManager) Close() error {
	bm.ms.Clear()
	bm.info.Clear()
	bm.mu.Lock()
	var errs []error
	for id := range bm.blocks {
		if _, err := bm.disk.Remove(id); err != nil {
			errs = append(errs, err)
		}
	}
	clear(bm.blocks)
	bm.mu.Unlock()
	if bm.ownDisk {
		errs = append(errs, bm.dm.Close())
	}
	return errors.Join(errs...)
}

// EndTask releases what task still holds when it ends, as Spark's executor does after a task:
// its unroll memory in both modes and its block locks (releaseAllLocksForTask). Locks still held
// are a leak: they are logged and returned as a *LockLeakError (errors.Is ErrLockLeak).
func (bm *BlockManager) EndTask(task memory.TaskID) error {
	bm.ms.ReleaseAllUnrollMemoryForTask(task)
	leak := LockLeakReport(task, bm.info.ReleaseAllLocksForTask(task))
	if leak != nil {
		bm.log.Warn("Block locks were not released by the task", zap.Int64("task", int64(task)), zap.Error(leak))
	}
	return leak
}

// modeOf is Spark's StorageLevel.memoryMode.
func modeOf(level Level) memory.Mode {
	if level.UseOffHeap() {
		return memory.OffHeap
	}
	return memory.OnHeap
}

func (bm *BlockManager) meta(id BlockID) blockMeta {
	bm.mu.Lock()
	defer bm.mu.Unlock()
	if m := bm.blocks[id]; m != nil {
		return *m
	}
	return blockMeta{}
}

// writeDisk stores block id in the DiskStore by calling write with a buffered writer; on any
// error the partial file is gone. It returns the file's size.
func (bm *BlockManager) writeDisk(id BlockID, write func(w io.Writer) error) (int64, error) {
	size, err := bm.disk.Put(id, write)
	if err != nil {
		return 0, fmt.Errorf("storage: writing block %s to disk: %w", id, err)
	}
	return size, nil
}

// encodeRecords encodes every value of it into w in the record format and closes it.
func encodeRecords[T any](w io.Writer, cfg RecordWriterConfig, codec Codec[T], it Iterator[T]) error {
	defer it.Close()
	rw, err := NewRecordWriter(w, cfg)
	if err != nil {
		return err
	}
	tw := NewTypedWriter(rw, codec)
	for it.Next() {
		if err := tw.Write(it.Value()); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	return rw.Close()
}

// diskValues streams the records of block id's file; closing the iterator closes the file.
func diskValues[T any](bm *BlockManager, id BlockID, codec Codec[T]) (Iterator[T], error) {
	f, err := bm.disk.Open(id)
	if err != nil {
		return nil, fmt.Errorf("storage: opening the file of block %s: %w", id, err)
	}
	rr := NewRecordReader(f, f.Size())
	return recordIterator(rr, codec, func() error { return errors.Join(rr.Close(), f.Close()) }), nil
}

// recordIterator iterates over the values of a RecordReader; close is called by Close.
func recordIterator[T any](rr *RecordReader, codec Codec[T], close func() error) Iterator[T] {
	tr := NewTypedReader(rr, codec)
	return FuncIterator(func() (T, bool, error) {
		v, err := tr.Next()
		if err != nil {
			var zero T
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return zero, false, err
		}
		return v, true, nil
	}, close)
}

// DropFromMemory is Spark's BlockManager.dropFromMemory and implements EvictionHandler: when the
// block's level uses disk and the block is not on disk yet, its values or bytes are written to
// disk. It reports whether the block remains (on disk).
func (bm *BlockManager) DropFromMemory(id BlockID, values any, bytes *ChunkedBuffer) (bool, error) {
	level := bm.info.AssertLockedForWriting(NonTaskID, id).Level
	bm.log.Info("Dropping block from memory", zap.Stringer("block", id))
	if !level.UseDisk() {
		bm.forget(id)
		return false, nil
	}
	if bm.disk.Contains(id) {
		return true, nil
	}
	bm.log.Info("Writing block to disk", zap.Stringer("block", id))
	meta := bm.meta(id)
	var err error
	switch {
	case bytes != nil:
		_, err = bm.writeDisk(id, func(w io.Writer) error { _, err := bytes.WriteTo(w); return err })
	case values != nil && meta.writeValues != nil:
		_, err = bm.writeDisk(id, func(w io.Writer) error { return meta.writeValues(values, w) })
	default:
		err = fmt.Errorf("storage: block %s has no codec to write its values to disk", id)
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

func (bm *BlockManager) forget(id BlockID) {
	bm.mu.Lock()
	delete(bm.blocks, id)
	bm.mu.Unlock()
}

// removeLocked drops every copy of block id, whose write lock task holds, and its info.
func (bm *BlockManager) removeLocked(task memory.TaskID, id BlockID) error {
	bm.ms.Remove(id)
	_, err := bm.disk.Remove(id)
	bm.forget(id)
	bm.info.RemoveBlock(task, id)
	return err
}

// Remove is Spark's removeBlock: it waits for the write lock of block id (ctx bounds the wait),
// then drops the block from memory and disk. It reports whether the block existed.
func (bm *BlockManager) Remove(ctx context.Context, task memory.TaskID, id BlockID) (bool, error) {
	_, ok, err := bm.info.LockForWriting(ctx, task, id, true)
	if err != nil || !ok {
		return false, err
	}
	return true, bm.removeLocked(task, id)
}

// Contains reports whether block id exists (in memory or on disk).
func (bm *BlockManager) Contains(id BlockID) bool { return bm.info.Contains(id) }

// Status is what the BlockManager holds of a block (Spark's BlockStatus).
type Status struct {
	Level    Level
	InMemory bool
	MemSize  int64
	OnDisk   bool
	DiskSize int64
}

// Status returns block id's status, and false if it does not exist.
func (bm *BlockManager) Status(id BlockID) (Status, bool) {
	_, _, ok := bm.info.LockState(id)
	if !ok {
		return Status{}, false
	}
	s := Status{Level: bm.meta(id).level, InMemory: bm.ms.Contains(id), MemSize: bm.ms.Size(id)}
	s.DiskSize, s.OnDisk = bm.disk.Size(id)
	return s, true
}

// put is Spark's doPutIterator: lock the new block for writing, store it by level, and unlock
// (or keep a read lock). It returns the values back when the level could not store them
// (MEMORY_ONLY blocks that do not fit), and existed when the block was already there (then,
// with keepReadLock, holding a read lock on it).
func put[T any](ctx context.Context, bm *BlockManager, task memory.TaskID, id BlockID, values Iterator[T], level Level, codec Codec[T], keepReadLock bool) (back Iterator[T], existed bool, err error) {
	if !level.Valid() {
		return nil, false, errors.Join(fmt.Errorf("storage: putting block %s with invalid level %s", id, level), values.Close())
	}
	if codec == nil && (level.UseDisk() || !level.Deserialized()) {
		return nil, false, errors.Join(fmt.Errorf("storage: putting block %s with level %s needs a codec", id, level), values.Close())
	}
	info, created, err := bm.info.LockNewBlockForWriting(ctx, task, id, level, keepReadLock)
	if err != nil || !created {
		if err == nil {
			bm.log.Warn("Block already exists on this machine; not re-adding it", zap.Stringer("block", id))
		}
		return nil, err == nil, errors.Join(err, values.Close())
	}
	meta := &blockMeta{level: level}
	if codec != nil && level.Deserialized() {
		meta.writeValues = func(vs any, w io.Writer) error {
			return encodeRecords(w, bm.records, codec, vs.(*ChunkedValues[T]).Iterator())
		}
	}
	bm.mu.Lock()
	bm.blocks[id] = meta
	bm.mu.Unlock()

	back, size, err := putBody(ctx, bm, task, id, values, level, codec)
	if err != nil {
		if back != nil {
			err = errors.Join(err, back.Close())
		}
		return nil, false, errors.Join(fmt.Errorf("storage: putting block %s (%s): %w", id, level, err), bm.removeLocked(task, id))
	}
	if back != nil {
		bm.log.Warn("Putting block failed", zap.Stringer("block", id), zap.Stringer("level", level))
		bm.forget(id)
		bm.info.RemoveBlock(task, id)
		return back, false, nil
	}
	info.Size = size
	if keepReadLock {
		bm.info.DowngradeLock(task, id)
	} else {
		bm.info.Unlock(task, id)
	}
	return nil, false, nil
}

// putBody stores the values of a write-locked block by level: the body of doPutIterator.
func putBody[T any](ctx context.Context, bm *BlockManager, task memory.TaskID, id BlockID, values Iterator[T], level Level, codec Codec[T]) (back Iterator[T], size int64, err error) {
	mode := modeOf(level)
	switch {
	case level.UseMemory() && level.Deserialized():
		size, partial, err := PutIteratorAsValues(ctx, bm.ms, task, id, values, mode)
		if err != nil || partial == nil {
			return nil, size, err
		}
		if !level.UseDisk() {
			return partial, 0, nil
		}
		bm.log.Warn("Persisting block to disk instead", zap.Stringer("block", id))
		// The unrolled part, then the rest: the unroll memory goes as soon as the unrolled
		// values are written, and the partition is never whole in memory.
		size, err = bm.writeDisk(id, func(w io.Writer) error { return encodeRecords[T](w, bm.records, codec, partial) })
		return nil, size, err
	case level.UseMemory():
		size, partial, err := PutIteratorAsBytes(ctx, bm.ms, task, id, values, mode, codec)
		if err != nil {
			if partial != nil {
				err = errors.Join(err, partial.Discard())
			}
			return nil, 0, err
		}
		if partial == nil {
			return nil, size, nil
		}
		if !level.UseDisk() {
			return partial.ValuesIterator(), 0, nil
		}
		bm.log.Warn("Persisting block to disk instead", zap.Stringer("block", id))
		size, err = bm.writeDisk(id, partial.FinishWritingToStream)
		return nil, size, errors.Join(err, partial.Discard())
	default:
		size, err := bm.writeDisk(id, func(w io.Writer) error { return encodeRecords(w, bm.records, codec, values) })
		return nil, size, err
	}
}

// PutIterator is Spark's putIterator: it stores values as block id at level for task and
// reports whether it was stored. A MEMORY_ONLY (or MEMORY_ONLY_SER) block that does not fit is
// not stored (false): the values are dropped. A block that already exists is not replaced
// (false). codec encodes the values for every level that serializes (it may be nil for
// MEMORY_ONLY). PutIterator owns values and closes it.
func PutIterator[T any](ctx context.Context, bm *BlockManager, task memory.TaskID, id BlockID, values Iterator[T], level Level, codec Codec[T]) (bool, error) {
	back, existed, err := put(ctx, bm, task, id, values, level, codec, false)
	if err != nil || existed {
		return false, err
	}
	if back != nil {
		return false, back.Close()
	}
	return true, nil
}

// GetOrElseUpdate is Spark's getOrElseUpdate (RDD caching): if block id exists it returns its
// values (cached true); else it calls compute and stores its values at level. When they were
// stored (in memory, or on disk for levels that use disk) they are read back from the store
// (cached true); when the level could not store them (a MEMORY_ONLY block larger than the memory
// it can get) the values come back directly, not cached (cached false). The iterator holds a
// read lock on a cached block until it is drained or closed; always Close it.
func GetOrElseUpdate[T any](ctx context.Context, bm *BlockManager, task memory.TaskID, id BlockID, level Level, codec Codec[T], compute func() (Iterator[T], error)) (it Iterator[T], cached bool, err error) {
	if it, ok, err := GetLocalValues(ctx, bm, task, id, codec); err != nil || ok {
		return it, ok, err
	}
	values, err := compute()
	if err != nil {
		return nil, false, err
	}
	back, _, err := put(ctx, bm, task, id, values, level, codec, true)
	if err != nil {
		return nil, false, err
	}
	if back != nil {
		return back, false, nil
	}
	// Stored, or put by someone else meanwhile: we hold a read lock; read with another and drop ours.
	it, ok, err := GetLocalValues(ctx, bm, task, id, codec)
	bm.info.Unlock(task, id)
	if err == nil && !ok {
		err = fmt.Errorf("storage: get() failed for block %s even though we held a lock", id)
	}
	return it, ok, err
}

// releaseRead releases one of task's read locks on id, unless EndTask released them all
// already (an iterator closed after its task ended).
func (bm *BlockManager) releaseRead(task memory.TaskID, id BlockID) {
	if bm.info.ReadLocks(task, id) > 0 {
		bm.info.Unlock(task, id)
	}
}

// lockedIterator releases a block's read lock when its iteration ends or it is closed.
type lockedIterator[T any] struct {
	Iterator[T]
	release func()
}

func (l *lockedIterator[T]) Next() bool {
	if l.Iterator.Next() {
		return true
	}
	l.unlock()
	return false
}

func (l *lockedIterator[T]) unlock() {
	if l.release != nil {
		l.release()
		l.release = nil
	}
}

func (l *lockedIterator[T]) Close() error {
	err := l.Iterator.Close()
	l.unlock()
	return err
}

// GetLocalValues is Spark's getLocalValues: it takes a read lock on block id for task (waiting
// for a writer; ctx bounds the wait) and returns an iterator over its values, and false if the
// block does not exist. A block of a level using memory that was dropped to disk is cached back
// in memory on the way (values for deserialized levels, bytes for serialized ones) when it fits.
// The read lock is released when the iterator is drained or closed; always Close it.
func GetLocalValues[T any](ctx context.Context, bm *BlockManager, task memory.TaskID, id BlockID, codec Codec[T]) (Iterator[T], bool, error) {
	info, ok, err := bm.info.LockForReading(ctx, task, id, true)
	if err != nil || !ok {
		return nil, false, err
	}
	release := func() { bm.releaseRead(task, id) }
	it, err := localValues(ctx, bm, task, id, info.Level, codec)
	if err != nil {
		release()
		return nil, false, err
	}
	return &lockedIterator[T]{Iterator: it, release: release}, true, nil
}

func localValues[T any](ctx context.Context, bm *BlockManager, task memory.TaskID, id BlockID, level Level, codec Codec[T]) (Iterator[T], error) {
	if level.UseMemory() && bm.ms.Contains(id) {
		if bm.ms.Deserialized(id) {
			it, _, err := GetValues[T](bm.ms, id)
			return it, err
		}
		buf, _, err := bm.ms.GetBytes(id)
		if err != nil {
			return nil, err
		}
		if codec == nil {
			return nil, fmt.Errorf("storage: reading serialized block %s needs a codec", id)
		}
		rr := NewRecordReader(buf.Reader(), buf.Size())
		return recordIterator(rr, codec, rr.Close), nil
	}
	size, ok := bm.disk.Size(id)
	if !level.UseDisk() || !ok {
		return nil, fmt.Errorf("storage: block %s was not found even though it is read-locked", id)
	}
	if codec == nil {
		return nil, fmt.Errorf("storage: reading block %s from disk needs a codec", id)
	}
	switch {
	case level.UseMemory() && level.Deserialized():
		// maybeCacheDiskValuesInMemory
		disk, err := diskValues(bm, id, codec)
		if err != nil {
			return nil, err
		}
		stored, partial, err := PutIteratorAsValues(ctx, bm.ms, task, id, disk, modeOf(level))
		if err != nil {
			return nil, err
		}
		if partial != nil {
			return partial, nil
		}
		bm.log.Debug("Cached disk block values in memory", zap.Stringer("block", id), zap.String("bytes", humanize.IBytes(uint64(stored))))
		it, _, err := GetValues[T](bm.ms, id)
		return it, err
	case level.UseMemory():
		// maybeCacheDiskBytesInMemory
		cached, err := bm.cacheDiskBytes(id, size, modeOf(level))
		if err != nil {
			return nil, err
		}
		if cached {
			return localValues(ctx, bm, task, id, level, codec)
		}
	}
	return diskValues(bm, id, codec)
}

// cacheDiskBytes is Spark's maybeCacheDiskBytesInMemory: it puts the bytes of block id's file
// in memory if size bytes of storage memory can be had (the file is read only then).
func (bm *BlockManager) cacheDiskBytes(id BlockID, size int64, mode memory.Mode) (bool, error) {
	return bm.ms.PutBytes(id, size, mode, func() (*ChunkedBuffer, error) { return bm.disk.GetBytes(id) })
}

// BlockBytes is a block's bytes in the record file format (Spark's BlockData / ChunkedByteBuffer
// as returned by getLocalBytes). Read them with Read (or with NewRecordReader(b, b.Size())), and
// Close it to release the block's read lock and any file.
type BlockBytes struct {
	r       io.Reader
	size    int64
	release func() error
}

// Size is the number of bytes.
func (b *BlockBytes) Size() int64 { return b.size }

// Read implements io.Reader.
func (b *BlockBytes) Read(p []byte) (int, error) { return b.r.Read(p) }

// Close releases the block's read lock and closes any file; later calls return nil.
func (b *BlockBytes) Close() error {
	if b.release == nil {
		return nil
	}
	err := b.release()
	b.release = nil
	b.r = eofReader{}
	return err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// GetLocalBytes is Spark's getLocalBytes: the bytes of block id in the record format, and false
// if it does not exist. For a deserialized level, the file's bytes are returned if the block is
// on disk (it is not cached in memory), else its values are encoded with codec into a new
// buffer. For a serialized level, the memory bytes are returned, after caching the file's bytes
// in memory if the block was on disk only and they fit. The read lock is held until the
// BlockBytes is closed.
func GetLocalBytes[T any](ctx context.Context, bm *BlockManager, task memory.TaskID, id BlockID, codec Codec[T]) (*BlockBytes, bool, error) {
	info, ok, err := bm.info.LockForReading(ctx, task, id, true)
	if err != nil || !ok {
		return nil, false, err
	}
	unlock := func() error { bm.releaseRead(task, id); return nil }
	b, err := localBytes(bm, id, info.Level, codec)
	if err != nil {
		_ = unlock()
		return nil, false, err
	}
	closeFile := b.release
	b.release = func() error {
		var err error
		if closeFile != nil {
			err = closeFile()
		}
		return errors.Join(err, unlock())
	}
	return b, true, nil
}

func localBytes[T any](bm *BlockManager, id BlockID, level Level, codec Codec[T]) (*BlockBytes, error) {
	size, onDisk := bm.disk.Size(id)
	inMemory := bm.ms.Contains(id)
	if !level.Deserialized() && level.UseMemory() && !inMemory && onDisk {
		cached, err := bm.cacheDiskBytes(id, size, modeOf(level))
		if err != nil {
			return nil, err
		}
		inMemory = cached
	}
	switch {
	case level.Deserialized() && onDisk, !inMemory && onDisk:
		f, err := bm.disk.Open(id)
		if err != nil {
			return nil, fmt.Errorf("storage: opening the file of block %s: %w", id, err)
		}
		return &BlockBytes{r: f, size: f.Size(), release: f.Close}, nil
	case inMemory && level.Deserialized():
		if codec == nil {
			return nil, fmt.Errorf("storage: serializing block %s needs a codec", id)
		}
		it, _, err := GetValues[T](bm.ms, id)
		if err != nil {
			return nil, err
		}
		w := NewChunkedWriter(bm.ms.cfg.ChunkSize)
		if err := encodeRecords(w, bm.records, codec, it); err != nil {
			return nil, err
		}
		buf := w.Finish()
		return &BlockBytes{r: buf.Reader(), size: buf.Size(), release: func() error { buf.Dispose(); return nil }}, nil
	case inMemory:
		buf, _, err := bm.ms.GetBytes(id)
		if err != nil {
			return nil, err
		}
		return &BlockBytes{r: buf.Reader(), size: buf.Size()}, nil
	}
	return nil, fmt.Errorf("storage: block %s was not found even though it is read-locked", id)
}
