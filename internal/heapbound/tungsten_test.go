package heapbound

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
	"github.com/spillway/spillway/tungsten"
)

// tungstenEnv is newEnv for the tungsten collections: pages on the Go heap in the budget, or
// off it (Config.OffHeapSize is the budget) with an on-heap region of onHeap bytes for what
// tungsten keeps on the Go heap (spill readers' and writers' buffers).
func tungstenEnv(t *testing.T, offHeap bool, onHeap int64) (*env, error) {
	if !offHeap {
		return newEnv(t, budget, memory.Config{})
	}
	return newEnv(t, onHeap, memory.Config{OffHeapEnabled: true, OffHeapSize: budget})
}

// tungstenAggregate sums n int64 records over n/2 keys seen round robin in a tungsten.Aggregator
// and reads them back merged. With inline, values are tungsten.Int64Key, so keys and values live
// in the slot array (the Aggregator's fast path); otherwise they are varints in the pages of its
// BytesToBytesMap. Either way they spill as sorted runs.
func tungstenAggregate(ctx context.Context, t *testing.T, n int, offHeap, inline bool, onHeap int64) (err error) {
	e, err := tungstenEnv(t, offHeap, onHeap)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.close()) }()
	var values storage.Codec[int64] = storage.VarintCodec[int64]{}
	if inline {
		values = tungsten.Int64Key{}
	}
	a, err := tungsten.NewAggregator(ctx, e.tm, e.scope, tungsten.Int64Key{}, values, sum, tungsten.AggregatorConfig{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, a.Close()) }()
	keys := n / 2
	if err := a.InsertAll(ctx, generate(n, func(i int) tungsten.Pair[int64, int64] {
		return tungsten.Pair[int64, int64]{Key: mix(i % keys), Value: 1}
	})); err != nil {
		return err
	}
	it, err := a.Iterator(ctx)
	if err != nil {
		return err
	}
	distinct, total, err := sums(it)
	if err != nil {
		return err
	}
	m := a.Metrics()
	t.Logf("%d records: %d spills, %d merge passes", n, m.Spills, m.MergePasses)
	if distinct != keys || total != n || m.Spills == 0 {
		return fmt.Errorf("read %d keys summing to %d with %d spills, want %d keys summing to %d with spills",
			distinct, total, m.Spills, keys, n)
	}
	return nil
}

// TestTungstenAggregator: a tungsten.Aggregator with pages on the Go heap sums n int64 records
// over n/2 keys; both sizes spill many times the budget. Keys and values in the slots hold 16
// bytes a key where pages hold about 24, so that path takes twice the records to spill as often.
func TestTungstenAggregator(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inline bool
		sizes  [2]int
	}{
		{"pages", false, [2]int{300_000, 3_000_000}},
		{"inline slots", true, [2]int{600_000, 6_000_000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireBound(t, budget, tc.sizes, func(ctx context.Context, t *testing.T, n int) error {
				return tungstenAggregate(ctx, t, n, false, tc.inline, 0)
			})
		})
	}
}

// TestTungstenAggregatorOffHeap: the aggregation with keys and values in slots off the Go heap. What the
// Go heap holds is the spill readers' and writers' buffers, charged to a small on-heap region
// (2 MiB): the live heap stays within that region's bound whatever the data.
func TestTungstenAggregatorOffHeap(t *testing.T) {
	const onHeap = 2 << 20
	requireBound(t, onHeap, [2]int{600_000, 6_000_000}, func(ctx context.Context, t *testing.T, n int) error {
		return tungstenAggregate(ctx, t, n, true, true, onHeap)
	})
}

// tungstenSort sorts n records of random int64 keys in a tungsten.Sorter with pages on the Go
// heap and checks they are read back in key order after some spills.
func tungstenSort[V any](ctx context.Context, t *testing.T, n int, values storage.Codec[V], value func(i int) V) (err error) {
	e, err := tungstenEnv(t, false, 0)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.close()) }()
	s, err := tungsten.NewSorter(ctx, e.tm, e.scope, tungsten.Int64Key{}, values, tungsten.SorterConfig{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	if err := s.InsertAll(ctx, generate(n, func(i int) tungsten.Pair[int64, V] {
		return tungsten.Pair[int64, V]{Key: mix(i), Value: value(i)}
	})); err != nil {
		return err
	}
	it, err := s.Iterator(ctx)
	if err != nil {
		return err
	}
	count, last := 0, int64(math.MinInt64)
	if err := drain(it, func(p tungsten.Pair[int64, V]) error {
		if p.Key < last {
			return fmt.Errorf("key %d after %d", p.Key, last)
		}
		count, last = count+1, p.Key
		return nil
	}); err != nil {
		return err
	}
	m := s.Metrics()
	t.Logf("%d records: %d spills, %d merge passes", n, m.Spills, m.MergePasses)
	if count != n || m.Spills == 0 {
		return fmt.Errorf("read %d records after %d spills, want %d after some", count, m.Spills, n)
	}
	return nil
}

// TestTungstenSorter: a tungsten.Sorter sorts n records (random int64 keys, 48-byte values) in
// its pages, and is read back in key order after many spills.
func TestTungstenSorter(t *testing.T) {
	requireBound(t, budget, [2]int{200_000, 2_000_000}, func(ctx context.Context, t *testing.T, n int) error {
		return tungstenSort(ctx, t, n, storage.StringCodec{}, payload)
	})
}

// TestTungstenSorterInt64: a tungsten.Sorter of int64 keys and values, kept in its sort array
// (no pages), sorts n records and is read back in key order after many spills.
func TestTungstenSorterInt64(t *testing.T) {
	requireBound(t, budget, [2]int{400_000, 4_000_000}, func(ctx context.Context, t *testing.T, n int) error {
		return tungstenSort(ctx, t, n, tungsten.Int64Key{}, func(i int) int64 { return int64(i) })
	})
}
