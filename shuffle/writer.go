package shuffle

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// Writer is Spark's ShuffleWriter: it writes the records of one map task into the task's map
// output, one data file holding every reduce partition's segment in partition order plus an
// index file of their offsets. A Writer is used once.
type Writer[K comparable, V any] interface {
	// Write consumes and closes records, writes the map output and returns its status, which the
	// caller registers (Spark's write + stop(success = true)). On error nothing written is left
	// behind.
	Write(ctx context.Context, records collection.Iterator[collection.Pair[K, V]]) (MapStatus, error)
	// Metrics returns the writer's task metrics so far.
	Metrics() WriteMetrics
}

// WriteMetrics is a value snapshot of a map task's shuffle write metrics, with Spark's names
// (ShuffleWriteMetrics and the task's spill metrics).
type WriteMetrics struct {
	// Writer names the writer used: "sort", "serialized" or "bypass-merge".
	Writer string
	// RecordsWritten counts the records given to the writer: with map-side combine, the records
	// before combining (Spark counts the combiners written; the sorter does not report them).
	// BytesWritten is the data file's length.
	RecordsWritten int64
	BytesWritten   int64
	// Spills counts the sorter's spills (its own and forced ones).
	Spills int64
	// MemoryBytesSpilled and DiskBytesSpilled are the task's spill metrics.
	MemoryBytesSpilled int64
	DiskBytesSpilled   int64
	// PeakExecutionBytes is the peak memory of the sorter's in-memory collection.
	PeakExecutionBytes int64
}

// BypassMergeWriter is Spark's BypassMergeSortShuffleWriter: it writes each record straight to a
// temporary file of its reduce partition (one record writer per partition, opened when the
// partition gets its first record), then concatenates the files into the data file and writes
// the index. It sorts nothing. Its buffers are about 110 KiB per partition (a 32 KiB write
// buffer, a batch of at most 32 KiB and its compressed copy).
//
// Under memory.SparkAllowances those buffers are not accounted, as in Spark (its
// DiskBlockObjectWriters with spark.shuffle.file.buffer each). Under Strict accounting the writer
// acquires them for every partition before it writes, through a consumer of the map task (which
// may make the task's other consumers spill). When the task cannot grant them, it halves the
// partitions' batches down to 4 KiB; when even that cannot be had, it writes the map output with
// a SortWriter instead, whose memory is spillable (Spark has no such fallback), and logs it.
type BypassMergeWriter[K comparable, V any] struct {
	tc        *TaskContext
	shuffleID int
	mapIndex  int
	part      Partitioner[K]
	codec     storage.PairCodec[K, V]
	records   storage.RecordWriterConfig
	metrics   WriteMetrics
	fallback  func() (*SortWriter[K, V], error)
}

// NewBypassMergeWriter returns a BypassMergeWriter for one map task of dep, which must not
// combine on the map side.
func NewBypassMergeWriter[K comparable, V, C any](tc *TaskContext, dep *Dependency[K, V, C], mapIndex int) (*BypassMergeWriter[K, V], error) {
	if err := dep.Validate(); err != nil {
		return nil, err
	}
	if dep.MapSideCombine {
		return nil, fmt.Errorf("shuffle: BypassMergeWriter cannot combine on the map side (shuffle %d)", dep.ShuffleID)
	}
	spill := tc.runner.cfg.Shuffle.Spill
	return &BypassMergeWriter[K, V]{
		tc:        tc,
		shuffleID: dep.ShuffleID,
		mapIndex:  mapIndex,
		part:      dep.Partitioner,
		codec:     storage.NewPairCodec(dep.KeyCodec, dep.ValueCodec),
		records: storage.RecordWriterConfig{
			Compression:  spill.Compression,
			BatchRecords: spill.BatchSize,
			BatchBytes:   min(bypassBatchBytes, batchBytes(spill)),
		},
		metrics:  WriteMetrics{Writer: "bypass-merge"},
		fallback: func() (*SortWriter[K, V], error) { return NewSortWriter(tc, dep, mapIndex) },
	}, nil
}

// Metrics implements Writer.
func (w *BypassMergeWriter[K, V]) Metrics() WriteMetrics { return w.metrics }

// partitionFile is one reduce partition's temporary file.
type partitionFile[K, V any] struct {
	id storage.BlockID
	f  storage.File
	tw *storage.TypedWriter[storage.Pair[K, V]]
}

// Write implements Writer.
func (w *BypassMergeWriter[K, V]) Write(ctx context.Context, records collection.Iterator[collection.Pair[K, V]]) (MapStatus, error) {
	mem := newBufferConsumer(w.tc.tm, fmt.Sprintf("shuffle %d bypass-merge writer (map %d)", w.shuffleID, w.mapIndex))
	held, ok, err := w.reserve(ctx, mem)
	if err != nil {
		return MapStatus{}, joinErrors(err, records.Close())
	}
	if !ok {
		return w.sortInstead(ctx, records)
	}
	defer mem.release(held)
	return writeMapOutput(w.tc, func(out *mapOutput) (MapStatus, error) { return w.write(ctx, out, records) })
}

