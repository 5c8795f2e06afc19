package main

import (
	"context"
	"errors"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
	"github.com/spillway/spillway/tungsten"
)

// runTungsten runs the work on Spillway's tungsten package: keys and values encoded into pages
// (on the Go heap, or off it in anonymous mappings when offHeap), with the same budget, task
// and spill directory as runSpillway. Off-heap, the budget is the off-heap region
// (Config.OffHeapSize) and the on-heap region is the same size, unused by tungsten.
func runTungsten(offHeap bool) func(context.Context, kind, params) (outcome, error) {
	return func(ctx context.Context, w kind, p params) (outcome, error) {
		cfg := budgetConfig(p)
		if offHeap {
			cfg.OffHeapEnabled, cfg.OffHeapSize = true, p.Budget
		}
		return inTask(cfg, p, "tungsten", func(tm *memory.TaskManager, scope *storage.Scope) (outcome, error) {
			switch w {
			case aggInt:
				return tungstenAgg(ctx, tm, scope, tungsten.Int64Key{}, p,
					func(_ []byte, k int64) int64 { return k }, func(k int64) uint64 { return uint64(k) })
			case aggStr:
				// The key is appended to a reused buffer: BytesKey encodes it into the aggregator's
				// own buffer at once, so no record allocates.
				return tungstenAgg(ctx, tm, scope, tungsten.BytesKey{}, p, appendStrKey, strID[[]byte])
			default:
				return tungstenSort(ctx, tm, scope, p)
			}
		})
	}
}

func tungstenAgg[K any](ctx context.Context, tm *memory.TaskManager, scope *storage.Scope, codec tungsten.KeyCodec[K], p params,
	key func(buf []byte, k int64) K, id func(K) uint64) (_ outcome, err error) {
	a, err := tungsten.NewAggregator(ctx, tm, scope, codec, tungsten.Int64Key{}, func(a, b int64) int64 { return a + b },
		tungsten.AggregatorConfig{})
	if err != nil {
		return outcome{}, err
	}
	defer func() { err = errors.Join(err, a.Close()) }()
	in := &genIter[K]{n: p.Records, buf: make([]byte, 0, 32),
		key: func(buf []byte, i int64) K { return key(buf[:0], aggKey(i, p.Keys)) }, val: aggValue}
	if err := a.InsertAll(ctx, in); err != nil {
		return outcome{}, err
	}
	it, err := a.Iterator(ctx)
	if err != nil {
		return outcome{}, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	var c check
	for it.Next() {
		kv := it.Value()
		c.add(id(kv.Key), kv.Value)
	}
	return outcome{Check: c, Spills: a.Metrics().Spills}, it.Err()
}

func tungstenSort(ctx context.Context, tm *memory.TaskManager, scope *storage.Scope, p params) (_ outcome, err error) {
	s, err := tungsten.NewSorter(ctx, tm, scope, tungsten.Int64Key{}, tungsten.Int64Key{}, tungsten.SorterConfig{})
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
	return outcome{Check: c, Spills: s.Metrics().Spills}, nil
}
