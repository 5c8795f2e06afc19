package collection

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/spillway/spillway/estimator"
	"github.com/stretchr/testify/require"
)

// largeDummy is SizeTrackerSuite's LargeDummyClass: an object holding an int[100].
type largeDummy struct{ arr []int32 }

func newLargeDummy() *largeDummy { return &largeDummy{arr: make([]int32, 100)} }

const (
	st01Inserts = 10_000
	st01Seed    = 123456789 // SizeTrackerSuite's seed for random strings
)

// checkEstimate asserts SizeTrackerSuite's accuracy contract for insert number i (1-based).
// Spark checks after every insert; to keep the race-enabled run short the full estimate is taken
// after each of the first 1000 inserts and then after every 16th (still about 1500 checks per
// case, spread over every sampling interval).
func checkEstimate(t *testing.T, i int, est int64, real func() int64) {
	t.Helper()
	if i > 1000 && i%16 != 0 {
		return
	}
	checkBounds(t, i, est, real())
}

func checkBounds(t *testing.T, i int, est, real int64) {
	t.Helper()
	e := 0.2
	if i <= 32 {
		e = 0.3
	}
	lo, hi := float64(real)*(1-e), float64(real)*(1+2*e)
	if !(float64(est) > lo && float64(est) < hi) {
		t.Fatalf("after %d inserts the estimate %d is outside (%.0f, %.0f) around the real size %d", i, est, lo, hi, real)
	}
}

// randomStrings returns the generator of SizeTrackerSuite's random-length strings: "a" repeated a
// random number of times in [lo, hi).
func randomStrings(lo, hi int) func() string {
	rng := rand.New(rand.NewPCG(st01Seed, 0))
	return func() string { return strings.Repeat("a", lo+rng.IntN(hi-lo)) }
}

// ST-01, SizeTrackerSuite "vector fixed size insertions", "vector variable size insertions" and
// "map fixed size insertions", "map variable size insertions", "map updates": after every insert
// the tracked estimate stays within the error bounds of a full estimate of the structure.
func TestSizeTracking_ST01_EstimateWithinBounds(t *testing.T) {
	vectorCase := func(t *testing.T, next func(i int) any) {
		v := NewSizeTrackingVector[any]()
		var est estimator.Estimator
		for i := 1; i <= st01Inserts; i++ {
			require.NoError(t, v.Append(next(i)))
			checkEstimate(t, i, v.EstimateSize(), func() int64 { return est.Estimate(v.data) })
		}
	}
	typedVector := func(t *testing.T, append func() error, size func() int64, real func() int64) {
		for i := 1; i <= st01Inserts; i++ {
			require.NoError(t, append())
			checkEstimate(t, i, size(), real)
		}
	}
	t.Run("vector/int64", func(t *testing.T) {
		v := NewSizeTrackingVector[int64]()
		var est estimator.Estimator
		typedVector(t, func() error { return v.Append(int64(v.Len())) }, v.EstimateSize, func() int64 { return est.Estimate(v.data) })
	})
	t.Run("vector/pair", func(t *testing.T) {
		v := NewSizeTrackingVector[[2]int64]()
		var est estimator.Estimator
		typedVector(t, func() error { return v.Append([2]int64{1, 2}) }, v.EstimateSize, func() int64 { return est.Estimate(v.data) })
	})
	t.Run("vector/largeDummy", func(t *testing.T) {
		v := NewSizeTrackingVector[*largeDummy]()
		var est estimator.Estimator
		typedVector(t, func() error { return v.Append(newLargeDummy()) }, v.EstimateSize, func() int64 { return est.Estimate(v.data) })
	})
	for _, r := range [][2]int{{0, 10}, {0, 100}, {90, 100}} {
		t.Run(fmt.Sprintf("vector/strings[%d,%d)", r[0], r[1]), func(t *testing.T) {
			gen := randomStrings(r[0], r[1])
			vectorCase(t, func(int) any { return gen() })
		})
	}

	mapCase := func(t *testing.T, insert func(m *SizeTrackingMap[int, any], i int)) {
		m := NewSizeTrackingMap[int, any](DefaultInitialCapacity, Hasher[int]{})
		var est estimator.Estimator
		for i := 1; i <= st01Inserts; i++ {
			insert(m, i)
			checkEstimate(t, i, m.EstimateSize(), func() int64 { return est.Estimate(m.AppendOnlyMap) })
		}
	}
	t.Run("map/int64", func(t *testing.T) {
		m := NewSizeTrackingMap[int, int64](DefaultInitialCapacity, Hasher[int]{})
		var est estimator.Estimator
		for i := 1; i <= st01Inserts; i++ {
			require.NoError(t, m.Update(i, int64(i)))
			checkEstimate(t, i, m.EstimateSize(), func() int64 { return est.Estimate(m.AppendOnlyMap) })
		}
	})
	t.Run("map/pair", func(t *testing.T) {
		mapCase(t, func(m *SizeTrackingMap[int, any], i int) { require.NoError(t, m.Update(i, [2]int64{1, 2})) })
	})
	t.Run("map/largeDummy", func(t *testing.T) {
		mapCase(t, func(m *SizeTrackingMap[int, any], i int) { require.NoError(t, m.Update(i, newLargeDummy())) })
	})
	t.Run("map/strings", func(t *testing.T) {
		gen := randomStrings(0, 100)
		mapCase(t, func(m *SizeTrackingMap[int, any], i int) { require.NoError(t, m.Update(i, gen())) })
	})
	t.Run("map/updates", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(st01Seed, 1))
		m := NewSizeTrackingMap[string, int](DefaultInitialCapacity, Hasher[string]{})
		var est estimator.Estimator
		for i := 1; i <= st01Inserts; i++ {
			_, err := m.ChangeValue(strings.Repeat("a", rng.IntN(st01Inserts)), func(bool, int) int { return i })
			require.NoError(t, err)
			checkEstimate(t, i, m.EstimateSize(), func() int64 { return est.Estimate(m.AppendOnlyMap) })
		}
	})
	t.Run("buffer", func(t *testing.T) {
		gen := randomStrings(0, 100)
		b := NewPartitionedPairBuffer[string, int64]()
		var est estimator.Estimator
		for i := 1; i <= st01Inserts; i++ {
			require.NoError(t, b.Insert(int32(i%7), gen(), int64(i)))
			checkEstimate(t, i, b.EstimateSize(), func() int64 { return est.Estimate(b.vec.data) })
		}
	})
	t.Run("partitioned map", func(t *testing.T) {
		gen := randomStrings(0, 100)
		m := NewPartitionedAppendOnlyMap[string, int64](Hasher[string]{})
		var est estimator.Estimator
		for i := 1; i <= st01Inserts; i++ {
			_, err := m.ChangeValue(int32(i%7), gen(), func(_ bool, old int64) int64 { return old + 1 })
			require.NoError(t, err)
			checkEstimate(t, i, m.EstimateSize(), func() int64 { return est.Estimate(m.m.AppendOnlyMap) })
		}
	})
}

