package collection

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
)

// fakeSpillable is a collection that only has a size: what SP-04 needs to pin the arithmetic of
// the spill policy.
type fakeSpillable struct {
	sp         Spillable
	spills     int
	forced     int
	forceFails error
	empty      bool // forceSpill finds nothing to spill
}

func newFakeSpillable(tm *memory.TaskManager, cfg SpillConfig) *fakeSpillable {
	f := &fakeSpillable{}
	f.sp.Init(tm, f, "fake", cfg, func() (bool, int64, error) {
		if f.forceFails != nil {
			return false, 0, f.forceFails
		}
		if f.empty {
			return false, 0, nil
		}
		f.forced++
		return true, 100, nil
	})
	return f
}

func (f *fakeSpillable) Spill(size int64, trigger memory.Consumer) (int64, error) {
	return f.sp.Spill(size, trigger)
}
func (f *fakeSpillable) Used() int64       { return f.sp.Used() }
func (f *fakeSpillable) Mode() memory.Mode { return f.sp.Mode() }

// maybeSpill calls MaybeSpill at the given element count as a collection would (lock held).
func (f *fakeSpillable) maybeSpill(t *testing.T, elementsRead, size int64) bool {
	t.Helper()
	f.sp.Lock()
	defer f.sp.Unlock()
	f.sp.elementsRead = elementsRead
	spilled, err := f.sp.MaybeSpill(context.Background(), size, func() (int64, error) {
		f.spills++
		return 10, nil
	})
	require.NoError(t, err)
	return spilled
}

