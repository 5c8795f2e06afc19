package spillbeam

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// KV is a secondary key and a value: the element type of the grouped values SortValues sorts
// (the KV<K2, V> of Beam Java's KV<K, Iterable<KV<K2, V>>>). The Go SDK has no nested KV, so it
// is a struct, which Beam encodes with its schema coder.
type KV[K2, V any] struct {
	Key   K2
	Value V
}

// Stats describes the processing of one group.
type Stats struct {
	// Values is the number of values read from the group.
	Values int64
	// Spills, MemoryBytesSpilled, DiskBytesSpilled and PeakMemoryUsedBytes are the collection's
	// spill counters (collection.SpillMetrics; Spills counts forced spills too).
	Spills, MemoryBytesSpilled, DiskBytesSpilled, PeakMemoryUsedBytes int64
}

// keyedInput reads a group's values, counting them in *n, as pairs of the encoding of their key
// and conv of their value; a failed encoding ends it with an error naming the value's position.
func keyedInput[K2, V, T any](values func(*KV[K2, V]) bool, keys *beamCodec[K2], n *int64,
	conv func(V) (T, error)) collection.Iterator[collection.Pair[string, T]] {
	var kv KV[K2, V]
	return storage.FuncIterator(func() (p collection.Pair[string, T], ok bool, err error) {
		if !values(&kv) {
			return p, false, nil
		}
		*n++
		k, err := keys.encode(kv.Key)
		if err != nil {
			return p, false, fmt.Errorf("key of value %d: %w", *n, err)
		}
		p.Key = string(k)
		if p.Value, err = conv(kv.Value); err != nil {
			return p, false, fmt.Errorf("value %d: %w", *n, err)
		}
		return p, true, nil
	}, nil)
}

func (s *Stats) add(m collection.SpillMetrics) {
	s.Spills += m.Spills + m.ForcedSpills
	s.MemoryBytesSpilled += m.MemoryBytesSpilled
	s.DiskBytesSpilled += m.DiskBytesSpilled
	s.PeakMemoryUsedBytes = max(s.PeakMemoryUsedBytes, m.PeakMemoryUsedBytes)
}

// SortGroup is the callback form of SortValues: it reads one group's values (a GroupByKey's
// value iterator, as a DoFn receives it), sorts them by the encoded bytes of their keys under
// e's budget, spilling sorted runs to disk as needed, and calls fn with each value in order. No
// more than the budget of them is held in memory at once: use it when the sorted values are
// consumed (written, folded, compared with their neighbours) rather than output as one element.
//
// The order is Beam Java's SortValues': unsigned lexicographic order of each key's encoding by
// the Go SDK's coder for K2, in Beam's outer context, so string and []byte keys sort by their
// bytes. Other encodings need not follow the keys' natural order (varint integers do not: encode
// an integer big-endian into a []byte key for numeric order). Values of equal keys come in no
// particular order.
//
// The group is one task of e (Executor.Run): on any error — an encoding that fails, fn's error,
// ctx's — the sorter's memory is released and its spill files deleted before SortGroup
// returns. fn's errors are returned as they are; Beam coder failures wrap ErrEncoding.
func SortGroup[K2, V any](ctx context.Context, e *Executor, values func(*KV[K2, V]) bool, fn func(K2, V) error) (Stats, error) {
	keys, err := newBeamCodec[K2]()
	if err != nil {
		return Stats{}, err
	}
	vals, err := newBeamCodec[V]()
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	err = e.Run(ctx, func(ctx context.Context, t *Task) error {
		s, err := collection.NewExternalSorter(t.Memory, t.Disk, storage.StringCodec{}, storage.BytesCodec{},
			collection.SorterConfig[string, []byte, []byte]{
				Ordering: strings.Compare,
				Spill:    t.Spill,
				Name:     "spillbeam.SortValues",
			})
		if err != nil {
			return fmt.Errorf("spillbeam: %w", err)
		}
		defer func() { e.record(&st, s.Metrics()); s.Close() }()
		in := keyedInput(values, keys, &st.Values, func(v V) ([]byte, error) {
			b, err := vals.encode(v)
			return append([]byte(nil), b...), err // the codec's buffer is reused
		})
		if err := s.InsertAll(ctx, in); err != nil {
			return err
		}
		it, err := s.Iterator(ctx)
		if err != nil {
			return err
		}
		defer it.Close()
		for it.Next() {
			p := it.Value()
			k, err := keys.decodeString(p.Key)
			if err != nil {
				return err
			}
			v, err := vals.decode(p.Value)
			if err != nil {
				return err
			}
			if err := fn(k, v); err != nil {
				return err
			}
		}
		return it.Err()
	})
	return st, err
}

