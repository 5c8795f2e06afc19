package stress

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
)

// TestCheckersDetect proves the pool checks can fail: each case breaks one figure of a
// consistent snapshot.
func TestCheckersDetect(t *testing.T) {
	good := func() memory.Metrics {
		var s memory.Metrics
		s.Pools[memory.OnHeap] = memory.PoolMetrics{
			Max: 1000, StorageRegion: 500, ExecutionPoolSize: 600, ExecutionUsed: 300,
			StoragePoolSize: 400, StorageUsed: 100, Tasks: map[memory.TaskID]int64{1: 200, 2: 100},
		}
		s.Pools[memory.OffHeap] = memory.PoolMetrics{Tasks: map[memory.TaskID]int64{}}
		s.Waits, s.SpillsRequested = 3, 4
		return s
	}
	require.Empty(t, CheckPools(good(), 2))
	require.Empty(t, CheckCounters(good(), good()))

	tests := []struct {
		name   string
		want   string
		mutate func(s *memory.Metrics)
	}{
		{"pool sizes do not add up", "invariant 1", func(s *memory.Metrics) { s.Pools[memory.OnHeap].StoragePoolSize = 300 }},
		{"execution above its pool", "execution used 700", func(s *memory.Metrics) {
			s.Pools[memory.OnHeap].ExecutionUsed = 700
			s.Pools[memory.OnHeap].Tasks[1] = 600
		}},
		{"storage above its pool", "storage used 401", func(s *memory.Metrics) { s.Pools[memory.OnHeap].StorageUsed = 401 }},
		{"negative storage", "storage used -1", func(s *memory.Metrics) { s.Pools[memory.OffHeap].StorageUsed = -1 }},
		{"entries do not sum", "sum to 299", func(s *memory.Metrics) { s.Pools[memory.OnHeap].Tasks[2] = 99 }},
		{"negative entry", "holds -1 bytes", func(s *memory.Metrics) {
			s.Pools[memory.OnHeap].Tasks[2] = -1
			s.Pools[memory.OnHeap].Tasks[3] = 101
		}},
		{"task above maxPool", "invariant 3", func(s *memory.Metrics) {
			// maxPool = 1000 − min(900, 950) = 100. A consistent snapshot cannot break
			// invariant 3 alone (maxPool ≥ max − storage used ≥ execution used), so storage
			// is over its pool too.
			s.Pools[memory.OnHeap] = memory.PoolMetrics{
				Max: 1000, StorageRegion: 950, ExecutionPoolSize: 101, ExecutionUsed: 101,
				StoragePoolSize: 899, StorageUsed: 900, Tasks: map[memory.TaskID]int64{1: 101},
			}
		}},
		{"too many waiting", "3 tasks waiting", func(s *memory.Metrics) { s.Waiting = 3 }},
		{"negative counter", "negative counter", func(s *memory.Metrics) { s.EvictedBytes = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.mutate(&s)
			require.Contains(t, strings.Join(CheckPools(s, 2), "\n"), tt.want)
		})
	}

	t.Run("counter went down", func(t *testing.T) {
		s := good()
		s.SpillsRequested--
		require.NotEmpty(t, CheckCounters(good(), s))
	})
	t.Run("idle", func(t *testing.T) {
		var idle memory.Metrics
		require.Empty(t, CheckIdle(idle))
		require.NotEmpty(t, CheckIdle(good()))
		idle.Waiting = 1
		require.NotEmpty(t, CheckIdle(idle))
	})
}
