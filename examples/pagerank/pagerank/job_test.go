package pagerank

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/examples/pagerank/graphgen"
	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/storage"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a safety net only
	t.Cleanup(cancel)
	return ctx
}

func newExecutor(t *testing.T, cfg executor.Config) *executor.Executor {
	t.Helper()
	if cfg.Dirs == nil {
		cfg.Dirs = []string{t.TempDir()}
	}
	ex, err := executor.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, ex.Close()) })
	return ex
}

// requireRanksEqual checks ranks against Plain's to 1e-9 (relative to ranks above 1).
func requireRanksEqual(t *testing.T, want, got map[int64]float64) {
	t.Helper()
	require.Len(t, got, len(want))
	for v, r := range want {
		g, ok := got[v]
		require.True(t, ok, "vertex %d has no rank", v)
		require.InDelta(t, r, g, 1e-9*max(1, r), "vertex %d", v)
	}
}

// TestRunEqualsPlain: the job's ranks equal Plain's with unlimited memory and with a small
// budget, for every kind of storage level of the cached links; links are computed from the
// links shuffle once per partition whenever the level can hold them (disk always can, and
// unlimited memory can), and again on every cache miss otherwise.
func TestRunEqualsPlain(t *testing.T) {
	const iterations, parts = 3, 4
	graph := graphgen.Config{Vertices: 2000, Edges: 40_000, Seed: 1}
	g, err := graphgen.New(graph)
	require.NoError(t, err)
	want := Plain(g.All(), iterations)
	tests := []struct {
		level    string
		budget   int64
		onceOnly bool // links computed once per partition
	}{
		{"MEMORY_ONLY", executor.Unlimited, true},
		{"MEMORY_ONLY", executor.MinBudget, false},
		{"MEMORY_AND_DISK", executor.MinBudget, true},
		{"DISK_ONLY", executor.MinBudget, true},
		{"MEMORY_ONLY_SER", executor.MinBudget, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.level, tt.budget), func(t *testing.T) {
			level, err := storage.ParseLevel(tt.level)
			require.NoError(t, err)
			ex := newExecutor(t, executor.Config{Budget: tt.budget, Cores: 2})
			res, err := Run(testCtx(t), ex, Config{Graph: graph, Iterations: iterations, Partitions: parts, Level: level, CollectRanks: true})
			require.NoError(t, err)
			t.Logf("%+v", res.Stats)
			requireRanksEqual(t, want, res.Ranks)
			require.EqualValues(t, len(want), res.Vertices)
			require.GreaterOrEqual(t, res.Stats.LinksComputed, int64(parts))
			require.LessOrEqual(t, res.Stats.LinksComputed, int64(parts*iterations))
			if tt.onceOnly {
				require.Equal(t, int64(parts), res.Stats.LinksComputed)
			}
			require.Equal(t, iterations*parts+2*parts, res.Stats.Tasks)
			require.NoError(t, ex.Leaks())
		})
	}
}