// SortValues is Beam Java's SortValues transform: grouped must be a GroupByKey's output,
// CoGBK<K, KV[K2, V]> (Beam Java's KV<K, Iterable<KV<K2, V>>>), and the result is a
// PCollection<KV<K, []KV[K2, V]>> with each group's values sorted by their keys' encoded bytes
// (see SortGroup for the order). The sort runs under cfg's worker budget and spills; the output
// element itself holds the whole sorted group, as any Beam element does, so for groups larger
// than memory consume them with SortGroup in a DoFn of your own instead.
//
// The DoFn must be registered for the types used: call RegisterSortValues[K, K2, V]() from an
// init function. An invalid cfg fails the bundle in Setup with an error wrapping
// ErrInvalidConfig.
func SortValues[K, K2, V any](s beam.Scope, cfg Config, grouped beam.PCollection) beam.PCollection {
	s = s.Scope("spillbeam.SortValues")
	return beam.ParDo(s, &sortValuesFn[K, K2, V]{Config: cfg}, grouped)
}

// RegisterSortValues registers SortValues' DoFn and its emitter and iterator for the types K,
// K2 and V with Beam. Like every Beam registration it must be called from an init function
// (before beam.Init).
func RegisterSortValues[K, K2, V any]() {
	register.DoFn4x1[context.Context, K, func(*KV[K2, V]) bool, func(K, []KV[K2, V]), error](&sortValuesFn[K, K2, V]{})
	register.Emitter2[K, []KV[K2, V]]()
	register.Iter1[KV[K2, V]]()
}

// sortValuesFn is SortValues' DoFn.
type sortValuesFn[K, K2, V any] struct {
	Config Config
	exec   *Executor
}

func (f *sortValuesFn[K, K2, V]) Setup() (err error) {
	f.exec, err = Acquire(f.Config)
	return err
}

func (f *sortValuesFn[K, K2, V]) Teardown() error { return release(&f.exec) }

func (f *sortValuesFn[K, K2, V]) ProcessElement(ctx context.Context, key K, values func(*KV[K2, V]) bool, emit func(K, []KV[K2, V])) error {
	var out []KV[K2, V]
	st, err := SortGroup(ctx, f.exec, values, func(k K2, v V) error {
		out = append(out, KV[K2, V]{k, v})
		return nil
	})
	reportStats(ctx, "SortValues", st)
	if err != nil {
		return fmt.Errorf("spillbeam: SortValues of a group of %d values: %w", st.Values, err)
	}
	emit(key, out)
	return nil
}

// release releases *e if set and clears it (DoFns' Teardown).
func release(e **Executor) error {
	if *e == nil {
		return nil
	}
	err := (*e).Release()
	*e = nil
	return err
}

// reportStats adds a group's stats to the Beam metrics of namespace "spillbeam".
func reportStats(ctx context.Context, transform string, st Stats) {
	beam.NewCounter("spillbeam", transform+".values").Inc(ctx, st.Values)
	beam.NewCounter("spillbeam", transform+".spills").Inc(ctx, st.Spills)
	beam.NewCounter("spillbeam", transform+".diskBytesSpilled").Inc(ctx, st.DiskBytesSpilled)
}
