package shuffle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// SerializedWriter is Spark's UnsafeShuffleWriter
// (core/src/main/java/org/apache/spark/shuffle/sort/UnsafeShuffleWriter.java), the serialized
// shuffle: it encodes each record with the dependency's codecs as soon as it is read, copies the
// bytes into pages of the task's memory (off the Go heap when the task's Tungsten mode is
// memory.OffHeap) and sorts only 8-byte packed pointers by partition id, so a record costs its
// encoded size, a 4-byte length and its pointer (8 bytes, and as much scratch for the radix
// sort), and no Go object. When the task cannot grant another page or a larger pointer array,
// it spills the records, partition after partition, to a spill file; at the end the spill
// files' segments are concatenated partition by partition into the data file without decoding
// a record, since every segment is whole batches of storage's record format, each framed with
// its own checksum. Without a spill the sorted records go straight to the data file. The data
// and index files are the other writers' format, read by the same Reader.
//
// Memory: the pages and the pointer array are execution memory of the task, exactly their bytes
// (a spill frees them all). Under memory.Strict accounting the record writer's buffers and the
// merge buffer are acquired first, as the SortWriter does (see the package doc).
//
// NewWriter selects it as SortShuffleManager does (canUseSerializedShuffle): no map-side
// combine, at most MaxSerializedPartitions partitions, and a serializer that supports the
// relocation of serialized objects, which every storage.Codec does (see supportsRelocation);
// the BypassMergeWriter still comes first for few partitions.
type SerializedWriter[K comparable, V any] struct {
	tc        *TaskContext
	shuffleID int
	mapIndex  int
	part      Partitioner[K]
	codec     storage.PairCodec[K, V]
	spill     collection.SpillConfig
	output    storage.RecordWriterConfig
	// initialSize is the pointer array's initial entries (spark.shuffle.sort.initialBufferSize);
	// useRadix sorts pointers with the radix sort (spark.shuffle.sort.useRadixSort); fastMerge
	// concatenates spill segments (spark.shuffle.unsafe.fastMergeEnabled) instead of decoding
	// and re-encoding their records, which only tests turn off.
	initialSize int
	useRadix    bool
	fastMerge   bool
	written     bool
	metrics     WriteMetrics
}

// NewSerializedWriter returns a SerializedWriter for one map task of dep, which must not combine
// on the map side and must have at most MaxSerializedPartitions partitions.
func NewSerializedWriter[K comparable, V, C any](tc *TaskContext, dep *Dependency[K, V, C], mapIndex int) (*SerializedWriter[K, V], error) {
	if err := dep.Validate(); err != nil {
		return nil, err
	}
	if dep.MapSideCombine {
		return nil, fmt.Errorf("shuffle: SerializedWriter cannot combine on the map side (shuffle %d)", dep.ShuffleID)
	}
	if n := dep.Partitioner.NumPartitions(); n > MaxSerializedPartitions {
		return nil, fmt.Errorf("shuffle: SerializedWriter can only be used for shuffles with at most %d reduce partitions, shuffle %d has %d",
			MaxSerializedPartitions, dep.ShuffleID, n)
	}
	spill := tc.runner.cfg.Shuffle.Spill
	return &SerializedWriter[K, V]{
		tc:          tc,
		shuffleID:   dep.ShuffleID,
		mapIndex:    mapIndex,
		part:        dep.Partitioner,
		codec:       storage.NewPairCodec(dep.KeyCodec, dep.ValueCodec),
		spill:       spill,
		output:      storage.RecordWriterConfig{Compression: spill.Compression, BatchRecords: spill.BatchSize, BatchBytes: batchBytes(spill)},
		initialSize: defaultInitialSortBufferSize,
		useRadix:    true,
		fastMerge:   true,
		metrics:     WriteMetrics{Writer: "serialized"},
	}, nil
}

