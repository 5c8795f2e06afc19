package workload

import (
	"context"
	"fmt"
	"strings"

	"github.com/spillway/spillway/bench/baseline"
	"github.com/spillway/spillway/bench/harness"
	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// sortCheck verifies a sorted output stream: keys in order, every record once.
type sortCheck struct {
	prev  string
	count int64
	sum   int64
}

func (c *sortCheck) add(r baseline.Record) error {
	if c.count > 0 && r.Key < c.prev {
		return fmt.Errorf("workload: sort output out of order at record %d: %q after %q", c.count, r.Key, c.prev)
	}
	c.prev = r.Key
	c.count++
	c.sum += r.Value
	return nil
}

func (c *sortCheck) done(n int64) error {
	if c.count != n || c.sum != n*(n-1)/2 {
		return fmt.Errorf("workload: sort output has %d records (value sum %d), want %d (%d)", c.count, c.sum, n, n*(n-1)/2)
	}
	return nil
}

func sorting(p Params) Workload {
	n := p.Records
	return Workload{
		Name:        "sort",
		Description: "sort records by a random 13-byte string key (ExternalSorter with an ordering)",
		Strategies:  []harness.Strategy{{}, {NoCompress: true}},
		Baselines: []Baseline{
			{Name: "slices.SortFunc", Body: func(_ context.Context, env *harness.Env) (int64, error) {
				var c sortCheck
				if err := baseline.SortInMemory(newRecordGen(env, p.Seed, n).All(), c.add); err != nil {
					return n, err
				}
				return n, c.done(n)
			}},
			{Name: "sort-run-merge", Body: func(ctx context.Context, env *harness.Env) (int64, error) {
				var c sortCheck
				st, err := baseline.ExternalSort(ctx, env.Dir, env.Budget, newRecordGen(env, p.Seed, n).All(), c.add)
				env.AddCounters(func() harness.Counters { return harness.Counters{Spills: int64(st.Runs), SpillBytes: st.Bytes} })
				if err != nil {
					return n, err
				}
				return n, c.done(n)
			}},
		},
		Run: func(ctx context.Context, env *harness.Env) (int64, error) {
			tm := env.NewTask(1)
			defer tm.Close()
			scope := env.Disk.NewScope()
			defer scope.Close()
			s, err := collection.NewExternalSorter(tm, scope, storage.StringCodec{}, storage.VarintCodec[int64]{},
				collection.SorterConfig[string, int64, int64]{
					Ordering: strings.Compare,
					Spill:    p.spillConfig(env),
				})
			if err != nil {
				return 0, err
			}
			defer s.Close()
			env.AddCounters(spillCounters(s.Metrics))
			if err := s.InsertAll(ctx, pairs{newRecordGen(env, p.Seed, n)}); err != nil {
				return n, err
			}
			it, err := s.Iterator(ctx)
			if err != nil {
				return n, err
			}
			defer it.Close()
			var c sortCheck
			for it.Next() {
				if err := c.add(baseline.Record{Key: it.Value().Key, Value: it.Value().Value}); err != nil {
					return n, err
				}
			}
			if err := it.Err(); err != nil {
				return n, err
			}
			return n, c.done(n)
		},
	}
}
