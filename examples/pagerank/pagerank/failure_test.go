package pagerank

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/examples/pagerank/graphgen"
	"github.com/spillway/spillway/executor"
)

var errInjected = errors.New("injected map failure")

// TestRunFailingTask: an error in a map function fails the run with that error, and the run
// leaves no memory accounted and no files, whether it failed while writing the links shuffle or
// while reading a join map into a sorter in a later iteration, with earlier shuffles on disk.
func TestRunFailingTask(t *testing.T) {
	graph := graphgen.Config{Vertices: 5000, Edges: 60_000, Seed: 4}
	tests := []struct {
		name  string
		phase Phase
		iter  int
	}{
		{"edges", PhaseEdges, 0},
		{"contribute iteration 2", PhaseContribute, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := newExecutor(t, executor.Config{Budget: 4 << 20, Cores: 2})
			fault := func(ev Event) error {
				if ev.Phase == tt.phase && ev.Iteration == tt.iter && ev.Partition == 1 && ev.Records == 5000 {
					return errInjected
				}
				return nil
			}
			_, err := Run(testCtx(t), ex, Config{Graph: graph, Iterations: 3, Partitions: 3, Fault: fault})
			require.ErrorIs(t, err, errInjected)
			require.NoError(t, ex.Leaks())
			require.Zero(t, ex.Memory.ExecutionUsed())
			require.Zero(t, ex.Memory.StorageUsed())
			require.Zero(t, ex.Disk.Files())
		})
	}
}

// TestRunCancelled: cancelling the run's context in the middle of an iteration returns
// context.Canceled without starting another stage, and leaves nothing behind.
func TestRunCancelled(t *testing.T) {
	graph := graphgen.Config{Vertices: 5000, Edges: 60_000, Seed: 5}
	ex := newExecutor(t, executor.Config{Budget: 4 << 20, Cores: 2})
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var once sync.Once
	var after atomic.Int64 // phase entries after the cancellation
	var cancelled atomic.Bool
	obs := &Observer{Every: 1000, Progress: func(ev Event) {
		if cancelled.Load() && ev.Records == 0 && ev.Iteration > 2 {
			after.Add(1)
		}
		if ev.Phase == PhaseJoin && ev.Iteration == 2 && ev.Records >= 1000 {
			once.Do(func() { cancel(); cancelled.Store(true) })
		}
	}}
	_, err := Run(ctx, ex, Config{Graph: graph, Iterations: 5, Observer: obs})
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, cancelled.Load())
	require.Zero(t, after.Load(), "a stage started after the cancellation")
	require.NoError(t, ex.Leaks())
	require.Zero(t, ex.Memory.StorageUsed())
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Iterations: -1}, "Iterations -1"},
		{Config{Partitions: -1}, "Partitions -1"},
		{Config{Top: -1}, "Top -1"},
		{Config{Graph: graphgen.Config{Skew: 0.5}}, "Config.Graph"},
		{Config{Iterations: -1, Top: -1, Graph: graphgen.Config{Skew: 0.5}}, "Iterations -1"}, // every field is reported:
		{Config{Iterations: -1, Top: -1, Graph: graphgen.Config{Skew: 0.5}}, "Top -1"},
		{Config{Iterations: -1, Top: -1, Graph: graphgen.Config{Skew: 0.5}}, "Config.Graph"},
	} {
		require.ErrorContains(t, tt.cfg.Validate(), tt.want)
	}
	require.NoError(t, Config{}.Validate())
	require.NoError(t, Config{Edges: []graphgen.Edge{}, Graph: graphgen.Config{Skew: 0.5}}.Validate(), "Graph is unused with Edges")
}
