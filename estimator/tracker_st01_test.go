package estimator_test

import (
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/estimator"
)

// trackedVector is a SizeTrackingVector: a growable slice (initial capacity 64, doubling, as
// Spark's PrimitiveVector) that resets its tracker when it reallocates.
type trackedVector[T any] struct {
	data    []T
	tracker *estimator.Tracker
}

func newTrackedVector[T any](e *estimator.Estimator) *trackedVector[T] {
	v := &trackedVector[T]{data: make([]T, 0, 64)}
	v.tracker = estimator.NewTracker(func() int64 { return e.Estimate(v) })
	return v
}

func (v *trackedVector[T]) append(x T) {
	if len(v.data) == cap(v.data) {
		grown := make([]T, len(v.data), 2*cap(v.data))
		copy(grown, v.data)
		v.data = append(grown, x)
		v.tracker.ResetSamples()
		return
	}
	v.data = append(v.data, x)
	v.tracker.AfterUpdate()
}

// trackedMap is a SizeTrackingAppendOnlyMap: an open-addressing table with linear probing
// that starts at 64 slots and doubles past a 0.7 load factor, as Spark's AppendOnlyMap, and
// resets its tracker when it grows.
type trackedMap[K comparable, V any] struct {
	seed    maphash.Seed
	slots   []mapSlot[K, V]
	n       int
	tracker *estimator.Tracker
}

type mapSlot[K comparable, V any] struct {
	used bool
	k    K
	v    V
}

func newTrackedMap[K comparable, V any](e *estimator.Estimator) *trackedMap[K, V] {
	m := &trackedMap[K, V]{seed: maphash.MakeSeed(), slots: make([]mapSlot[K, V], 64)}
	m.tracker = estimator.NewTracker(func() int64 { return e.Estimate(m) })
	return m
}

func (m *trackedMap[K, V]) put(k K, v V) (added bool) {
	mask := uint64(len(m.slots) - 1)
	for i := maphash.Comparable(m.seed, k) & mask; ; i = (i + 1) & mask {
		s := &m.slots[i]
		if !s.used {
			*s = mapSlot[K, V]{used: true, k: k, v: v}
			m.n++
			return true
		}
		if s.k == k {
			s.v = v
			return false
		}
	}
}

func (m *trackedMap[K, V]) update(k K, v V) {
	if m.put(k, v) && float64(m.n) > 0.7*float64(len(m.slots)) {
		old := m.slots
		m.slots, m.n = make([]mapSlot[K, V], 2*len(old)), 0
		for _, s := range old {
			if s.used {
				m.put(s.k, s.v)
			}
		}
		m.tracker.ResetSamples()
		return
	}
	m.tracker.AfterUpdate()
}

type largeDummy struct{ arr []int32 }

func newLargeDummy() largeDummy { return largeDummy{arr: make([]int32, 100)} }

// checkST01 asserts SizeTrackerSuite's error contract after an insert: real × (1 − e) < est <
// real × (1 + 2e), e = 0.30 for the first 32 inserts and 0.20 afterwards.
func checkST01(t *testing.T, i int, est, real int64) {
	t.Helper()
	e := 0.20
	if i < 32 {
		e = 0.30
	}
	require.Greater(t, float64(est), float64(real)*(1-e), "insert %d: estimate %d, real %d", i, est, real)
	require.Less(t, float64(est), float64(real)*(1+2*e), "insert %d: estimate %d, real %d", i, est, real)
}

func testVector[T any](t *testing.T, gen func(i int) T) {
	var e estimator.Estimator
	v := newTrackedVector[T](&e)
	for i := range 10_000 {
		v.append(gen(i))
		checkST01(t, i, v.tracker.EstimateSize(), e.Estimate(v))
	}
}

func testMap[V any](t *testing.T, gen func(i int) V) {
	var e estimator.Estimator
	m := newTrackedMap[int, V](&e)
	for i := range 10_000 {
		m.update(i, gen(i))
		checkST01(t, i, m.tracker.EstimateSize(), e.Estimate(m))
	}
}

// randomStrings returns a generator of "a" repeated a random count in [lo, hi), seeded as the
// Spark suite (123456789).
func randomStrings(t *testing.T, lo, hi int) func(int) string {
	const seed = 123456789
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	return func(int) string { return strings.Repeat("a", lo+rng.IntN(hi-lo)) }
}

type pair struct{ a, b int64 }

// ST-01: SizeTrackerSuite "vector fixed size insertions", "vector variable size insertions",
// "map fixed size insertions", "map variable size insertions", "map updates".
func TestTracker_ST01_ErrorBounds(t *testing.T) {
	t.Run("vector of int64", func(t *testing.T) { testVector(t, func(i int) int64 { return int64(i) }) })
	t.Run("vector of pairs", func(t *testing.T) { testVector(t, func(i int) pair { return pair{int64(i), int64(i)} }) })
	t.Run("vector of LargeDummyClass", func(t *testing.T) { testVector(t, func(int) largeDummy { return newLargeDummy() }) })
	for _, r := range [][2]int{{0, 10}, {0, 100}, {90, 100}} {
		t.Run("vector of strings", func(t *testing.T) { testVector(t, randomStrings(t, r[0], r[1])) })
	}
	t.Run("map int to int64", func(t *testing.T) { testMap(t, func(i int) int64 { return int64(i) }) })
	t.Run("map int to pairs", func(t *testing.T) { testMap(t, func(i int) pair { return pair{int64(i), int64(i)} }) })
	t.Run("map int to LargeDummyClass", func(t *testing.T) { testMap(t, func(int) largeDummy { return newLargeDummy() }) })
	for _, r := range [][2]int{{0, 10}, {0, 100}, {90, 100}} {
		t.Run("map int to strings", func(t *testing.T) { testMap(t, randomStrings(t, r[0], r[1])) })
	}
	t.Run("map updates", func(t *testing.T) {
		var e estimator.Estimator
		m := newTrackedMap[string, int](&e)
		keys := randomStrings(t, 0, 10_000)
		for i := range 10_000 {
			m.update(keys(i), i)
			checkST01(t, i, m.tracker.EstimateSize(), e.Estimate(m))
		}
	})
}
