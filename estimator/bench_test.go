package estimator_test

import (
	"testing"

	"github.com/spillway/spillway/estimator"
	"github.com/spillway/spillway/estimator/estimatortest"
)

func benchmarkEstimate(b *testing.B, v any) {
	var e estimator.Estimator
	e.Estimate(v) // layouts cached, as for a collection's repeated samples
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.Estimate(v)
	}
}

// Issue 3 targets: ≤0.05 ms for 1M int64s; ≤1 ms for 1M pointers or map entries (sampled).
func BenchmarkEstimate_Int64Slice1M(b *testing.B) { benchmarkEstimate(b, make([]int64, 1<<20)) }

func BenchmarkEstimate_PointerSlice1M(b *testing.B) {
	s := make([]*estimatortest.T, 1<<20)
	for i := range s {
		s[i] = &estimatortest.T{ID: int64(i)}
	}
	benchmarkEstimate(b, s)
}

func BenchmarkEstimate_Map1MSampled(b *testing.B) {
	m := make(map[int64]*estimatortest.T, 1<<20)
	for i := range 1 << 20 {
		m[int64(i)] = &estimatortest.T{ID: int64(i)}
	}
	benchmarkEstimate(b, m)
}

func BenchmarkEstimate_Map10kExact(b *testing.B) {
	m := make(map[int64]*estimatortest.T)
	for i := range 10_000 {
		m[int64(i)] = &estimatortest.T{ID: int64(i)}
	}
	benchmarkEstimate(b, m)
}

// Exactly: a 10k-entry map of pointer-free entries is sized from its tables alone.
func BenchmarkEstimate_Map10kPointerFree(b *testing.B) {
	m := make(map[int64]int64)
	for i := range 10_000 {
		m[int64(i)] = int64(i)
	}
	benchmarkEstimate(b, m)
}

// The package-level function rebuilds the type layouts every call.
func BenchmarkEstimate_PackageFuncInt64Slice(b *testing.B) {
	v := make([]int64, 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		estimator.Estimate(v)
	}
}