// reserve acquires through mem (under Strict accounting) the buffers of every partition's
// writer and of the concatenation, with the partitions' batches made smaller if need be. It
// returns the bytes held, or false, holding nothing, when even the smallest batches do not fit.
func (w *BypassMergeWriter[K, V]) reserve(ctx context.Context, mem *bufferConsumer) (int64, bool, error) {
	n := w.part.NumPartitions()
	cfg, held, ok, err := reserveWriters(ctx, mem, int64(n), w.records, storage.DefaultBufferSize)
	if err != nil {
		return 0, false, fmt.Errorf("shuffle: acquiring the buffers of %d partition writers: %w", n, err)
	}
	if !ok {
		w.tc.log.Info("not enough memory for the bypass-merge writer's buffers, writing with the sort writer",
			zap.Int("shuffle", w.shuffleID), zap.Int("partitions", n),
			zap.String("needed", humanize.IBytes(uint64(held))))
		return 0, false, nil
	}
	w.records = cfg
	return held, true, nil
}

// minWriterBatchBytes is the smallest batch reserveWriters gives a record writer when memory is
// short.
const minWriterBatchBytes = 4 << 10

// reserveWriters acquires through mem (under Strict accounting) the buffers of n record writers
// with cfg plus extra bytes, and returns cfg and the bytes held. When the task grants less, it
// halves cfg.BatchBytes (which must be set) down to minWriterBatchBytes until they fit what was
// granted; when even that does not fit, it holds nothing and returns false with the bytes that
// the smallest batches need. A nil mem holds nothing and returns cfg.
func reserveWriters(ctx context.Context, mem *bufferConsumer, n int64, cfg storage.RecordWriterConfig, extra int64) (
	_ storage.RecordWriterConfig, held int64, ok bool, err error) {
	if mem == nil {
		return cfg, 0, true, nil
	}
	need := func(cfg storage.RecordWriterConfig) int64 { return n*writerBytes(cfg) + extra }
	got, err := mem.Acquire(ctx, need(cfg))
	if err != nil {
		return cfg, 0, false, err
	}
	floor := min(minWriterBatchBytes, cfg.BatchBytes)
	for ; ; cfg.BatchBytes = max(cfg.BatchBytes/2, floor) {
		if held := need(cfg); held <= got {
			mem.release(got - held)
			return cfg, held, true, nil
		}
		if cfg.BatchBytes == floor {
			mem.release(got)
			return cfg, need(cfg), false, nil
		}
	}
}

// sortInstead writes the map output with a SortWriter, when the task cannot hold the
// BypassMergeWriter's buffers.
func (w *BypassMergeWriter[K, V]) sortInstead(ctx context.Context, records collection.Iterator[collection.Pair[K, V]]) (MapStatus, error) {
	sw, err := w.fallback()
	if err != nil {
		return MapStatus{}, joinErrors(err, records.Close())
	}
	status, err := sw.Write(ctx, records)
	w.metrics = sw.Metrics()
	return status, err
}

