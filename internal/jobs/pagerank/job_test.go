package pagerank

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/internal/jobs/executor"
	"github.com/spillway/spillway/internal/jobs/graphgen"
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

func TestRunEqualsPlain(t *testing.T) {
	graph := graphgen.Config{Vertices: 2000, Edges: 20_000, Seed: 1}
	g, err := graphgen.New(graph)
	require.NoError(t, err)
	want := Plain(g.All(), 3)
	for _, budget := range []int64{executor.Unlimited, 4 << 20} {
		ex := newExecutor(t, executor.Config{Budget: budget, Cores: 2})
		res, err := Run(testCtx(t), ex, Config{Graph: graph, Iterations: 3, CollectRanks: true})
		require.NoError(t, err)
		t.Logf("budget %d: %+v", budget, res.Stats)
		requireRanksEqual(t, want, res.Ranks)
		require.NoError(t, ex.Leaks())
	}
}
