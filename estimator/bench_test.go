package estimator_test

import (
	"strconv"
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

// appendOnlyTable has the shape of collection.AppendOnlyMap (a slice of hash, key, value slots,
// about half of them full), which a SizeTrackingMap's Tracker measures again and again.
type appendOnlyTable[V any] struct {
	data []struct {
		hash uint64
		key  int64
		val  V
	}
	mask uint64
	size int
}

func newAppendOnlyTable[V any](capacity int, val func(i int) V) *appendOnlyTable[V] {
	t := &appendOnlyTable[V]{mask: uint64(capacity - 1)}
	t.data = make([]struct {
		hash uint64
		key  int64
		val  V
	}, capacity)
	for i := 0; i < capacity; i += 2 { // every other slot: load 0.5
		t.data[i].hash, t.data[i].key, t.data[i].val = uint64(i)+1, int64(i), val(i)
		t.size++
	}
	return t
}

type joined struct {
	links  []int64
	sum    float64
	ranked bool
}

// PageRank's grouping table (int64 → []int64) and join table (int64 → *joined), sampled, and a
// table small enough to be walked exactly: what a spilling map's Tracker measures after a reset.
func BenchmarkEstimate_GroupingTable64k(b *testing.B) {
	benchmarkEstimate(b, newAppendOnlyTable(1<<16, func(i int) []int64 { return make([]int64, 1+i%13) }))
}

func BenchmarkEstimate_JoinTable64k(b *testing.B) {
	benchmarkEstimate(b, newAppendOnlyTable(1<<16, func(i int) *joined { return &joined{links: make([]int64, 1+i%13)} }))
}

func BenchmarkEstimate_JoinTable64Exact(b *testing.B) {
	benchmarkEstimate(b, newAppendOnlyTable(64, func(i int) *joined { return &joined{links: make([]int64, 1+i%13)} }))
}

// sharedSubslices is the shape of records parsed out of read buffers: n sub-slices into a few
// shared 64 KiB buffers, each at a different offset, reached through interior pointers.
func sharedSubslices(n, buffers int) [][]byte {
	bufs := make([][]byte, buffers)
	for i := range bufs {
		bufs[i] = make([]byte, 64<<10)
	}
	s := make([][]byte, n)
	for i := range s {
		off := (i * 7919) % (64<<10 - 64)
		s[i] = bufs[i%buffers][off : off+32]
	}
	return s
}

func BenchmarkEstimate_SharedSubslices50k(b *testing.B) {
	benchmarkEstimate(b, sharedSubslices(50_000, 10))
}

func BenchmarkEstimate_StringSlice100k(b *testing.B) {
	s := make([]string, 100_000)
	for i := range s {
		s[i] = "s" + strconv.Itoa(i*31)
	}
	benchmarkEstimate(b, s)
}

// A full buffered channel of 10,000 pointers: its buffer is sampled.
func BenchmarkEstimate_PointerChan10k(b *testing.B) {
	c := make(chan *estimatortest.T, 10_000)
	for i := range cap(c) {
		c <- &estimatortest.T{ID: int64(i)}
	}
	benchmarkEstimate(b, c)
}
