package shuffle

import (
	"context"
	"errors"
	"fmt"

	"github.com/spillway/spillway/collection"
)

// ReadMetrics is a value snapshot of a reduce task's shuffle read metrics, with Spark's names
// (ShuffleReadMetrics and the task's spill and peak memory metrics).
type ReadMetrics struct {
	// RecordsRead and BytesRead count the records and bytes read from map outputs.
	RecordsRead int64
	BytesRead   int64
	// BlocksFetched counts the segments loaded into memory (Spark's localBlocksFetched).
	BlocksFetched int64
	// BlocksStreamed and BytesStreamed count the segments larger than MaxBlockSizeFetchToMem,
	// read straight from their files (Spark's remoteBytesReadToDisk).
	BlocksStreamed int64
	BytesStreamed  int64
	// PeakBytesInFlight is the most bytes of loaded segments held at once; at most
	// MaxBytesInFlight unless a single segment is larger (which Strict accounting streams).
	PeakBytesInFlight int64
	// Spills counts the spills of the aggregation map and the sorter (their own and forced).
	Spills int64
	// MemoryBytesSpilled and DiskBytesSpilled are the task's spill metrics.
	MemoryBytesSpilled int64
	DiskBytesSpilled   int64
	// PeakExecutionBytes sums the peak memory of the aggregation map and the sorter (Spark's
	// peakExecutionMemory, incremented by each).
	PeakExecutionBytes int64
}

// Reader is Spark's BlockStoreShuffleReader for one reduce partition: an Iterator over the
// partition's records, fetched from every map output of the shuffle (see Config for the bounds),
// combined by key when the dependency has an Aggregator (an ExternalAppendOnlyMap over values, or
// over combiners after map-side combine: Spark's combineValuesByKey / combineCombinersByKey),
// then sorted by key when it has a KeyOrdering (an ExternalSorter), else passed through as read.
// Every structure holding memory is a spillable consumer of the task.
//
// Close it when done (also after an early stop or an error): it stops the fetching goroutine
// and waits for it, releases memory and deletes spill files. A Reader not closed is closed when
// its task ends. Like every Iterator it is not safe for concurrent use.
type Reader[K comparable, C any] struct {
	it      collection.Iterator[collection.Pair[K, C]]
	closers []func() error // in order
	fetched func() fetchCounters
	spills  []func() collection.SpillMetrics
	closed  bool
}

// NewReader returns the reader of reduce partition reduceID of dep's shuffle, whose map stage
// must have completed. With an Aggregator or a KeyOrdering it reads the whole partition before it
// returns (as Spark's read() does), which may take long and spill: ctx cancels it, and also
// stops the iteration afterwards.
func NewReader[K comparable, V, C any](ctx context.Context, tc *TaskContext, dep *Dependency[K, V, C], reduceID int) (_ *Reader[K, C], err error) {
	if err := dep.Validate(); err != nil {
		return nil, err
	}
	reg := tc.runner.registry
	numPartitions, err := reg.NumPartitions(dep.ShuffleID)
	if err != nil {
		return nil, err
	}
	blocks, err := reg.MapSizesByReduce(dep.ShuffleID, reduceID)
	if err != nil {
		return nil, err
	}
	f, err := newFetcher(ctx, tc.disk.Manager(), blocks, numPartitions, fetchLimitsOf(tc, dep.ShuffleID, reduceID, blocks))
	if err != nil {
		return nil, fmt.Errorf("shuffle: reading reduce partition %d of shuffle %d: %w", reduceID, dep.ShuffleID, err)
	}
	r := &Reader[K, C]{}
	tc.AddCompletionListener(r.Close)
	defer func() {
		if err != nil {
			err = joinErrors(err, r.Close())
		}
	}()
	agg := dep.Aggregator
	switch {
	case agg != nil && dep.MapSideCombine:
		recs := newRecordIterator(ctx, f, dep.KeyCodec, dep.CombinerCodec)
		r.track(recs)
		combine := Aggregator[K, C, C]{
			CreateCombiner: func(c C) C { return c },
			MergeValue:     agg.MergeCombiners,
			MergeCombiners: agg.MergeCombiners,
		}
		r.it, err = aggregate(ctx, tc, r, combine, dep, recs)
	case agg != nil:
		recs := newRecordIterator(ctx, f, dep.KeyCodec, dep.ValueCodec)
		r.track(recs)
		r.it, err = aggregate(ctx, tc, r, *agg, dep, recs)
	default:
		recs := newRecordIterator(ctx, f, dep.KeyCodec, dep.outputCodec())
		r.track(recs)
		r.it = recs
	}
	if err != nil {
		return nil, err
	}
	if dep.KeyOrdering != nil {
		if r.it, err = sortByKey(ctx, tc, r, dep); err != nil {
			return nil, fmt.Errorf("shuffle: sorting reduce partition %d of shuffle %d: %w", reduceID, dep.ShuffleID, err)
		}
	}
	return r, nil
}

