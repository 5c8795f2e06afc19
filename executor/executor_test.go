package executor

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/shuffle"
)

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Budget: MinBudget}, ""},
		{Config{Budget: -1}, "Budget -1 is negative"},
		{Config{Budget: 1 << 20}, "Budget 1.0 MiB is below the minimum 4.0 MiB"},
		{Config{Cores: -2}, "Cores -2"},
		{Config{OffHeap: -3}, "OffHeap -3"},
	} {
		err := tt.cfg.Validate()
		if tt.want == "" {
			require.NoError(t, err)
			continue
		}
		require.ErrorContains(t, err, tt.want)
		_, err = New(tt.cfg)
		require.ErrorContains(t, err, tt.want)
	}
	err := Config{Budget: -1, Cores: -2, OffHeap: -3, MaxResultSize: -4, BroadcastThreshold: -5}.Validate() // every field is reported
	for _, want := range []string{"Budget -1", "Cores -2", "OffHeap -3", "MaxResultSize -4", "BroadcastThreshold -5"} {
		require.ErrorContains(t, err, want)
	}
}

func TestNewSizesMemoryFromTheBudget(t *testing.T) {
	ex, err := New(Config{Budget: 64 << 20, Cores: 3, Dirs: []string{t.TempDir()}})
	require.NoError(t, err)
	pool := ex.Memory.Metrics().Pools[memory.OnHeap]
	require.Equal(t, int64(64<<20), pool.Max, "the whole budget is unified memory")
	require.Equal(t, int64(32<<20), pool.StorageRegion)
	require.Equal(t, 3, ex.Config().Cores)
	require.Equal(t, 3, ex.Runner.Config().Cores)
	require.NoError(t, ex.Runner.Run(context.Background(), 2, func(_ context.Context, tc *shuffle.TaskContext, _ int) error {
		if tc.Blocks() != ex.Blocks || tc.Locks() != ex.Blocks.BlockInfo() {
			return errors.New("tasks do not reach the executor's block manager and its lock table")
		}
		return nil
	}))
	require.NoError(t, ex.Leaks())
	dirs := ex.Disk.LocalDirs()
	require.NotEmpty(t, dirs)
	require.NoError(t, ex.Close())
	for _, d := range dirs {
		_, err := os.Stat(d)
		require.ErrorIs(t, err, os.ErrNotExist, "local dir %s left behind", d)
	}

	unlimited, err := New(Config{Dirs: []string{t.TempDir()}})
	require.NoError(t, err)
	require.Greater(t, unlimited.Memory.Metrics().Pools[memory.OnHeap].Max, int64(64<<20))
	require.NoError(t, unlimited.Close())
}

func TestShuffleConfigScales(t *testing.T) {
	require.Equal(t, shuffle.Config{}, ShuffleConfig(Unlimited, 2))
	tests := []struct {
		budget                     int64
		cores                      int
		inFlight, threshold, batch int64
	}{
		{4 << 20, 2, 128 << 10, 64 << 10, 32 << 10},
		{64 << 20, 2, 2 << 20, 1 << 20, 512 << 10},
		{8 << 30, 4, shuffle.DefaultMaxBytesInFlight, collection.DefaultInitialThreshold, collection.DefaultSpillBatchBytes},
		{MinBudget, 64, 64 << 10, 64 << 10, 16 << 10},
		{16 << 20, 0, 1 << 20, 512 << 10, 256 << 10}, // cores < 1 counts as 1
	}
	for _, tt := range tests {
		c := ShuffleConfig(tt.budget, tt.cores)
		require.NoError(t, c.Validate())
		require.Equal(t, tt.inFlight, c.MaxBytesInFlight, "budget %d cores %d", tt.budget, tt.cores)
		require.Equal(t, tt.inFlight, c.MaxBlockSizeFetchToMem)
		require.Equal(t, tt.threshold, c.Spill.InitialThreshold)
		require.Equal(t, tt.batch, int64(c.Spill.BatchBytes))
	}
}
