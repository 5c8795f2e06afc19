package memory

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// An IOConsumer acquires in Strict accounting and grants without acquiring under Spark's
// allowances; it never spills, and its merge share is half the task's fair share.
func TestIOConsumer(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		acc      Accounting
		acquired int64 // the pool's execution memory after Acquire(3 MiB)
	}{
		{Strict, 3 * mib},
		{SparkAllowances, 0},
	} {
		t.Run(tc.acc.String(), func(t *testing.T) {
			m, err := NewUnifiedManager(Config{SystemMemory: 8 * mib, ReservedMemory: NoReservedMemory, Fraction: 1,
				StorageFraction: 0.5, NumCores: 1, Accounting: tc.acc})
			require.NoError(t, err)
			tm := NewTaskManager(m, 0, TaskConfig{})
			var io IOConsumer
			io.Init(tm, "sorter")
			require.Equal(t, "sorter spill I/O", io.String())
			require.Equal(t, OnHeap, io.Mode())
			require.Equal(t, tc.acc == Strict, io.Strict())
			require.Same(t, tm, io.TaskManager())
			got, err := io.Acquire(context.Background(), 3*mib)
			require.NoError(t, err)
			require.EqualValues(t, 3*mib, got, "granted either way")
			require.Equal(t, tc.acquired, m.ExecutionUsed())
			require.Equal(t, tc.acquired, io.Used())
			released, err := io.Spill(mib, nil)
			require.NoError(t, err)
			require.Zero(t, released, "open files' buffers cannot be given back")
			require.EqualValues(t, 4*mib, io.MergeShare(), "half of the one task's share, the whole 8 MiB")
			io.Release(got)
			require.Zero(t, m.ExecutionUsed())
			require.Zero(t, tm.Close())
		})
	}
}
