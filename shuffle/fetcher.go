package shuffle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// fetcher is Spark's ShuffleBlockFetcherIterator for local blocks: a goroutine reads the segments
// of a reduce partition from the map outputs' data files ahead of the consumer, holding at most
// maxInFlight bytes of them at once (a semaphore weighted in bytes); segments larger than
// maxToMem are not loaded but handed over to be streamed from their file. Spark reads local
// blocks lazily and bounds only remote fetches; here every map output is a file, so all reads go
// through the bound.
//
// Under Strict accounting (mem != nil) the loaded bytes are also execution memory of the task,
// acquired through mem before a segment is read: a segment larger than maxInFlight, or one the
// task cannot grant while no other segment is loaded, is streamed instead, and while others are
// loaded the prefetcher waits for the consumer to release one before it asks again. The record
// reader's buffers (decode bytes) are acquired when the fetcher starts and held until it closes.
// When another consumer of the task is short of memory (the reduce side's aggregation about to
// spill), the fetch consumer's Spill gives back the loaded segments the consumer has not reached
// yet, which are then streamed from their files (shedLoaded).
type fetcher struct {
	disk          *storage.DiskBlockManager
	numPartitions int
	maxToMem      int64
	maxInFlight   int64
	mem           *bufferConsumer // nil: unaccounted (SparkAllowances)
	decode        int64           // bytes of mem held for the record reader's buffers
	sem           *semaphore.Weighted
	results       chan fetchResult // buffered for every block, so the prefetcher never blocks on it
	released      chan struct{}    // signalled when the consumer releases a loaded segment
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	closed        bool

	// shedMu guards shed: loaded segments a spill request took back from results before the
	// consumer reached them, now to be streamed; next hands them out first.
	shedMu sync.Mutex
	shed   []fetchResult

	inFlight atomic.Int64 // bytes of loaded segments not yet released by the consumer
	peak     atomic.Int64 // the most inFlight has been

	// onWait, if set (by tests, before start), is called when the prefetcher has to wait for
	// room under maxInFlight or for memory, with the bytes in flight and the size of the segment
	// waiting.
	onWait func(inFlight, size int64)
}

// fetchLimits are a fetcher's bounds and, under Strict accounting, what it acquires memory
// through.
type fetchLimits struct {
	// maxInFlight bounds the bytes of loaded segments held at once; maxToMem: larger segments
	// are streamed.
	maxInFlight, maxToMem int64
	// mem is the reduce task's fetch consumer, nil under SparkAllowances; decode is what it
	// acquires for the record reader's buffers.
	mem    *bufferConsumer
	decode int64
}

// fetchResult is one segment: loaded into data, or (data == nil) to be streamed from the data
// file at [offset, offset+block.Size). weight is what it holds of the semaphore.
type fetchResult struct {
	block  BlockSize
	data   []byte
	offset int64
	weight int64
	err    error
}

// newFetcher starts fetching blocks, which must all belong to one shuffle with numPartitions
// reduce partitions. The prefetching goroutine stops when ctx ends or close is called. Under
// Strict accounting it first acquires the record reader's buffers, and returns an error wrapping
// memory.ErrOutOfMemory when the task cannot grant them.
func newFetcher(ctx context.Context, disk *storage.DiskBlockManager, blocks []BlockSize, numPartitions int, lim fetchLimits) (*fetcher, error) {
	f := newStoppedFetcher(disk, blocks, numPartitions, lim)
	if err := f.start(ctx, blocks, lim.decode); err != nil {
		return nil, err
	}
	return f, nil
}

func newStoppedFetcher(disk *storage.DiskBlockManager, blocks []BlockSize, numPartitions int, lim fetchLimits) *fetcher {
	return &fetcher{
		disk:          disk,
		numPartitions: numPartitions,
		maxToMem:      lim.maxToMem,
		maxInFlight:   lim.maxInFlight,
		mem:           lim.mem,
		sem:           semaphore.NewWeighted(lim.maxInFlight),
		results:       make(chan fetchResult, len(blocks)),
		released:      make(chan struct{}, 1),
	}
}