// ST-02 for the collections: a table growth or vector resize resets the samples, followed by the
// update's own count (Spark: growTable → resetSamples inside changeValue, then afterUpdate).
func TestSizeTracking_ST02_ResetOnGrowth(t *testing.T) {
	t.Run("map", func(t *testing.T) {
		m := NewSizeTrackingMap[int64, int64](4, Hasher[int64]{})
		require.Equal(t, int64(1), m.tracker.NumUpdates(), "constructor takes the first sample")
		grown := 0
		for i := range int64(200) {
			before := m.Capacity()
			_, err := m.ChangeValue(i, func(_ bool, old int64) int64 { return old + 1 })
			require.NoError(t, err)
			if m.Capacity() != before {
				grown++
				require.Equal(t, int64(2), m.tracker.NumUpdates(), "reset then one update")
				var est estimator.Estimator
				require.Equal(t, est.Estimate(m.AppendOnlyMap), m.EstimateSize(), "fresh measurement after growth")
			}
		}
		require.Equal(t, 7, grown) // 4 → 512 slots
		// Updates of existing keys count too, and a failed insert does not.
		n := m.tracker.NumUpdates()
		require.NoError(t, m.Update(3, 9))
		require.Equal(t, n+1, m.tracker.NumUpdates())
		m.maxCapacity = m.Capacity()
		for i := int64(1000); ; i++ {
			if err := m.Update(i, i); err != nil {
				require.ErrorIs(t, err, ErrMapFull)
				break
			}
		}
		n = m.tracker.NumUpdates()
		_, err := m.ChangeValue(-1, func(bool, int64) int64 { return 0 })
		require.ErrorIs(t, err, ErrMapFull)
		require.Equal(t, n, m.tracker.NumUpdates())
	})
	t.Run("vector", func(t *testing.T) {
		v := NewSizeTrackingVector[int64]()
		require.Equal(t, DefaultVectorCapacity, v.Capacity())
		for i := range int64(DefaultVectorCapacity) {
			require.NoError(t, v.Append(i))
		}
		require.Equal(t, int64(DefaultVectorCapacity+1), v.tracker.NumUpdates())
		require.NoError(t, v.Append(64))
		require.Equal(t, 2*DefaultVectorCapacity, v.Capacity())
		require.Equal(t, int64(2), v.tracker.NumUpdates())
	})
}

func TestSizeTrackingVector(t *testing.T) {
	v := NewSizeTrackingVector[string]()
	for i := range 200 {
		require.NoError(t, v.Append(fmt.Sprint(i)))
	}
	require.Equal(t, 200, v.Len())
	require.Equal(t, 256, v.Capacity())
	require.Equal(t, "17", v.At(17))
	s := v.ToSlice()
	require.Len(t, s, 200)
	require.Equal(t, 200, cap(s), "trimmed copy")
	s[0] = "changed"
	require.Equal(t, "0", v.At(0), "a copy")
	n := 0
	for i, x := range v.All() {
		require.Equal(t, fmt.Sprint(i), x)
		n++
	}
	require.Equal(t, 200, n)

	v.maxCapacity = 300
	for i := 200; i < 300; i++ {
		require.NoError(t, v.Append("x"))
	}
	require.Equal(t, 300, v.Capacity(), "the last doubling is capped at the maximum")
	err := v.Append("y")
	require.ErrorIs(t, err, ErrBufferFull)
	require.ErrorContains(t, err, "can't insert more than 300 elements")
	require.Equal(t, 300, v.Len())
}
