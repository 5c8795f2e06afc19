package spillbeam

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// Combiner combines the values of one sub-key into an accumulator: Beam's CombineFn without
// ExtractOutput (CreateAccumulator, AddInput, MergeAccumulators), which is Spark's Aggregator
// (createCombiner is AddInput on a new accumulator). AddInput and MergeAccumulators may modify
// and return their first argument. Accumulators are encoded with the Go SDK's coder for A when
// they spill.
type Combiner[V, A any] interface {
	CreateAccumulator() A
	AddInput(a A, v V) A
	MergeAccumulators(a, b A) A
}

// CombineGroup is group-then-combine for one group too large for memory: it reads the group's
// values (a GroupByKey's value iterator), combines the values of each sub-key K2 with c in a
// collection.ExternalAppendOnlyMap under e's budget, spilling accumulators to disk as needed,
// and calls fn once per sub-key with its accumulator. Sub-keys come in no particular order;
// they are told apart by their encoding (the Go SDK's coder for K2, which must be
// deterministic, as for a GroupByKey's keys).
//
// Only the accumulators of the sub-keys are held, never a sub-key's values, so memory follows
// the number of distinct sub-keys and spills when they do not fit. Errors and cleanup are as in
// SortGroup.
func CombineGroup[K2, V, A any](ctx context.Context, e *Executor, values func(*KV[K2, V]) bool, c Combiner[V, A], fn func(K2, A) error) (Stats, error) {
	keys, err := newBeamCodec[K2]()
	if err != nil {
		return Stats{}, err
	}
	accCodec, err := newBeamCodec[A]()
	if err != nil {
		return Stats{}, err
	}
	accs := &storageCodec[A]{codec: accCodec}
	agg := collection.Aggregator[string, V, A]{
		CreateCombiner: func(v V) A { return c.AddInput(c.CreateAccumulator(), v) },
		MergeValue:     c.AddInput,
		MergeCombiners: c.MergeAccumulators,
	}
	var st Stats
	err = e.Run(ctx, func(ctx context.Context, t *Task) error {
		m, err := collection.NewExternalAppendOnlyMap(t.Memory, t.Disk, agg, storage.StringCodec{}, storage.Codec[A](accs),
			collection.ExternalMapConfig[string]{SpillConfig: t.Spill, Name: "spillbeam.CombineGroup"})
		if err != nil {
			return fmt.Errorf("spillbeam: %w", err)
		}
		defer func() { e.record(&st, m.Metrics()); m.Close() }()
		in := keyedInput(values, keys, &st.Values, func(v V) (V, error) { return v, nil })
		if err := m.InsertAll(ctx, in); err != nil {
			return errors.Join(accs.Err(), err)
		}
		if err := accs.Err(); err != nil {
			return fmt.Errorf("accumulator: %w", err)
		}
		it, err := m.Iterator(ctx)
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
			if err := fn(k, p.Value); err != nil {
				return err
			}
		}
		if err := it.Err(); err != nil {
			return errors.Join(accs.Err(), err)
		}
		return accs.Err()
	})
	return st, err
}

// CombinePerSubKey is group-then-combine for hot keys: grouped must be a GroupByKey's output,
// CoGBK<K, KV[K2, V]>, and the result is a PCollection<KV<K, KV[K2, A]>> with one element per
// key and sub-key, A being the combiner's accumulator of that sub-key's values (see
// CombineGroup). Unlike SortValues, no output element holds a whole group.
//
// The DoFn must be registered for the types used: call RegisterCombinePerSubKey[K, K2, V, A, C]()
// from an init function. C is serialized with the DoFn (Beam encodes its exported fields as
// JSON). An invalid cfg fails the bundle in Setup with an error wrapping ErrInvalidConfig.
func CombinePerSubKey[K, K2, V, A any, C Combiner[V, A]](s beam.Scope, cfg Config, combiner C, grouped beam.PCollection) beam.PCollection {
	s = s.Scope("spillbeam.CombinePerSubKey")
	return beam.ParDo(s, &combinePerSubKeyFn[K, K2, V, A, C]{Config: cfg, Combiner: combiner}, grouped)
}

// RegisterCombinePerSubKey registers CombinePerSubKey's DoFn and its emitter and iterator for the
// types given with Beam. It must be called from an init function (before beam.Init).
func RegisterCombinePerSubKey[K, K2, V, A any, C Combiner[V, A]]() {
	register.DoFn4x1[context.Context, K, func(*KV[K2, V]) bool, func(K, KV[K2, A]), error](&combinePerSubKeyFn[K, K2, V, A, C]{})
	register.Emitter2[K, KV[K2, A]]()
	register.Iter1[KV[K2, V]]()
}

// combinePerSubKeyFn is CombinePerSubKey's DoFn.
type combinePerSubKeyFn[K, K2, V, A any, C Combiner[V, A]] struct {
	Config   Config
	Combiner C
	exec     *Executor
}

func (f *combinePerSubKeyFn[K, K2, V, A, C]) Setup() (err error) {
	f.exec, err = Acquire(f.Config)
	return err
}

func (f *combinePerSubKeyFn[K, K2, V, A, C]) Teardown() error { return release(&f.exec) }

func (f *combinePerSubKeyFn[K, K2, V, A, C]) ProcessElement(ctx context.Context, key K, values func(*KV[K2, V]) bool, emit func(K, KV[K2, A])) error {
	st, err := CombineGroup(ctx, f.exec, values, f.Combiner, func(k K2, a A) error {
		emit(key, KV[K2, A]{k, a})
		return nil
	})
	reportStats(ctx, "CombinePerSubKey", st)
	if err != nil {
		return fmt.Errorf("spillbeam: CombinePerSubKey of a group of %d values: %w", st.Values, err)
	}
	return nil
}