// start acquires decode bytes for the record reader's buffers and starts the prefetcher.
func (f *fetcher) start(ctx context.Context, blocks []BlockSize, decode int64) error {
	if f.mem != nil {
		shed := f.shedLoaded
		f.mem.shed.Store(&shed)
		if err := f.mem.reserve(ctx, decode, "the buffers of a shuffle record reader"); err != nil {
			return err
		}
		f.decode = decode
	}
	ctx, f.cancel = context.WithCancel(ctx)
	f.wg.Add(1)
	go f.prefetch(ctx, blocks)
	return nil
}

func (f *fetcher) prefetch(ctx context.Context, blocks []BlockSize) {
	defer f.wg.Done()
	defer close(f.results)
	for _, b := range blocks {
		r, err := f.fetch(ctx, b)
		if err != nil {
			if ctx.Err() == nil {
				f.results <- fetchResult{block: b, err: err}
			}
			return
		}
		f.results <- r
	}
}

// fetch locates one segment through its map output's index file and loads it unless it is to be
// streamed, waiting for room under maxInFlight (and for its memory) first.
func (f *fetcher) fetch(ctx context.Context, b BlockSize) (fetchResult, error) {
	shuffleID, mapID, reduceID, _ := b.Block.Shuffle()
	data := storage.ShuffleDataBlockID(shuffleID, mapID, 0)
	offsets, err := readIndexFile(f.disk, storage.ShuffleIndexBlockID(shuffleID, mapID, 0), data, f.numPartitions)
	if err != nil {
		return fetchResult{}, fmt.Errorf("shuffle: fetching %s: %w", b.Block, err)
	}
	start, end := offsets[reduceID], offsets[reduceID+1]
	if end-start != b.Size {
		return fetchResult{}, fmt.Errorf("shuffle: block %s holds %d bytes in its index but %d in its map status: %w",
			b.Block, end-start, b.Size, storage.ErrCorrupt)
	}
	r := fetchResult{block: b, offset: start}
	if b.Size > f.maxToMem || f.mem != nil && b.Size > f.maxInFlight {
		// Streamed by the consumer (Spark's fetch-to-disk of blocks above
		// maxRemoteBlockSizeFetchToMem); under Strict accounting also a segment above the
		// in-flight bound, which is memory the task acquires.
		return r, nil
	}
	// Without accounting, a segment larger than maxInFlight takes the whole bound, so it is
	// fetched alone, as in Spark.
	weight := min(b.Size, f.maxInFlight)
	loaded, err := f.acquire(ctx, weight, b.Size)
	if err != nil || !loaded {
		return r, err
	}
	r.weight = weight
	f.hold(b.Size)
	r.data, err = readSection(f.disk, data, start, b.Size)
	if err != nil {
		f.release(r)
		return fetchResult{}, fmt.Errorf("shuffle: fetching %s: %w", b.Block, err)
	}
	return r, nil
}

