package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// runSpillway runs the work on Spillway's public API: one task of a UnifiedManager whose whole
// unified region is the budget (strict accounting, no reserved memory), spilling into a
// DiskBlockManager under the run's directory with the default spill settings (S2-compressed).
func runSpillway(ctx context.Context, w kind, p params) (outcome, error) {
	return inTask(budgetConfig(p), p, "spillway", func(tm *memory.TaskManager, scope *storage.Scope) (outcome, error) {
		switch w {
		case aggInt:
			return spillwayAgg(ctx, tm, scope, storage.VarintCodec[int64]{}, p,
				func(_ []byte, k int64) int64 { return k }, func(k int64) uint64 { return uint64(k) })
		case aggStr:
			return spillwayAgg(ctx, tm, scope, storage.StringCodec{}, p,
				func(b []byte, k int64) string { return string(appendStrKey(b[:0], k)) }, strID[string])
		default:
			return spillwaySort(ctx, tm, scope, p)
		}
	})
}

// budgetConfig is a memory manager whose whole unified region is the budget (strict accounting,
// no reserved memory, one core).
func budgetConfig(p params) memory.Config {
	return memory.Config{SystemMemory: p.Budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 1}
}

// inTask runs f in one task of a memory manager of cfg, spilling into a DiskBlockManager under
// the run's directory; the engine names it in the error of a task that leaks memory.
func inTask(cfg memory.Config, p params, engine string, f func(*memory.TaskManager, *storage.Scope) (outcome, error)) (_ outcome, err error) {
	mm, err := memory.NewUnifiedManager(cfg)
	if err != nil {
		return outcome{}, err
	}
	defer func() { err = errors.Join(err, mm.Close()) }()
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{p.Dir}})
	if err != nil {
		return outcome{}, err
	}
	defer func() { err = errors.Join(err, disk.Close()) }()
	scope := disk.NewScope()
	defer func() { err = errors.Join(err, scope.Close()) }()
	tm := memory.NewTaskManager(mm, 1, memory.TaskConfig{})
	defer func() {
		if leaked := tm.Close(); leaked != 0 {
			err = errors.Join(err, fmt.Errorf("%s: the task leaked %d bytes", engine, leaked))
		}
	}()
	return f(tm, scope)
}

// sum is reduceByKey(_ + _).
func sum[K comparable]() collection.Aggregator[K, int64, int64] {
	return collection.Aggregator[K, int64, int64]{
		CreateCombiner: func(v int64) int64 { return v },
		MergeValue:     func(c, v int64) int64 { return c + v },
		MergeCombiners: func(a, b int64) int64 { return a + b },
	}
}

func spillwayAgg[K comparable](ctx context.Context, tm *memory.TaskManager, scope *storage.Scope, codec storage.Codec[K], p params,
	key func(buf []byte, k int64) K, id func(K) uint64) (_ outcome, err error) {
	m, err := collection.NewExternalAppendOnlyMap(tm, scope, sum[K](), codec, storage.VarintCodec[int64]{}, collection.ExternalMapConfig[K]{})
	if err != nil {
		return outcome{}, err
	}
	defer func() { err = errors.Join(err, m.Close()) }()
	in := &genIter[K]{n: p.Records, buf: make([]byte, 0, 32),
		key: func(buf []byte, i int64) K { return key(buf[:0], aggKey(i, p.Keys)) }, val: aggValue}
	if err := m.InsertAll(ctx, in); err != nil {
		return outcome{}, err
	}
	it, err := m.Iterator(ctx)
	if err != nil {
		return outcome{}, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	var c check
	for it.Next() {
		kv := it.Value()
		c.add(id(kv.Key), kv.Value)
	}
	met := m.Metrics()
	return outcome{Check: c, Spills: met.Spills + met.ForcedSpills}, it.Err()
}

func spillwaySort(ctx context.Context, tm *memory.TaskManager, scope *storage.Scope, p params) (_ outcome, err error) {
	s, err := collection.NewExternalSorter(tm, scope, storage.VarintCodec[int64]{}, storage.VarintCodec[int64]{},
		collection.SorterConfig[int64, int64, int64]{Ordering: cmp.Compare[int64]})
	if err != nil {
		return outcome{}, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	in := &genIter[int64]{n: p.Records, key: func(_ []byte, i int64) int64 { return sortKey(i) }, val: func(i int64) int64 { return i }}
	if err := s.InsertAll(ctx, in); err != nil {
		return outcome{}, err
	}
	it, err := s.Iterator(ctx)
	if err != nil {
		return outcome{}, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	c, err := checkSorted(it)
	if err != nil {
		return outcome{}, err
	}
	met := s.Metrics()
	return outcome{Check: c, Spills: met.Spills + met.ForcedSpills}, nil
}
