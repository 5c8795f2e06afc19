package workload

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/bench/harness"
	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/storage"
)

// testParams are tiny inputs with a small free allowance, so that every Spillway run spills.
var testParams = Params{Records: 100_000, Seed: 7, InitialThreshold: 16 << 10}

const testBudget = 1 << 20

// testSizes overrides testParams and testBudget where a workload needs another scale to spill or
// evict: cache needs blocks around the 1 MiB unroll threshold, pagerank the executor's minimum
// budget. Whether PageRank spills at this scale depends on how its two concurrent tasks
// interleave, so its runs are checked for their ranks (against the baseline, in the body), for
// accounted memory and for the consumers the harness sampled, not for spills; the job's spill
// paths are tested in examples/pagerank/pagerank.
var testSizes = map[string]struct {
	params Params
	budget int64
}{
	"cache":    {Params{Records: 100_000, Seed: 7}, 2 << 20},
	"pagerank": {Params{Records: 400_000, Seed: 7, Iterations: 2}, executor.MinBudget},
}

// TestEveryWorkloadRunsAndChecksItself runs each workload's baselines and default strategies at
// a tiny scale. Each body verifies its own output (counts, order, contents) and the harness
// checks that memory accounting returned to zero and no file was left behind.
func TestEveryWorkloadRunsAndChecksItself(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a safety net only
	defer cancel()
	cfg := harness.Config{TempDir: t.TempDir()}
	for _, w := range All(testParams) {
		t.Run(w.Name, func(t *testing.T) {
			params, budget := testParams, int64(testBudget)
			if s, ok := testSizes[w.Name]; ok {
				params, budget = s.params, s.budget
				for _, o := range All(params) {
					if o.Name == w.Name {
						w = o
					}
				}
			}
			require.GreaterOrEqual(t, budget, w.MinBudget)
			require.NotEmpty(t, w.Baselines)
			require.GreaterOrEqual(t, len(w.Strategies), 2)
			for _, b := range w.Baselines {
				res, _, err := harness.Run(ctx, cfg, w.BaselineSpec(b, budget))
				require.NoError(t, err, b.Name)
				require.Positive(t, res.Records)
			}
			for _, s := range w.Strategies {
				res, _, err := harness.Run(ctx, cfg, w.Spec(s, budget))
				require.NoError(t, err, s.Label())
				require.Positive(t, res.Records)
				level, err := s.StorageLevel()
				require.NoError(t, err)
				// Under strict accounting a MEMORY_ONLY partition that cannot be unrolled with its
				// growth copies is not cached at all (recomputed on read): nothing to evict.
				if w.Name != "pagerank" && level != storage.MemoryOnly {
					require.Positive(t, res.Spills+res.Evictions, "%s %s: the small budget must make it spill or evict", w.Name, s.Label())
				}
				// What the sampler records (consumers in the timeline, the peak accounted memory)
				// depends on when its ticks fall: a short run may hold memory between two ticks
				// only. The sampler itself is tested with fixed samples in bench/harness.
			}
		})
	}
}

func TestParamsValidate(t *testing.T) {
	require.NoError(t, testParams.Validate())
	require.ErrorContains(t, Params{}.Validate(), "Records must be positive, got 0")
	require.ErrorContains(t, Params{Records: 1, Iterations: -1}.Validate(), "Iterations must not be negative, got -1")
	require.ErrorContains(t, Params{Iterations: -1}.Validate(), "Records must be positive, got 0\nworkload: Iterations must not be negative")
}

// The cache workload's check notices a changed, missing or extra record.
func TestCacheCheckFindsWrongRecords(t *testing.T) {
	d := cacheData{seed: 3, records: 400} // four blocks of 100 records
	require.NoError(t, d.check(storage.SliceIterator(d.collect(nil, 3)), 3))
	vals := d.collect(nil, 3)
	vals[7].Value++
	require.ErrorContains(t, d.check(storage.SliceIterator(vals), 3), "record 7 of block rdd_1_1")
	require.ErrorContains(t, d.check(storage.SliceIterator(d.collect(nil, 3)[1:]), 3), "record 0 of block rdd_1_1")
	require.ErrorContains(t, d.check(storage.SliceIterator(d.collect(nil, 3)[:99]), 3), "has 99 records, want 100")
	require.ErrorContains(t, d.check(storage.SliceIterator(append(d.collect(nil, 3), vals[0])), 3), "more than its 100 records")
	require.ErrorContains(t, d.check(storage.SliceIterator(d.collect(nil, 2)), 3), "record 0 of block rdd_1_1")
}