// acquire takes weight of the semaphore and, under Strict accounting, size bytes of execution
// memory for a segment to be loaded. It reports false, holding nothing, when the segment is to be
// streamed instead: the task cannot grant size bytes while no other segment is loaded. While
// others are, it waits for the consumer to release one and asks again.
func (f *fetcher) acquire(ctx context.Context, weight, size int64) (bool, error) {
	for {
		if !f.sem.TryAcquire(weight) {
			f.waiting(size)
			if err := f.sem.Acquire(ctx, weight); err != nil {
				return false, err
			}
		}
		alone := f.inFlight.Load() == 0 // read before asking: a release after it is signalled
		ok, err := f.mem.tryAcquire(ctx, size)
		if ok || err != nil {
			if err != nil {
				f.sem.Release(weight)
			}
			return ok, err
		}
		f.sem.Release(weight)
		if alone {
			return false, nil
		}
		f.waiting(size)
		select {
		case <-f.released:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// waiting reports to the test hook that the prefetcher waits for room for a segment of size
// bytes.
func (f *fetcher) waiting(size int64) {
	if f.onWait != nil {
		f.onWait(f.inFlight.Load(), size)
	}
}

func (f *fetcher) hold(n int64) {
	v := f.inFlight.Add(n)
	for {
		p := f.peak.Load()
		if v <= p || f.peak.CompareAndSwap(p, v) {
			return
		}
	}
}

// release gives back what a loaded segment holds of the bound; the consumer calls it when it
// has read the segment.
func (f *fetcher) release(r fetchResult) {
	if r.weight > 0 {
		f.inFlight.Add(-r.block.Size)
		f.mem.release(r.block.Size)
		f.sem.Release(r.weight)
		select {
		case f.released <- struct{}{}:
		default: // a signal is pending already
		}
	}
}

// shedLoaded is the fetch consumer's Spill: when another consumer of the task (the reduce
// side's aggregation or sort) is short of memory, the loaded segments waiting for the consumer
// give their memory back and are streamed from their files instead. It returns the bytes
// released.
func (f *fetcher) shedLoaded() int64 {
	f.shedMu.Lock()
	defer f.shedMu.Unlock()
	var freed int64
	for {
		select {
		case r, ok := <-f.results:
			if !ok {
				return freed
			}
			if r.data != nil {
				freed += r.block.Size
				f.release(r)
				r.data, r.weight = nil, 0
			}
			f.shed = append(f.shed, r)
		default:
			return freed
		}
	}
}

// takeShed returns a segment shedLoaded took back, if any.
func (f *fetcher) takeShed() (fetchResult, bool) {
	f.shedMu.Lock()
	defer f.shedMu.Unlock()
	if len(f.shed) == 0 {
		return fetchResult{}, false
	}
	r := f.shed[0]
	f.shed = f.shed[1:]
	return r, true
}

// next returns the next segment, or false after the last one. An error of the prefetcher (a
// missing or corrupt map output) or ctx's end is returned as err.
func (f *fetcher) next(ctx context.Context) (fetchResult, bool, error) {
	if r, ok := f.takeShed(); ok {
		return r, r.err == nil, r.err
	}
	select {
	case r, ok := <-f.results:
		if !ok {
			// shedLoaded may have taken the last segments while this waited.
			if r, ok := f.takeShed(); ok {
				return r, r.err == nil, r.err
			}
			return fetchResult{}, false, ctx.Err() // the prefetcher stops early only when cancelled
		}
		return r, r.err == nil, r.err
	case <-ctx.Done():
		return fetchResult{}, false, ctx.Err()
	}
}

// close stops the prefetcher, waits for it to end, drops every segment not consumed and releases
// the fetcher's memory. It returns only when the goroutine has exited.
func (f *fetcher) close() {
	if f.closed {
		return
	}
	f.closed = true
	f.cancel()
	f.wg.Wait()
	for r := range f.results {
		f.release(r)
	}
	f.shedMu.Lock()
	f.shed = nil // streamed: they hold nothing
	f.shedMu.Unlock()
	f.mem.release(f.decode)
	f.decode = 0
}

// readSection reads n bytes at off of a block's file.
func readSection(disk *storage.DiskBlockManager, id storage.BlockID, off, n int64) ([]byte, error) {
	file, err := disk.Open(id)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	buf := make([]byte, n)
	if _, err := file.ReadAt(buf, off); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%s ends before offset %d: %w", id, off+n, storage.ErrCorrupt)
		}
		return nil, err
	}
	return buf, nil
}

// recordIterator reads the records of a reduce partition, one fetched segment after the other
// (Spark's BlockStoreShuffleReader deserialization of the fetcher's streams, with the
// InterruptibleIterator's cancellation check). It counts records and bytes read.
type recordIterator[K, T any] struct {
	ctx   context.Context
	f     *fetcher
	codec storage.Codec[storage.Pair[K, T]]

	cur    fetchResult
	file   storage.File // of a streamed segment
	rr     *storage.RecordReader
	tr     *storage.TypedReader[storage.Pair[K, T]]
	val    collection.Pair[K, T]
	err    error
	done   bool
	closed bool

	n fetchCounters
}

// fetchCounters are a record iterator's counts.
type fetchCounters struct {
	records, bytes, blocks, streamed, streamedBytes, peakInFlight int64
}

// counters returns the counts so far.
func (it *recordIterator[K, T]) counters() fetchCounters {
	c := it.n
	c.peakInFlight = it.f.peak.Load()
	return c
}

func newRecordIterator[K, T any](ctx context.Context, f *fetcher, keys storage.Codec[K], values storage.Codec[T]) *recordIterator[K, T] {
	return &recordIterator[K, T]{ctx: ctx, f: f, codec: storage.NewPairCodec(keys, values)}
}

// cancelCheckPeriod is how many records are read between checks of the context.
const cancelCheckPeriod = 1024

func (it *recordIterator[K, T]) Next() bool {
	if it.done {
		return false
	}
	for {
		if it.tr != nil {
			if it.n.records%cancelCheckPeriod == 0 && it.ctx.Err() != nil {
				return it.fail(it.ctx.Err())
			}
			p, err := it.tr.Next()
			if err == nil {
				it.n.records++
				it.val = p
				return true
			}
			if !errors.Is(err, io.EOF) {
				return it.fail(fmt.Errorf("shuffle: reading %s: %w", it.cur.block.Block, err))
			}
			if err := it.endSegment(); err != nil {
				return it.fail(err)
			}
		}
		r, ok, err := it.f.next(it.ctx)
		if err != nil {
			return it.fail(err)
		}
		if !ok {
			it.done = true
			it.release()
			return false
		}
		if err := it.startSegment(r); err != nil {
			return it.fail(err)
		}
	}
}

func (it *recordIterator[K, T]) startSegment(r fetchResult) error {
	it.cur = r
	var src io.Reader
	if r.data != nil {
		src = bytes.NewReader(r.data)
		it.n.blocks++
	} else {
		shuffleID, mapID, _, _ := r.block.Block.Shuffle()
		id := storage.ShuffleDataBlockID(shuffleID, mapID, 0)
		f, err := it.f.disk.Open(id)
		if err != nil {
			return fmt.Errorf("shuffle: streaming %s: %w", r.block.Block, err)
		}
		it.file = f
		src = io.NewSectionReader(f, r.offset, r.block.Size)
		it.n.streamed++
		it.n.streamedBytes += r.block.Size
	}
	it.n.bytes += r.block.Size
	it.rr = storage.NewRecordReader(src, r.block.Size)
	it.tr = storage.NewTypedReader(it.rr, it.codec)
	return nil
}

// endSegment releases the current segment: its buffer and share of the bound, or its file.
func (it *recordIterator[K, T]) endSegment() error {
	var err error
	if it.rr != nil {
		err = it.rr.Close()
		it.rr, it.tr = nil, nil
	}
	if it.file != nil {
		err = errors.Join(err, it.file.Close())
		it.file = nil
	}
	it.f.release(it.cur)
	it.cur = fetchResult{}
	return err
}

func (it *recordIterator[K, T]) fail(err error) bool {
	it.err = err
	it.done = true
	it.release()
	return false
}

func (it *recordIterator[K, T]) release() {
	if it.closed {
		return
	}
	it.closed = true
	if err := it.endSegment(); err != nil && it.err == nil {
		it.err = err
	}
	it.f.close()
	it.val = collection.Pair[K, T]{}
}

func (it *recordIterator[K, T]) Value() collection.Pair[K, T] { return it.val }
func (it *recordIterator[K, T]) Err() error                   { return it.err }

// Close stops the prefetcher and waits for it; it returns when no goroutine is left.
func (it *recordIterator[K, T]) Close() error {
	it.done = true
	it.release()
	return nil
}
