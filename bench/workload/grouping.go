package workload

import (
	"context"
	"fmt"
	"iter"
	"math/rand/v2"
	"strconv"

	"github.com/spillway/spillway/bench/harness"
	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// hugeKey is the key that gets half of the grouping workload's records.
const hugeKey = "user-HUGE"

// groupRecords generates n (key, value) records: every other record has hugeKey, the others one
// of n/8 uniform keys; values are random 13-character strings.
func groupRecords(seed uint64, n int64) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		r := rand.New(rand.NewPCG(seed, 4))
		d := uint64(max(n/8, 1))
		for i := range n {
			k := hugeKey
			if i%2 == 1 {
				k = keyString(r.Uint64N(d))
			}
			if !yield(k, strconv.FormatUint(r.Uint64()|1<<63, 36)) {
				return
			}
		}
	}
}

// groupCheck verifies grouped output: every value once, and the huge key's group complete.
type groupCheck struct {
	values, huge, groups int64
}

func (c *groupCheck) group(key string, values int64) {
	c.groups++
	c.values += values
	if key == hugeKey {
		c.huge = values
	}
}

func (c *groupCheck) done(n int64) error {
	if c.values != n || c.huge != (n+1)/2 {
		return fmt.Errorf("workload: grouping saw %d values with %d under the huge key, want %d and %d", c.values, c.huge, n, (n+1)/2)
	}
	return nil
}

func grouping(p Params) Workload {
	n := p.Records
	return Workload{
		Name:        "group-hugekey",
		Description: "group values by key, half of all records under one key (ExternalGrouper)",
		Strategies:  []harness.Strategy{{}, {NoCompress: true}},
		Baselines: []Baseline{{Name: "map of slices", Body: func(ctx context.Context, env *harness.Env) (int64, error) {
			groups := map[string][]string{}
			var i int64
			for k, v := range groupRecords(p.Seed, n) {
				groups[k] = append(groups[k], v)
				if err := tick(ctx, env, i); err != nil {
					return i, err
				}
				i++
			}
			var c groupCheck
			for k, vs := range groups {
				c.group(k, int64(len(vs)))
			}
			return n, c.done(n)
		}}},
		Run: func(ctx context.Context, env *harness.Env) (int64, error) {
			tm := env.NewTask(1)
			defer tm.Close()
			scope := env.Disk.NewScope()
			defer scope.Close()
			g, err := collection.NewExternalGrouper(tm, scope, storage.StringCodec{}, storage.StringCodec{},
				collection.ExternalMapConfig[string]{SpillConfig: p.spillConfig(env)})
			if err != nil {
				return 0, err
			}
			defer g.Close()
			env.AddCounters(spillCounters(g.Metrics))
			var i int64
			for k, v := range groupRecords(p.Seed, n) {
				if err := g.Insert(ctx, k, v); err != nil {
					return i, err
				}
				if err := tick(ctx, env, i); err != nil {
					return i, err
				}
				i++
			}
			it, err := g.Iterator(ctx)
			if err != nil {
				return n, err
			}
			defer it.Close()
			var c groupCheck
			for it.Next() {
				grp := it.Value()
				var count int64
				for grp.Values.Next() {
					count++
				}
				if err := grp.Values.Err(); err != nil {
					return n, err
				}
				c.group(grp.Key, count)
			}
			if err := it.Err(); err != nil {
				return n, err
			}
			return n, c.done(n)
		},
	}
}