// supportsRelocation is Spark's Serializer.supportsRelocationOfSerializedObjects for a
// dependency's codecs: whether the bytes of serialized records may be reordered and still
// decode. A storage.Codec encodes every value on its own, self-delimited, with no state shared
// between values (unlike a Java serialization stream's back-references), so every dependency's
// codecs support it.
func supportsRelocation[K comparable, V, C any](dep *Dependency[K, V, C]) bool {
	return dep.KeyCodec != nil && dep.ValueCodec != nil
}

// canUseSerializedShuffle is SortShuffleManager.canUseSerializedShuffle.
func canUseSerializedShuffle[K comparable, V, C any](dep *Dependency[K, V, C]) bool {
	return supportsRelocation(dep) && !dep.MapSideCombine && dep.Partitioner.NumPartitions() <= MaxSerializedPartitions
}

// Metrics implements Writer.
func (w *SerializedWriter[K, V]) Metrics() WriteMetrics { return w.metrics }

// Write implements Writer. A second call returns an error (Spark's "Cannot call stop(true)
// without having called write()" guards the same single use).
func (w *SerializedWriter[K, V]) Write(ctx context.Context, records collection.Iterator[collection.Pair[K, V]]) (MapStatus, error) {
	if w.written {
		return MapStatus{}, joinErrors(errors.New("shuffle: SerializedWriter.Write called twice"), records.Close())
	}
	w.written = true
	return writeMapOutput(w.tc, func(out *mapOutput) (MapStatus, error) { return w.write(ctx, out, records) })
}

// write is Write with the map output's files created through out. Its deferred cleanups (the
// input, the sorter's memory and spill files) run before writeMapOutput decides whether the
// output stays.
func (w *SerializedWriter[K, V]) write(ctx context.Context, out *mapOutput, records collection.Iterator[collection.Pair[K, V]]) (status MapStatus, err error) {
	defer func() { err = joinErrors(err, records.Close()) }()
	// One record writer exists at a time (a spill file's or the data file's), plus the merge's
	// copy buffer, or a record reader when the merge decodes.
	mem := newBufferConsumer(w.tc.tm, fmt.Sprintf("shuffle %d serialized writer output (map %d)", w.shuffleID, w.mapIndex))
	output := w.output
	if mem != nil {
		output.BatchBytes = min(output.BatchBytes, strictOutputBatchBytes)
	}
	extra := int64(storage.DefaultBufferSize)
	if !w.fastMerge {
		extra = readerBytes(math.MaxInt64, output.BatchBytes, output.Compression)
	}
	output, held, ok, err := reserveWriters(ctx, mem, 1, output, extra)
	if err != nil {
		return MapStatus{}, fmt.Errorf("shuffle: acquiring the buffers of the serialized writer: %w", err)
	}
	if !ok {
		return MapStatus{}, mem.outOfMemory(held, "the serialized writer's record writer")
	}
	defer mem.release(held)

	n := w.part.NumPartitions()
	sorter := newShuffleExternalSorter(w.tc.tm, w.tc.disk,
		fmt.Sprintf("shuffle %d serialized sorter (map %d)", w.shuffleID, w.mapIndex), serializedSorterConfig{
			partitions:        n,
			initialSize:       w.initialSize,
			useRadix:          w.useRadix,
			forceSpillRecords: w.spill.ForceSpillElements,
			forceSpillBytes:   w.spill.ForceSpillBytes,
			records:           output,
			log:               w.tc.log,
		})
	defer func() {
		w.metrics.Spills += sorter.metrics.spills
		w.metrics.MemoryBytesSpilled += sorter.metrics.memoryBytesSpilled
		w.metrics.DiskBytesSpilled += sorter.metrics.diskBytesSpilled
		w.metrics.PeakExecutionBytes = max(w.metrics.PeakExecutionBytes, sorter.peak)
		err = joinErrors(err, sorter.cleanup())
	}()
	var buf []byte
	var count int64
	for records.Next() {
		if count%cancelCheckPeriod == 0 && ctx.Err() != nil {
			return MapStatus{}, ctx.Err()
		}
		kv := records.Value()
		p := w.part.Partition(kv.Key)
		if p < 0 || p >= n {
			return MapStatus{}, fmt.Errorf("shuffle: partitioner returned partition %d, not in [0, %d)", p, n)
		}
		buf = w.codec.Append(buf[:0], kv)
		if err := sorter.insertRecord(ctx, buf, p); err != nil {
			return MapStatus{}, err
		}
		count++
	}
	if err := records.Err(); err != nil {
		return MapStatus{}, err
	}
	buf = nil
	status = MapStatus{ShuffleID: w.shuffleID, MapID: int64(w.tc.id), MapIndex: w.mapIndex, Records: count,
		BatchBytes: output.BatchBytes}
	err = out.commit(&status, func(data io.Writer) (err error) {
		if !sorter.hasSpills() {
			status.Lengths, err = sorter.writeFinal(ctx, data)
			return err
		}
		spills, err := sorter.closeAndGetSpills()
		if err != nil {
			return err
		}
		status.Lengths, err = w.mergeSpills(ctx, spills, data, output)
		return err
	})
	if err != nil {
		return MapStatus{}, err
	}
	w.metrics.RecordsWritten, w.metrics.BytesWritten = count, status.Bytes()
	return status, nil
}

