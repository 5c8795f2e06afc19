package workload

import (
	"context"
	"fmt"

	"github.com/spillway/spillway/bench/harness"
	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// sumAgg counts records per key: Spark's reduceByKey(_ + _) over (key, 1) pairs.
var sumAgg = collection.Aggregator[string, int64, int64]{
	CreateCombiner: func(v int64) int64 { return v },
	MergeValue:     func(c, v int64) int64 { return c + v },
	MergeCombiners: func(a, b int64) int64 { return a + b },
}

// aggResult is what an aggregation run checks: every record counted once, and (once the
// baseline ran) the same number of distinct keys.
type aggResult struct {
	distinct *int64 // set by the baseline
}

func (a aggResult) check(records, sum, distinct int64) error {
	if sum != records {
		return fmt.Errorf("workload: aggregation counted %d records, want %d", sum, records)
	}
	if *a.distinct != 0 && distinct != *a.distinct {
		return fmt.Errorf("workload: aggregation found %d distinct keys, the baseline %d", distinct, *a.distinct)
	}
	*a.distinct = distinct
	return nil
}

func aggregation(name, desc string, keys keyDist, p Params) Workload {
	res := aggResult{distinct: new(int64)}
	n := p.Records
	return Workload{
		Name:        name,
		Description: desc,
		Strategies:  []harness.Strategy{{}, {NoCompress: true}},
		Baselines: []Baseline{{Name: "map", Body: func(ctx context.Context, env *harness.Env) (int64, error) {
			m := map[string]int64{}
			var i int64
			for k := range keys(p.Seed, n) {
				m[keyString(k)]++
				if err := tick(ctx, env, i); err != nil {
					return i, err
				}
				i++
			}
			var sum int64
			for _, c := range m {
				sum += c
			}
			return n, res.check(n, sum, int64(len(m)))
		}}},
		Run: func(ctx context.Context, env *harness.Env) (_ int64, err error) {
			tm := env.NewTask(1)
			defer tm.Close()
			scope := env.Disk.NewScope()
			defer scope.Close()
			m, err := collection.NewExternalAppendOnlyMap(tm, scope, sumAgg, storage.StringCodec{}, storage.VarintCodec[int64]{},
				collection.ExternalMapConfig[string]{SpillConfig: p.spillConfig(env)})
			if err != nil {
				return 0, err
			}
			defer m.Close()
			env.AddCounters(spillCounters(m.Metrics))
			var i int64
			for k := range keys(p.Seed, n) {
				if err := m.Insert(ctx, keyString(k), 1); err != nil {
					return i, err
				}
				if err := tick(ctx, env, i); err != nil {
					return i, err
				}
				i++
			}
			it, err := m.Iterator(ctx)
			if err != nil {
				return n, err
			}
			defer it.Close()
			var sum, distinct int64
			for it.Next() {
				sum += it.Value().Value
				distinct++
			}
			if err := it.Err(); err != nil {
				return n, err
			}
			return n, res.check(n, sum, distinct)
		},
	}
}

// spillCounters reads a spillable collection's metrics as harness counters.
func spillCounters(metrics func() collection.SpillMetrics) func() harness.Counters {
	return func() harness.Counters {
		m := metrics()
		return harness.Counters{Spills: m.Spills + m.ForcedSpills, SpillBytes: m.DiskBytesSpilled}
	}
}
