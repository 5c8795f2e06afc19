package wordcount

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/executor"
)

// TestRunEqualsModel: the shuffle-based count equals the Go-map model, with unlimited memory
// and with a budget small enough that map-side sorters and reduce-side maps spill; nothing is
// left accounted or on disk.
func TestRunEqualsModel(t *testing.T) {
	text := Config{Words: 500_000, Vocabulary: 400_000, Seed: 3}
	tx, err := NewText(text)
	require.NoError(t, err)
	want := Count(tx)
	for _, budget := range []int64{executor.Unlimited, executor.MinBudget} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a safety net only
		defer cancel()
		ex, err := executor.New(executor.Config{Budget: budget, Cores: 2, Dirs: []string{t.TempDir()}})
		require.NoError(t, err)
		res, err := Run(ctx, ex, JobConfig{Text: text, Partitions: 2, CollectCounts: true})
		require.NoError(t, err)
		t.Logf("budget %d: %d spills, %d bytes spilled, peak task %d", budget, res.Spills, res.MemoryBytesSpilled, res.PeakTaskExecution)
		require.Equal(t, want, res.Counts)
		require.EqualValues(t, len(want), res.Distinct)
		require.Len(t, res.Top, 10)
		require.Equal(t, Word(0), res.Top[0].Word)
		require.Equal(t, want[Word(0)], res.Top[0].Count)
		if budget != executor.Unlimited {
			require.Positive(t, res.Spills, "the small budget must make the aggregations spill")
		}
		require.NoError(t, ex.Leaks())
		require.NoError(t, ex.Close())
	}
}

func TestJobConfigValidate(t *testing.T) {
	require.ErrorContains(t, JobConfig{Partitions: -1}.Validate(), "Partitions -1")
	require.ErrorContains(t, JobConfig{Top: -1}.Validate(), "Top -1")
	require.ErrorContains(t, JobConfig{Text: Config{Skew: 1}}.Validate(), "Skew 1")
	require.NoError(t, JobConfig{}.Validate())
}