// mergeSpills writes the spill files' segments into the data file, partition by partition and,
// within a partition, spill by spill (mergeSpills), and returns the partitions' lengths. Fast, it
// copies the segments' bytes (mergeSpillsWithTransferTo: a segment is whole, self-framed
// batches, so segments concatenate); otherwise it decodes every record and writes it again with
// a record writer of cfg (the slow mergeSpillsWithFileStream).
func (w *SerializedWriter[K, V]) mergeSpills(ctx context.Context, spills []spillFile, data io.Writer, cfg storage.RecordWriterConfig) ([]int64, error) {
	n := w.part.NumPartitions()
	lengths := make([]int64, n)
	offsets := make([]int64, len(spills)) // where each spill's next segment starts
	var rw *storage.RecordWriter
	var buf []byte
	if w.fastMerge {
		buf = make([]byte, storage.DefaultBufferSize)
	} else {
		var err error
		if rw, err = storage.NewRecordWriter(data, cfg); err != nil {
			return nil, err
		}
		defer rw.Close()
	}
	for p := range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var start int64 // where the partition starts, after the previous one's last batch
		if rw != nil {
			start = rw.BytesWritten()
		}
		for i, sp := range spills {
			l := sp.lengths[p]
			if l == 0 {
				continue
			}
			seg := io.NewSectionReader(sp.f, offsets[i], l)
			offsets[i] += l
			if rw == nil {
				copied, err := io.CopyBuffer(data, seg, buf)
				if err == nil && copied != l {
					err = fmt.Errorf("%w: %d of %d bytes", io.ErrUnexpectedEOF, copied, l)
				}
				if err != nil {
					return nil, fmt.Errorf("shuffle: copying partition %d of spill file %s: %w", p, sp.id, err)
				}
				lengths[p] += l
				continue
			}
			if err := copyRecords(rw, storage.NewRecordReader(seg, l)); err != nil {
				return nil, fmt.Errorf("shuffle: merging partition %d of spill file %s: %w", p, sp.id, err)
			}
		}
		if rw != nil {
			if err := rw.EndBatch(); err != nil {
				return nil, fmt.Errorf("shuffle: writing partition %d: %w", p, err)
			}
			lengths[p] = rw.BytesWritten() - start
		}
	}
	if rw != nil {
		if err := rw.Close(); err != nil {
			return nil, err
		}
	}
	return lengths, nil
}

// copyRecords writes every record of r to w.
func copyRecords(w *storage.RecordWriter, r *storage.RecordReader) error {
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := w.Write(rec); err != nil {
			return err
		}
	}
}
