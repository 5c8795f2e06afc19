package workload

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/bench/harness"
)

// testParams are tiny inputs with a small free allowance, so that every Spillway run spills.
var testParams = Params{Records: 20_000, Seed: 7, InitialThreshold: 16 << 10}

const testBudget = 128 << 10

// TestEveryWorkloadRunsAndChecksItself runs each workload's baselines and default strategies at
// a tiny scale. Each body verifies its own output (counts, order, contents) and the harness
// checks that memory accounting returned to zero and no file was left behind.
func TestEveryWorkloadRunsAndChecksItself(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a safety net only
	defer cancel()
	cfg := harness.Config{TempDir: t.TempDir()}
	for _, w := range All(testParams) {
		t.Run(w.Name, func(t *testing.T) {
			require.NotEmpty(t, w.Baselines)
			require.GreaterOrEqual(t, len(w.Strategies), 2)
			for _, b := range w.Baselines {
				res, _, err := harness.Run(ctx, cfg, harness.Spec{Workload: w.Name, Baseline: b.Name, Budget: testBudget, Body: b.Body})
				require.NoError(t, err, b.Name)
				require.Equal(t, testParams.Records, res.Records)
			}
			for _, s := range w.Strategies {
				res, tl, err := harness.Run(ctx, cfg, harness.Spec{Workload: w.Name, Strategy: s, Budget: testBudget, Body: w.Run})
				require.NoError(t, err, s.Label())
				require.Equal(t, testParams.Records, res.Records)
				require.Positive(t, res.Spills+res.Evictions, "%s %s: the tiny budget must make it spill or evict", w.Name, s.Label())
				require.NotEmpty(t, tl.Series, "consumers appear in the timeline")
			}
		})
	}
}

func TestParamsValidate(t *testing.T) {
	require.NoError(t, testParams.Validate())
	require.ErrorContains(t, Params{}.Validate(), "Records must be positive, got 0")
}