// TestSP04MaybeSpillArithmetic is SP-04 (maybeSpill arithmetic, derived from Spark's
// Spillable.maybeSpill in core/src/main/scala/org/apache/spark/util/collection/Spillable.scala). It pins Spark's policy, free 5 MiB threshold included, so
// its tasks run with memory.SparkAllowances; TestStrictMaybeSpillArithmetic is the Strict one.
func TestSP04MaybeSpillArithmetic(t *testing.T) {
	const mib = 1 << 20
	newTestTask := func(t *testing.T, budget int64) *memory.TaskManager {
		return newTestTaskAccounting(t, budget, memory.SparkAllowances)
	}
	t.Run("grant, then spill when nothing more is granted", func(t *testing.T) {
		tm := newTestTask(t, 3*mib)
		f := newFakeSpillable(tm, SpillConfig{})
		require.Equal(t, 5*int64(mib), f.sp.Threshold())

		// Step 1: 6 MiB at 32 elements asks for 2×6−5 = 7 MiB, gets 3 MiB: threshold 8 MiB.
		require.False(t, f.maybeSpill(t, 32, 6*mib))
		require.Equal(t, int64(8*mib), f.sp.Threshold())
		require.Equal(t, int64(3*mib), f.Used())
		require.Equal(t, 0, f.spills)

		// Step 2: 9 MiB at 64 elements asks for 18−8 = 10 MiB, gets 0: spills.
		require.True(t, f.maybeSpill(t, 64, 9*mib))
		require.Equal(t, 1, f.spills)
		m := f.sp.Metrics()
		require.Equal(t, int64(1), m.Spills)
		require.Equal(t, int64(9*mib), m.MemoryBytesSpilled)
		require.Equal(t, int64(10), m.DiskBytesSpilled)
		require.Equal(t, int64(5*mib), f.sp.Threshold())
		require.Zero(t, f.Used())
		require.Zero(t, f.sp.ElementsRead())
	})
	t.Run("no check between multiples of 32", func(t *testing.T) {
		tm := newTestTask(t, 3*mib)
		f := newFakeSpillable(tm, SpillConfig{})
		require.False(t, f.maybeSpill(t, 33, 100*mib))
		require.Zero(t, f.Used())
		require.False(t, f.maybeSpill(t, 32, 4*mib), "below the free threshold nothing is asked")
		require.Zero(t, f.Used())
	})
	t.Run("force-spill threshold by elements", func(t *testing.T) {
		tm := newTestTask(t, 3*mib)
		f := newFakeSpillable(tm, SpillConfig{ForceSpillElements: 10})
		require.False(t, f.maybeSpill(t, 10, 1))
		require.True(t, f.maybeSpill(t, 11, 1), "11 elements since the last spill")
		require.Equal(t, 1, f.spills)
	})
	t.Run("force-spill threshold by bytes", func(t *testing.T) {
		tm := newTestTask(t, 3*mib)
		f := newFakeSpillable(tm, SpillConfig{ForceSpillBytes: 1000})
		require.False(t, f.maybeSpill(t, 3, 1000))
		require.True(t, f.maybeSpill(t, 3, 1001))
	})
	t.Run("TaskManager-triggered spill", func(t *testing.T) {
		tm := newTestTask(t, 3*mib)
		f := newFakeSpillable(tm, SpillConfig{})
		require.False(t, f.maybeSpill(t, 32, 6*mib))
		require.Equal(t, int64(3*mib), f.Used())

		// A self-triggered request returns 0 and spills nothing.
		released, err := f.Spill(1, f)
		require.NoError(t, err)
		require.Zero(t, released)
		require.Zero(t, f.forced)

		// Another consumer's request makes the TaskManager call Spill(n, other): forceSpill runs
		// and threshold − initial is released.
		other := newTestConsumer(tm)
		require.Equal(t, int64(2*mib), other.use(t, 2*mib))
		require.Equal(t, 1, f.forced)
		require.Zero(t, f.Used())
		require.Equal(t, int64(5*mib), f.sp.Threshold())
		m := f.sp.Metrics()
		require.Equal(t, int64(1), m.ForcedSpills)
		require.Zero(t, m.Spills, "forced spills are not counted in Spills, as in Spark")
		require.Equal(t, int64(3*mib), m.MemoryBytesSpilled)
		require.Equal(t, int64(100), m.DiskBytesSpilled)
		other.free(2 * mib)
	})
	t.Run("forceSpill with nothing to spill releases nothing", func(t *testing.T) {
		tm := newTestTask(t, 3*mib)
		f := newFakeSpillable(tm, SpillConfig{})
		require.False(t, f.maybeSpill(t, 32, 6*mib))
		f.empty = true
		released, err := f.Spill(1<<30, nil)
		require.NoError(t, err)
		require.Zero(t, released)
		require.Equal(t, int64(3*mib), f.Used())
		f.sp.Lock()
		f.sp.ReleaseMemory()
		f.sp.Unlock()
	})
	t.Run("forceSpill error is wrapped", func(t *testing.T) {
		tm := newTestTask(t, 3*mib)
		f := newFakeSpillable(tm, SpillConfig{})
		boom := errors.New("boom")
		f.forceFails = boom
		_, err := f.Spill(1, nil)
		require.ErrorIs(t, err, boom)
		require.ErrorContains(t, err, "force spilling")
	})
	t.Run("spill error is wrapped", func(t *testing.T) {
		tm := newTestTask(t, 3*mib)
		f := newFakeSpillable(tm, SpillConfig{ForceSpillElements: 1})
		boom := errors.New("disk full")
		f.sp.Lock()
		f.sp.elementsRead = 5
		_, err := f.sp.MaybeSpill(context.Background(), 10, func() (int64, error) { return 0, boom })
		f.sp.Unlock()
		require.ErrorIs(t, err, boom)
	})
}

func TestSpillConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  SpillConfig
		want string
	}{
		{"zero is valid", SpillConfig{}, ""},
		{"no initial threshold", SpillConfig{InitialThreshold: NoInitialThreshold}, ""},
		{"negative threshold", SpillConfig{InitialThreshold: -2}, "InitialThreshold -2"},
		{"negative elements", SpillConfig{ForceSpillElements: -1}, "ForceSpillElements -1"},
		{"negative bytes", SpillConfig{ForceSpillBytes: -1}, "ForceSpillBytes -1"},
		{"negative batch", SpillConfig{BatchSize: -1}, "BatchSize -1"},
		{"huge batch bytes", SpillConfig{BatchBytes: 65 << 20}, "BatchBytes"},
		{"bad compression", SpillConfig{Compression: 9}, "Compression 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
	d := SpillConfig{InitialThreshold: NoInitialThreshold}.withDefaults()
	require.Zero(t, d.InitialThreshold)
	d = SpillConfig{}.withDefaults()
	require.Equal(t, DefaultInitialThreshold, d.InitialThreshold)
	require.Equal(t, DefaultSpillBatchSize, d.BatchSize)
}
