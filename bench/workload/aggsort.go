package workload

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/spillway/spillway/bench/harness"
	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// countKey is a key of the agg-sort workload's second stage: a key with its count.
type countKey struct {
	Count int64
	Key   string
}

// byCountDesc orders by count, largest first, then by key.
func byCountDesc(a, b countKey) int {
	if c := cmp.Compare(b.Count, a.Count); c != 0 {
		return c
	}
	return strings.Compare(a.Key, b.Key)
}

var countKeyCodec = storage.FuncCodec[countKey]{
	AppendFunc: func(dst []byte, k countKey) []byte {
		dst = binary.AppendVarint(dst, k.Count)
		return storage.StringCodec{}.Append(dst, k.Key)
	},
	DecodeFunc: func(src []byte) (countKey, int, error) {
		c, n := binary.Varint(src)
		if n <= 0 {
			return countKey{}, 0, fmt.Errorf("%w: bad count varint", storage.ErrCorrupt)
		}
		k, m, err := storage.StringCodec{}.Decode(src[n:])
		return countKey{Count: c, Key: k}, n + m, err
	},
}

// countCheck verifies the agg-sort output: counts descending and summing to the record count.
type countCheck struct {
	prev           countKey
	records, count int64
}

func (c *countCheck) add(k countKey) error {
	if c.count > 0 && byCountDesc(c.prev, k) > 0 {
		return fmt.Errorf("workload: agg-sort output out of order at %d: %v after %v", c.count, k, c.prev)
	}
	c.prev = k
	c.count++
	c.records += k.Count
	return nil
}

func (c *countCheck) done(n int64) error {
	if c.records != n {
		return fmt.Errorf("workload: agg-sort counted %d records, want %d", c.records, n)
	}
	return nil
}

// aggSort is a word count sorted by frequency in one task: an ExternalAppendOnlyMap counts the
// Zipf keys, and its output streams into an ExternalSorter ordered by count. While the sorter
// fills, the task has two consumers, the map's (force-spillable) iterator and the sorter, so
// the victim order decides which of them spills.
func aggSort(p Params) Workload {
	n := p.Records
	return Workload{
		Name:        "agg-sort",
		Description: "count per Zipf key, then sort by count (ExternalAppendOnlyMap feeding ExternalSorter in one task)",
		Strategies:  []harness.Strategy{{Victim: harness.VictimSpark}, {Victim: harness.VictimLargest}, {Victim: harness.VictimRequester}},
		Baselines: []Baseline{{Name: "map+slices.SortFunc", Body: func(ctx context.Context, env *harness.Env) (int64, error) {
			m := map[string]int64{}
			var i int64
			for k := range zipfKeys(p.Seed, n) {
				m[keyString(k)]++
				if err := tick(ctx, env, i); err != nil {
					return i, err
				}
				i++
			}
			keys := make([]countKey, 0, len(m))
			for k, c := range m {
				keys = append(keys, countKey{Count: c, Key: k})
			}
			m = nil
			slices.SortFunc(keys, byCountDesc)
			var c countCheck
			for _, k := range keys {
				if err := c.add(k); err != nil {
					return n, err
				}
			}
			return n, c.done(n)
		}}},
		Run: func(ctx context.Context, env *harness.Env) (int64, error) {
			tm := env.NewTask(1)
			defer tm.Close()
			scope := env.Disk.NewScope()
			defer scope.Close()
			m, err := collection.NewExternalAppendOnlyMap(tm, scope, sumAgg, storage.StringCodec{}, storage.VarintCodec[int64]{},
				collection.ExternalMapConfig[string]{SpillConfig: p.spillConfig(env), Name: "count map"})
			if err != nil {
				return 0, err
			}
			defer m.Close()
			env.AddCounters(spillCounters(m.Metrics))
			var i int64
			for k := range zipfKeys(p.Seed, n) {
				if err := m.Insert(ctx, keyString(k), 1); err != nil {
					return i, err
				}
				if err := tick(ctx, env, i); err != nil {
					return i, err
				}
				i++
			}
			counts, err := m.Iterator(ctx)
			if err != nil {
				return n, err
			}
			defer counts.Close()

			noValue := storage.FuncCodec[struct{}]{
				AppendFunc: func(dst []byte, _ struct{}) []byte { return dst },
				DecodeFunc: func([]byte) (struct{}, int, error) { return struct{}{}, 0, nil },
			}
			s, err := collection.NewExternalSorter(tm, scope, countKeyCodec, noValue,
				collection.SorterConfig[countKey, struct{}, struct{}]{
					Ordering: byCountDesc, Spill: p.spillConfig(env), Name: "sort by count",
				})
			if err != nil {
				return n, err
			}
			defer s.Close()
			env.AddCounters(spillCounters(s.Metrics))
			if err := s.InsertAll(ctx, &countPairs{counts}); err != nil {
				return n, err
			}
			sorted, err := s.Iterator(ctx)
			if err != nil {
				return n, err
			}
			defer sorted.Close()
			var c countCheck
			for sorted.Next() {
				if err := c.add(sorted.Value().Key); err != nil {
					return n, err
				}
			}
			if err := sorted.Err(); err != nil {
				return n, err
			}
			return n, c.done(n)
		},
	}
}

// countPairs turns the count map's output into the sorter's input.
type countPairs struct {
	collection.Iterator[collection.Pair[string, int64]]
}

func (c *countPairs) Value() collection.Pair[countKey, struct{}] {
	p := c.Iterator.Value()
	return collection.Pair[countKey, struct{}]{Key: countKey{Count: p.Value, Key: p.Key}}
}
