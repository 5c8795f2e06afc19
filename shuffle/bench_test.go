package shuffle

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
)

// BenchmarkShuffle runs a whole shuffle (map stage and reduce stage) of 4 maps × 50,000 (int,
// int64) records over 10,000 keys into 16 partitions, with each writer, with and without
// aggregation; memory is ample, so nothing spills.
func BenchmarkShuffle(b *testing.B) {
	inputs := make([][]collection.Pair[int, int64], 4)
	records := 0
	for m := range inputs {
		inputs[m] = genRecords(1, m, 50000, 10000)
		records += len(inputs[m])
	}
	for _, c := range []struct {
		name    string
		bypass  int
		agg     bool
		mapSide bool
	}{
		{"bypass", 0, false, false},
		{"bypass/reduce-aggregate", 0, true, false},
		{"sort", NoBypassMerge, false, false},
		{"sort/map-side-combine", NoBypassMerge, true, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := newTestEnv(b, 512<<20, RunnerConfig{Shuffle: Config{BypassMergeThreshold: c.bypass}})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				dep := intDep(e.runner, 16, c.agg, c.mapSide, false)
				_, err := RunMapStage(ctx, e.runner, dep, len(inputs), func(_ context.Context, _ *TaskContext, m int) (collection.Iterator[collection.Pair[int, int64]], error) {
					return collection.SliceIterator(inputs[m]), nil
				})
				require.NoError(b, err)
				err = e.runner.Run(ctx, 16, func(ctx context.Context, tc *TaskContext, p int) error {
					r, err := NewReader(ctx, tc, dep, p)
					if err != nil {
						return err
					}
					defer r.Close()
					for r.Next() {
					}
					return r.Err()
				})
				require.NoError(b, err)
				require.NoError(b, e.runner.registry.UnregisterShuffle(dep.ShuffleID))
			}
			b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
