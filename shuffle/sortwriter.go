package shuffle

import (
	"context"
	"fmt"
	"io"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// NewWriter selects and returns the writer for one map task of dep, as Spark's
// SortShuffleManager.getWriter does: the BypassMergeWriter when there is no
// map-side combine and the partitions are at most Config.BypassMergeThreshold, else the
// SerializedWriter when canUseSerializedShuffle (no map-side combine, at most
// MaxSerializedPartitions partitions), else the SortWriter.
func NewWriter[K comparable, V, C any](tc *TaskContext, dep *Dependency[K, V, C], mapIndex int) (Writer[K, V], error) {
	if err := dep.Validate(); err != nil {
		return nil, err
	}
	cfg := tc.runner.cfg.Shuffle
	if !dep.MapSideCombine && cfg.BypassMergeThreshold != NoBypassMerge &&
		dep.Partitioner.NumPartitions() <= cfg.BypassMergeThreshold {
		return NewBypassMergeWriter(tc, dep, mapIndex)
	}
	if canUseSerializedShuffle(dep) {
		return NewSerializedWriter(tc, dep, mapIndex)
	}
	return NewSortWriter(tc, dep, mapIndex)
}

// mapSorter is what a SortWriter needs of a collection.ExternalSorter, whichever its combiner
// type.
type mapSorter[K comparable, V any] interface {
	InsertAll(ctx context.Context, records collection.Iterator[collection.Pair[K, V]]) error
	WritePartitionedFile(ctx context.Context, w io.Writer) ([]int64, error)
	Metrics() collection.SpillMetrics
	Close() error
}

// SortWriter is Spark's SortShuffleWriter: it inserts a map task's records into a
// collection.ExternalSorter, which spills them when memory is short, and writes the sorted
// partitions into the task's data file in one pass, followed by the index. With map-side
// combine the sorter aggregates values into combiners with the dependency's Aggregator and
// orders keys by its KeyOrdering; without, it gets neither (as in Spark's SortShuffleWriter:
// aggregation and sorting are then left to the reduce side) and only groups the records by partition.
type SortWriter[K comparable, V any] struct {
	tc        *TaskContext
	shuffleID int
	mapIndex  int
	newSorter func(collection.SpillConfig) (mapSorter[K, V], error)
	spill     collection.SpillConfig
	output    storage.RecordWriterConfig // what the sorter writes the data file with
	metrics   WriteMetrics
}

// strictOutputBatchBytes caps the batches of a SortWriter's data file under Strict accounting.
const strictOutputBatchBytes = 64 << 10

// NewSortWriter returns a SortWriter for one map task of dep.
func NewSortWriter[K comparable, V, C any](tc *TaskContext, dep *Dependency[K, V, C], mapIndex int) (*SortWriter[K, V], error) {
	if err := dep.Validate(); err != nil {
		return nil, err
	}
	spill := tc.runner.cfg.Shuffle.Spill
	w := &SortWriter[K, V]{tc: tc, shuffleID: dep.ShuffleID, mapIndex: mapIndex, metrics: WriteMetrics{Writer: "sort"}, spill: spill,
		output: storage.RecordWriterConfig{Compression: spill.Compression, BatchRecords: spill.BatchSize, BatchBytes: batchBytes(spill)}}
	if dep.MapSideCombine {
		w.newSorter = func(spill collection.SpillConfig) (mapSorter[K, V], error) {
			return collection.NewExternalSorter(tc.tm, tc.disk, dep.KeyCodec, dep.CombinerCodec,
				collection.SorterConfig[K, V, C]{
					Aggregator:  dep.Aggregator,
					Partitioner: dep.Partitioner,
					Ordering:    dep.KeyOrdering,
					Spill:       spill,
				})
		}
	} else {
		w.newSorter = func(spill collection.SpillConfig) (mapSorter[K, V], error) {
			return collection.NewExternalSorter(tc.tm, tc.disk, dep.KeyCodec, dep.ValueCodec,
				collection.SorterConfig[K, V, V]{
					Partitioner: dep.Partitioner,
					Spill:       spill,
				})
		}
	}
	return w, nil
}

// Metrics implements Writer.
func (w *SortWriter[K, V]) Metrics() WriteMetrics { return w.metrics }

// Write implements Writer.
func (w *SortWriter[K, V]) Write(ctx context.Context, records collection.Iterator[collection.Pair[K, V]]) (MapStatus, error) {
	return writeMapOutput(w.tc, func(out *mapOutput) (MapStatus, error) { return w.write(ctx, out, records) })
}

// write is Write with the map output's files created through out. Its deferred cleanups (the
// input, the sorter and its spill files) run before writeMapOutput decides whether the output
// stays.
func (w *SortWriter[K, V]) write(ctx context.Context, out *mapOutput, records collection.Iterator[collection.Pair[K, V]]) (status MapStatus, err error) {
	counted := &countingIterator[collection.Pair[K, V]]{Iterator: records}
	defer func() { err = joinErrors(err, records.Close()) }()
	// Under Strict accounting the data file's record writer's buffers are acquired first, so the
	// sorter fits in the rest instead of being made to spill when the file is written. Its batches
	// (and so the sorter's spill batches) are then at most strictOutputBatchBytes, which bounds
	// the reduce side's reader buffers too, and smaller when memory is short.
	mem := newBufferConsumer(w.tc.tm, fmt.Sprintf("shuffle %d sort writer output (map %d)", w.shuffleID, w.mapIndex))
	output := w.output
	if mem != nil {
		output.BatchBytes = min(output.BatchBytes, strictOutputBatchBytes)
	}
	output, held, ok, err := reserveWriters(ctx, mem, 1, output, 0)
	if err != nil {
		return MapStatus{}, fmt.Errorf("shuffle: acquiring the buffers of the data file's writer: %w", err)
	}
	if !ok {
		return MapStatus{}, mem.outOfMemory(held, "the data file's record writer")
	}
	defer mem.release(held)
	spill := w.spill
	spill.BatchBytes = output.BatchBytes
	sorter, err := w.newSorter(spill)
	if err != nil {
		return MapStatus{}, err
	}
	defer func() {
		w.metrics.addSpills(sorter.Metrics())
		err = joinErrors(err, sorter.Close())
	}()
	if err := sorter.InsertAll(ctx, counted); err != nil {
		return MapStatus{}, err
	}
	status = MapStatus{ShuffleID: w.shuffleID, MapID: int64(w.tc.id), MapIndex: w.mapIndex, Records: counted.n,
		BatchBytes: output.BatchBytes}
	err = out.commit(&status, func(data io.Writer) error {
		lengths, err := sorter.WritePartitionedFile(ctx, data)
		status.Lengths = lengths
		return err
	})
	if err != nil {
		return MapStatus{}, err
	}
	w.metrics.RecordsWritten, w.metrics.BytesWritten = counted.n, status.Bytes()
	return status, nil
}

// sortByKey sorts a reduce partition's records by dep.KeyOrdering in an ExternalSorter (Spark's
// BlockStoreShuffleReader with a keyOrdering) and returns the sorted iterator.
func sortByKey[K comparable, V, C any](ctx context.Context, tc *TaskContext, r *Reader[K, C], dep *Dependency[K, V, C]) (collection.Iterator[collection.Pair[K, C]], error) {
	sorter, err := collection.NewExternalSorter(tc.tm, tc.disk, dep.KeyCodec, dep.outputCodec(),
		collection.SorterConfig[K, C, C]{
			Ordering: dep.KeyOrdering,
			Spill:    tc.runner.cfg.Shuffle.Spill,
		})
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, sorter.Close)
	r.spills = append(r.spills, sorter.Metrics)
	if err := sorter.InsertAll(ctx, r.it); err != nil {
		return nil, err
	}
	it, err := sorter.Iterator(ctx)
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, it.Close)
	return it, nil
}
