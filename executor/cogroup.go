package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

// Input is one keyed input of CoGroup or Join (Spark's pair RDD): Partitions partitions, each
// read by Read in a task of a map stage.
type Input[K comparable, V any] struct {
	// Partitions is the number of partitions of the input (map tasks of its shuffle).
	Partitions int
	// Read returns the records of one partition; the caller closes the iterator.
	Read shuffle.MapInput[K, V]
	// Codec encodes the values in shuffle and spill files.
	Codec storage.Codec[V]
}

func (in Input[K, V]) validate(name string) error {
	switch {
	case in.Partitions < 0:
		return fmt.Errorf("executor: %s has %d partitions", name, in.Partitions)
	case in.Read == nil:
		return fmt.Errorf("executor: %s has no Read function", name)
	case in.Codec == nil:
		return fmt.Errorf("executor: %s has no Codec", name)
	}
	return nil
}

// ReduceFunc consumes the records one task of CoGroup or Join produces for its partition. The
// records are valid until the function returns, which closes them; it should return promptly
// once ctx is done.
type ReduceFunc[T any] func(ctx context.Context, tc *shuffle.TaskContext, partition int, records collection.Iterator[T]) error

// Partitioning says how CoGroup and Join shuffle their inputs. Its zero value is not usable:
// KeyCodec is required.
type Partitioning[K comparable] struct {
	// KeyCodec encodes keys in shuffle and spill files.
	KeyCodec storage.Codec[K]
	// Partitions is the number of reduce partitions (tasks of the reduce stage). 0 means twice
	// the executor's cores. Ignored when Partitioner is set.
	Partitions int
	// Partitioner assigns keys to reduce partitions. nil means a hash partitioner of Partitions.
	Partitioner shuffle.Partitioner[K]
}

func (c Partitioning[K]) partitioner(ex *Executor) (shuffle.Partitioner[K], error) {
	switch {
	case c.KeyCodec == nil:
		return nil, errors.New("executor: Partitioning.KeyCodec is nil")
	case c.Partitions < 0:
		return nil, fmt.Errorf("executor: Partitioning.Partitions %d is negative", c.Partitions)
	case c.Partitioner != nil:
		return c.Partitioner, nil
	case c.Partitions == 0:
		return shuffle.NewHashPartitioner[K](2 * ex.cfg.Cores), nil
	}
	return shuffle.NewHashPartitioner[K](c.Partitions), nil
}

// CoGroup is Spark's CoGroupedRDD: it shuffles every input by key (one map stage each), and
// each task of the reduce stage inserts partition p of every shuffle into one spillable
// ExternalAppendOnlyMap of tagged values, whose combiner keeps one list of values per input
// (Spark's CoGroupCombiner, an Array of buffers). reduce reads the result: every key of the
// partition with the values each input had for it, in input order (an input without the key
// has an empty list). Keys come in no particular order.
//
// The map spills when the task's memory runs short, so inputs larger than the budget cogroup
// within it, except for one key whose values alone do not fit (as in Spark). Every shuffle is
// unregistered (its files deleted) when CoGroup returns.
func CoGroup[K comparable, V any](ctx context.Context, ex *Executor, cfg Partitioning[K], inputs []Input[K, V], reduce ReduceFunc[collection.Pair[K, [][]V]]) (_ Stats, err error) {
	part, err := cfg.partitioner(ex)
	if err != nil {
		return Stats{}, err
	}
	if len(inputs) == 0 {
		return Stats{}, errors.New("executor: CoGroup of no inputs")
	}
	var stats statsSum
	deps := make([]*shuffle.Dependency[K, V, V], len(inputs))
	defer func() {
		for _, dep := range deps {
			if dep != nil {
				err = errors.Join(err, ex.Runner.Registry().UnregisterShuffle(dep.ShuffleID))
			}
		}
	}()
	for i, in := range inputs {
		if err := in.validate(fmt.Sprintf("CoGroup input %d", i)); err != nil {
			return Stats{}, err
		}
		dep := &shuffle.Dependency[K, V, V]{
			ShuffleID: ex.Runner.NewShuffleID(), Partitioner: part, KeyCodec: cfg.KeyCodec, ValueCodec: in.Codec,
		}
		written, err := shuffle.RunMapStage(ctx, ex.Runner, dep, in.Partitions, in.Read)
		for _, w := range written {
			stats.add(Stats{ShuffleRecordsWritten: w.RecordsWritten, ShuffleBytesWritten: w.BytesWritten,
				Spills: w.Spills, MemoryBytesSpilled: w.MemoryBytesSpilled, DiskBytesSpilled: w.DiskBytesSpilled})
		}
		if err != nil {
			return stats.get(), fmt.Errorf("executor: cogroup input %d: %w", i, err)
		}
		deps[i] = dep
	}
	err = ex.Runner.Run(ctx, part.NumPartitions(), func(ctx context.Context, tc *shuffle.TaskContext, p int) error {
		groups, err := coGroupPartition(ctx, tc, deps, p, &stats)
		if err != nil {
			return err
		}
		return errors.Join(reduce(ctx, tc, p, groups), groups.Close())
	})
	return stats.get(), err
}