// fetchLimitsOf returns the bounds of a reduce task's fetcher. Under Strict accounting the
// fetched bytes are the task's execution memory, acquired through a "shuffle fetch" consumer:
// the in-flight bound is then also at most fetchShare, and the consumer holds the buffers of the
// record reader, sized for the segment that needs the most (by its size and its map output's
// batches).
func fetchLimitsOf(tc *TaskContext, shuffleID, reduceID int, blocks []BlockSize) fetchLimits {
	cfg := tc.runner.cfg.Shuffle
	lim := fetchLimits{maxInFlight: cfg.MaxBytesInFlight, maxToMem: cfg.MaxBlockSizeFetchToMem}
	lim.mem = newBufferConsumer(tc.tm, fmt.Sprintf("shuffle %d fetch (reduce %d)", shuffleID, reduceID))
	if lim.mem == nil {
		return lim
	}
	lim.maxInFlight = min(lim.maxInFlight, fetchShare(tc))
	for _, b := range blocks {
		batch := b.BatchBytes
		if batch == 0 {
			batch = batchBytes(cfg.Spill)
		}
		lim.decode = max(lim.decode, readerBytes(b.Size, batch, cfg.Spill.Compression))
	}
	return lim
}

// fetchShare is the most a reduce task's loaded segments may hold under Strict accounting: a
// quarter of a task's fair share of the unified memory (the memory over the runner's cores), so
// that prefetching leaves most of the task's memory to its aggregation or sort instead of making
// them spill. The unified memory is read as what storage could hold plus what execution holds.
func fetchShare(tc *TaskContext) int64 {
	mm := tc.tm.Manager()
	return (mm.MaxOnHeapStorage() + mm.ExecutionUsed()) / int64(tc.runner.cfg.Cores) / 4
}

// track makes the record iterator's counters the reader's fetch metrics and closes it with the
// reader.
func (r *Reader[K, C]) track(recs interface {
	counters() fetchCounters
	Close() error
}) {
	r.fetched = recs.counters
	r.closers = append(r.closers, recs.Close)
}

// aggregate combines records by key in an ExternalAppendOnlyMap and returns its iterator.
func aggregate[K comparable, T, C, V any](ctx context.Context, tc *TaskContext, r *Reader[K, C], agg Aggregator[K, T, C],
	dep *Dependency[K, V, C], records collection.Iterator[collection.Pair[K, T]]) (collection.Iterator[collection.Pair[K, C]], error) {
	m, err := collection.NewExternalAppendOnlyMap(tc.tm, tc.disk, agg, dep.KeyCodec, dep.CombinerCodec,
		collection.ExternalMapConfig[K]{SpillConfig: tc.runner.cfg.Shuffle.Spill, Name: fmt.Sprintf("shuffle %d reader", dep.ShuffleID)})
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, m.Close)
	r.spills = append(r.spills, m.Metrics)
	if err := m.InsertAll(ctx, records); err != nil {
		return nil, fmt.Errorf("shuffle: aggregating shuffle %d: %w", dep.ShuffleID, err)
	}
	it, err := m.Iterator(ctx)
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, it.Close)
	return it, nil
}

// Next implements collection.Iterator.
func (r *Reader[K, C]) Next() bool {
	if r.closed {
		return false
	}
	return r.it.Next()
}

// Value implements collection.Iterator.
func (r *Reader[K, C]) Value() collection.Pair[K, C] { return r.it.Value() }

// Err implements collection.Iterator.
func (r *Reader[K, C]) Err() error { return r.it.Err() }

// Close implements collection.Iterator: it stops the fetching goroutine and returns after it
// exited, releases the reader's memory and deletes its spill files. Later calls return nil.
func (r *Reader[K, C]) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	for i := len(r.closers) - 1; i >= 0; i-- {
		errs = append(errs, r.closers[i]())
	}
	r.closers = nil
	return errors.Join(errs...)
}

// Metrics returns the reader's metrics so far.
func (r *Reader[K, C]) Metrics() ReadMetrics {
	var m ReadMetrics
	if r.fetched != nil {
		c := r.fetched()
		m.RecordsRead, m.BytesRead, m.BlocksFetched, m.BlocksStreamed, m.BytesStreamed, m.PeakBytesInFlight =
			c.records, c.bytes, c.blocks, c.streamed, c.streamedBytes, c.peakInFlight
	}
	for _, s := range r.spills {
		sm := s()
		m.Spills += sm.Spills + sm.ForcedSpills
		m.MemoryBytesSpilled += sm.MemoryBytesSpilled
		m.DiskBytesSpilled += sm.DiskBytesSpilled
		m.PeakExecutionBytes += sm.PeakMemoryUsedBytes
	}
	return m
}