// write is Write with the map output's files created through out. Its deferred cleanups (the
// input, the partition files) run before writeMapOutput decides whether the output stays.
func (w *BypassMergeWriter[K, V]) write(ctx context.Context, out *mapOutput, records collection.Iterator[collection.Pair[K, V]]) (status MapStatus, err error) {
	defer func() { err = joinErrors(err, records.Close()) }()
	n := w.part.NumPartitions()
	files := make([]*partitionFile[K, V], n)
	defer func() { err = joinErrors(err, w.removeTemp(files)) }()
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
		if files[p] == nil {
			if files[p], err = w.openTemp(); err != nil {
				return MapStatus{}, err
			}
		}
		if err := files[p].tw.Write(kv); err != nil {
			return MapStatus{}, fmt.Errorf("shuffle: writing partition %d: %w", p, err)
		}
		count++
	}
	if err := records.Err(); err != nil {
		return MapStatus{}, err
	}
	lengths := make([]int64, n)
	for p, pf := range files {
		if pf != nil {
			if err := pf.tw.Writer().Close(); err != nil {
				return MapStatus{}, fmt.Errorf("shuffle: writing partition %d: %w", p, err)
			}
			lengths[p] = pf.tw.Writer().BytesWritten()
		}
	}
	status = MapStatus{ShuffleID: w.shuffleID, MapID: int64(w.tc.id), MapIndex: w.mapIndex, Lengths: lengths, Records: count,
		BatchBytes: w.records.BatchBytes}
	err = out.commit(&status, func(data io.Writer) error {
		buf := make([]byte, storage.DefaultBufferSize)
		for p, pf := range files {
			if pf == nil {
				continue
			}
			if _, err := io.CopyBuffer(data, io.NewSectionReader(pf.f, 0, lengths[p]), buf); err != nil {
				return fmt.Errorf("shuffle: concatenating partition %d: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return MapStatus{}, err
	}
	w.metrics.RecordsWritten, w.metrics.BytesWritten = count, status.Bytes()
	return status, nil
}

func (w *BypassMergeWriter[K, V]) openTemp() (*partitionFile[K, V], error) {
	id, f, err := w.tc.disk.CreateTempShuffle()
	if err != nil {
		return nil, fmt.Errorf("shuffle: creating a partition file: %w", err)
	}
	rw, err := storage.NewRecordWriter(f, w.records)
	if err != nil {
		_, rmErr := w.tc.disk.Remove(id)
		return nil, joinErrors(err, f.Close(), rmErr)
	}
	return &partitionFile[K, V]{id: id, f: f, tw: storage.NewTypedWriter(rw, w.codec)}, nil
}

// removeTemp closes and deletes the partition files, every one of them whatever fails.
func (w *BypassMergeWriter[K, V]) removeTemp(files []*partitionFile[K, V]) error {
	var errs []error
	for _, pf := range files {
		if pf != nil {
			closeErr := pf.f.Close()
			_, rmErr := w.tc.disk.Remove(pf.id)
			errs = append(errs, closeErr, rmErr)
		}
	}
	return errors.Join(errs...)
}

// mapOutput is the data and index files of one map output while a writer writes them. The
// files belong to the DiskBlockManager, not to the task: once the map succeeds they outlive it
// until the shuffle is unregistered, so nothing but mapOutput deletes them when it fails.
type mapOutput struct {
	tc    *TaskContext
	files []storage.BlockID // created so far
}

// writeMapOutput runs a writer's write and returns its status, or its error after deleting
// every file write created through its mapOutput. write returns only after its own deferred
// cleanups ran (closing the input, deleting temporary files, closing a sorter), so a failure of
// any of them also deletes the output: a map's output is either returned whole with a nil
// error or gone. Spark's writers delete theirs in stop(success = false).
func writeMapOutput(tc *TaskContext, write func(*mapOutput) (MapStatus, error)) (MapStatus, error) {
	out := &mapOutput{tc: tc}
	status, err := write(out)
	if err != nil {
		return MapStatus{}, joinErrors(err, out.discard())
	}
	return status, nil
}

// create creates one of the output's files.
func (o *mapOutput) create(id storage.BlockID) (storage.File, error) {
	f, err := o.tc.disk.Manager().Create(id)
	if err != nil {
		return nil, err
	}
	o.files = append(o.files, id)
	return f, nil
}

// discard deletes every file created, each one whatever the others do.
func (o *mapOutput) discard() error {
	var errs []error
	for _, id := range o.files {
		_, err := o.tc.disk.Manager().Remove(id)
		errs = append(errs, err)
	}
	o.files = nil
	return errors.Join(errs...)
}

// commit writes the output's data file with write, checks that it holds the sum of
// status.Lengths bytes (which write may set), and writes its index file (Spark's
// IndexShuffleBlockResolver.writeMetadataFileAndCommit, without its temporary files and rename:
// the files get their final names at once, and the writer's error path deletes them).
func (o *mapOutput) commit(status *MapStatus, write func(io.Writer) error) error {
	dataID, indexID := status.DataBlock(), status.IndexBlock()
	f, err := o.create(dataID)
	if err != nil {
		return fmt.Errorf("shuffle: creating data file: %w", err)
	}
	cw := &countingWriter{w: f}
	if err := joinErrors(write(cw), f.Close()); err != nil {
		return err
	}
	if want := status.Bytes(); cw.n != want {
		return fmt.Errorf("shuffle: data file %s holds %d bytes, the partition lengths sum to %d", dataID, cw.n, want)
	}
	if err := writeIndexFile(o, indexID, status.Lengths); err != nil {
		return err
	}
	o.tc.log.Debug("wrote map output", zap.Stringer("block", dataID), zap.String("bytes", humanize.IBytes(uint64(cw.n))))
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// addSpills adds a spillable collection's metrics to the task's.
func (m *WriteMetrics) addSpills(s collection.SpillMetrics) {
	m.Spills += s.Spills + s.ForcedSpills
	m.MemoryBytesSpilled += s.MemoryBytesSpilled
	m.DiskBytesSpilled += s.DiskBytesSpilled
	m.PeakExecutionBytes = max(m.PeakExecutionBytes, s.PeakMemoryUsedBytes)
}

// countingIterator counts the elements it passes on.
type countingIterator[T any] struct {
	collection.Iterator[T]
	n int64
}

func (it *countingIterator[T]) Next() bool {
	if it.Iterator.Next() {
		it.n++
		return true
	}
	return false
}