// Stats sums the metrics of the tasks of a CoGroup or a Join, with Spark's task metric names.
type Stats struct {
	// Strategy is how a Join ran (ShuffleJoin for CoGroup).
	Strategy JoinStrategy
	// ShuffleRecordsWritten and ShuffleBytesWritten sum the map tasks' shuffle writes.
	ShuffleRecordsWritten, ShuffleBytesWritten int64
	// Spills counts the spills of the shuffle writers and of the cogroup maps, forced ones
	// included; MemoryBytesSpilled (their estimated size in memory) and DiskBytesSpilled (the
	// bytes written) sum them.
	Spills                               int64
	MemoryBytesSpilled, DiskBytesSpilled int64
	// BroadcastBytes is the estimated size of a broadcast join's table (the storage memory it
	// held).
	BroadcastBytes int64
}

// statsSum adds up Stats from concurrent tasks.
type statsSum struct {
	mu sync.Mutex
	s  Stats
}

func (t *statsSum) add(s Stats) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.ShuffleRecordsWritten += s.ShuffleRecordsWritten
	t.s.ShuffleBytesWritten += s.ShuffleBytesWritten
	t.s.Spills += s.Spills
	t.s.MemoryBytesSpilled += s.MemoryBytesSpilled
	t.s.DiskBytesSpilled += s.DiskBytesSpilled
}

func (t *statsSum) get() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.s
}

// tagged is a value of the cogroup map: the index of its input and the value.
type tagged[V any] struct {
	input int
	value V
}

// coGroupAggregator builds each key's lists of values, one per input (Spark's
// CoGroupedRDD.createExternalMap).
func coGroupAggregator[K comparable, V any](n int) collection.Aggregator[K, tagged[V], [][]V] {
	return collection.Aggregator[K, tagged[V], [][]V]{
		CreateCombiner: func(t tagged[V]) [][]V {
			c := make([][]V, n)
			c[t.input] = []V{t.value}
			return c
		},
		MergeValue: func(c [][]V, t tagged[V]) [][]V {
			c[t.input] = append(c[t.input], t.value)
			return c
		},
		MergeCombiners: func(a, b [][]V) [][]V {
			for i := range a {
				a[i] = append(a[i], b[i]...)
			}
			return a
		},
	}
}

// coGroupPartition inserts partition p of every dependency into one CoGroupMap and returns its
// iterator; closing it closes the map (so does the task's end).
func coGroupPartition[K comparable, V any](ctx context.Context, tc *shuffle.TaskContext, deps []*shuffle.Dependency[K, V, V], p int, stats *statsSum) (collection.Iterator[collection.Pair[K, [][]V]], error) {
	var values []storage.Codec[V]
	for _, d := range deps {
		values = append(values, d.ValueCodec)
	}
	m, err := NewCoGroupMap(tc, deps[0].KeyCodec, values,
		CoGroupMapConfig[K, V]{Name: fmt.Sprintf("cogroup of shuffle %d", deps[0].ShuffleID)})
	if err != nil {
		return nil, err
	}
	for i, dep := range deps {
		r, err := shuffle.NewReader(ctx, tc, dep, p)
		if err != nil {
			return nil, err
		}
		if err := m.InsertAll(ctx, i, r); err != nil {
			return nil, err
		}
	}
	it, err := m.Iterator(ctx)
	if err != nil {
		return nil, err
	}
	return storage.FuncIterator(func() (collection.Pair[K, [][]V], bool, error) {
		if it.Next() {
			return it.Value(), true, nil
		}
		return collection.Pair[K, [][]V]{}, false, it.Err()
	}, func() error {
		err := errors.Join(it.Close(), m.Close())
		ms := m.Metrics()
		stats.add(Stats{Spills: ms.Spills + ms.ForcedSpills, MemoryBytesSpilled: ms.MemoryBytesSpilled, DiskBytesSpilled: ms.DiskBytesSpilled})
		return err
	}), nil
}

// CoGroupMapConfig configures a CoGroupMap.
type CoGroupMapConfig[K comparable, V any] struct {
	// Name names the map in logs and memory usage reports ("cogroup" when empty).
	Name string
	// Created, if set, is called with every group the map creates, for tests and monitoring:
	// the group is referenced by the map alone, so it must not be kept other than through a
	// weak pointer (to its first element, &group[0]).
	Created func(group [][]V)
}

// CoGroupMap is what one task of CoGroup runs, for jobs that cogroup inside a task of their own
// (Spark's CoGroupedRDD.compute): a spillable ExternalAppendOnlyMap of the task whose combiner
// keeps, for each key, one list of values per input. Insert each input with InsertAll, read
// with Iterator, then Close. The task's end closes it too.
type CoGroupMap[K comparable, V any] struct {
	m *collection.ExternalAppendOnlyMap[K, tagged[V], [][]V]
}

// NewCoGroupMap returns an empty map of len(values) inputs in task tc, spilling with the
// settings of tc's runner. keys encodes keys in spill files and values[i] the values of input
// i, as codecs are passed to every collection (collection.NewExternalAppendOnlyMap).
func NewCoGroupMap[K comparable, V any](tc *shuffle.TaskContext, keys storage.Codec[K], values []storage.Codec[V], cfg CoGroupMapConfig[K, V]) (*CoGroupMap[K, V], error) {
	if len(values) == 0 {
		return nil, errors.New("executor: NewCoGroupMap has no value codecs: a cogroup needs at least one input")
	}
	combiners := listsCodec[V]{}
	for i, c := range values {
		if c == nil {
			return nil, fmt.Errorf("executor: NewCoGroupMap's value codec %d of %d is nil", i, len(values))
		}
		combiners = append(combiners, storage.SliceCodec[V]{Elem: c})
	}
	if cfg.Name == "" {
		cfg.Name = "cogroup"
	}
	agg := coGroupAggregator[K, V](len(values))
	if created := cfg.Created; created != nil {
		create := agg.CreateCombiner
		agg.CreateCombiner = func(t tagged[V]) [][]V {
			g := create(t)
			created(g)
			return g
		}
	}
	m, err := collection.NewExternalAppendOnlyMap(tc.TaskManager(), tc.Disk(), agg, keys, combiners,
		collection.ExternalMapConfig[K]{SpillConfig: tc.Runner().Config().Shuffle.Spill, Name: cfg.Name})
	if err != nil {
		return nil, err
	}
	tc.AddCompletionListener(m.Close)
	return &CoGroupMap[K, V]{m: m}, nil
}

// InsertAll inserts every pair of it as values of input i, and closes it.
func (c *CoGroupMap[K, V]) InsertAll(ctx context.Context, input int, it collection.Iterator[collection.Pair[K, V]]) error {
	return c.m.InsertAll(ctx, tag(it, input))
}

// Iterator returns every key with its values by input. The map may be force-spilled while it
// is read, dropping what it holds in memory.
func (c *CoGroupMap[K, V]) Iterator(ctx context.Context) (collection.Iterator[collection.Pair[K, [][]V]], error) {
	return c.m.Iterator(ctx)
}

// Metrics are the map's spill metrics.
func (c *CoGroupMap[K, V]) Metrics() collection.SpillMetrics { return c.m.Metrics() }

// Close releases the map's memory and deletes its spill files.
func (c *CoGroupMap[K, V]) Close() error { return c.m.Close() }

// tag marks every value of it with i.
func tag[K comparable, V any](it collection.Iterator[collection.Pair[K, V]], i int) collection.Iterator[collection.Pair[K, tagged[V]]] {
	return mapIter(it, func(kv collection.Pair[K, V]) collection.Pair[K, tagged[V]] {
		return collection.Pair[K, tagged[V]]{Key: kv.Key, Value: tagged[V]{input: i, value: kv.Value}}
	})
}

// listsCodec encodes a cogroup combiner in spills: list i with codec i (input i's).
type listsCodec[V any] []storage.SliceCodec[V]

func (c listsCodec[V]) Append(dst []byte, lists [][]V) []byte {
	for i, codec := range c {
		dst = codec.Append(dst, lists[i])
	}
	return dst
}

func (c listsCodec[V]) Decode(src []byte) ([][]V, int, error) {
	lists := make([][]V, len(c))
	n := 0
	for i, codec := range c {
		l, m, err := codec.Decode(src[n:])
		if err != nil {
			return nil, 0, fmt.Errorf("executor: cogroup values of input %d: %w", i, err)
		}
		lists[i], n = l, n+m
	}
	return lists, n, nil
}
