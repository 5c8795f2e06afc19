package tungsten

import (
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/spillway/spillway/memory"
)

// BenchmarkAggregatorString sums 1M values over 100k string keys in memory (pages of 1 MiB).
// The bench/cmd/tungstenbench command compares with package collection at 10M records.
func BenchmarkAggregatorString(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = "key-" + strconv.FormatInt(int64(rng.Uint64()>>1), 36)
	}
	idx := make([]int32, 1_000_000)
	for i := range idx {
		idx[i] = int32(rng.IntN(len(keys)))
	}
	for _, mode := range modes {
		b.Run(mode.String(), func(b *testing.B) {
			for b.Loop() {
				tm, scope := newTask(b, mode, 1<<30, 1<<20), newScope(b)
				a, err := NewAggregator(ctx, tm, scope, StringKey{}, Int64Key{}, sum, AggregatorConfig{})
				if err != nil {
					b.Fatal(err)
				}
				for i, k := range idx {
					if err := a.Insert(ctx, keys[k], int64(i)); err != nil {
						b.Fatal(err)
					}
				}
				it, err := a.Iterator(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for it.Next() {
				}
				_ = a.Close()
				tm.Close()
			}
		})
	}
}

var _ = memory.OnHeap

// benchRecords is the record count of BenchmarkAggregateInt64 and BenchmarkAggregateString:
// 10M, or TUNGSTEN_BENCH_RECORDS for a quick run; the keys are a tenth of it.
func benchRecords(b *testing.B) int64 {
	n := int64(10_000_000)
	if s := os.Getenv("TUNGSTEN_BENCH_RECORDS"); s != "" {
		var err error
		if n, err = strconv.ParseInt(s, 10, 64); err != nil || n < 10 {
			b.Fatalf("TUNGSTEN_BENCH_RECORDS=%q: want a number of at least 10", s)
		}
	}
	return n
}

// benchKey scatters record i's key number over [0, keys) (bench/peers's aggKey: a 32-bit
// xorshift-multiply bijection, then modulo).
func benchKey(i, keys int64) int64 {
	x := uint64(i)
	x = ((x >> 16) ^ x) * 0x45d9f3b & 0xffffffff
	x = ((x >> 16) ^ x) * 0x45d9f3b & 0xffffffff
	return int64(((x >> 16) ^ x) % uint64(keys))
}

// benchPairs yields n generated pairs as bench/peers does, without allocating.
type benchPairs[K any] struct {
	i, n int64
	key  func(i int64) K
	cur  Pair[K, int64]
}

func (g *benchPairs[K]) Next() bool {
	if g.i >= g.n {
		return false
	}
	g.cur = Pair[K, int64]{Key: g.key(g.i), Value: g.i & 1023}
	g.i++
	return true
}
func (g *benchPairs[K]) Value() Pair[K, int64] { return g.cur }
func (g *benchPairs[K]) Err() error            { return nil }
func (g *benchPairs[K]) Close() error          { return nil }

// benchAggregate sums n values over n/10 keys with InsertAll, in memory (1 GiB) and spilling
// (budget), on and off the Go heap, with the memory manager's default page size.
func benchAggregate[K any](b *testing.B, codec KeyCodec[K], budget int64, key func(buf []byte, i int64) K) {
	n := benchRecords(b)
	for _, spill := range []bool{false, true} {
		for _, mode := range modes {
			name := "mem"
			if spill {
				name = "spill"
			}
			b.Run(name+"/"+mode.String(), func(b *testing.B) {
				limit := int64(1 << 30)
				if spill {
					limit = budget
				}
				buf := make([]byte, 0, 32)
				cpu0 := cpuTime(b)
				for b.Loop() {
					tm, scope := newTask(b, mode, limit, 0), newScope(b)
					a, err := NewAggregator(ctx, tm, scope, codec, Int64Key{}, sum, AggregatorConfig{})
					if err != nil {
						b.Fatal(err)
					}
					in := &benchPairs[K]{n: n, key: func(i int64) K { return key(buf[:0], benchKey(i, n/10)) }}
					if err := a.InsertAll(ctx, in); err != nil {
						b.Fatal(err)
					}
					it, err := a.Iterator(ctx)
					if err != nil {
						b.Fatal(err)
					}
					for it.Next() {
					}
					if err := it.Err(); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(a.Metrics().Spills), "spills")
					_ = a.Close()
					tm.Close()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*n), "ns/record")
				b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(int64(b.N)*n), "cpu-ns/record")
			})
		}
	}
}

// BenchmarkAggregateInt64 sums 10M values over 1M int64 keys (bench/peers's agg-int64-mem and
// agg-int64-spill at 32 MiB).
func BenchmarkAggregateInt64(b *testing.B) {
	benchAggregate(b, Int64Key{}, 32<<20, func(_ []byte, k int64) int64 { return k })
}

// BenchmarkAggregateString sums 10M values over 1M 17-byte string keys appended to one buffer
// (bench/peers's agg-string-mem and agg-string-spill at 48 MiB).
func BenchmarkAggregateString(b *testing.B) {
	benchAggregate(b, BytesKey{}, 48<<20, func(buf []byte, k int64) []byte {
		return strconv.AppendInt(append(buf, "user-"...), 100_000_000_000+k, 10)
	})
}

// BenchmarkSortInt64 sorts n (int64, int64) pairs of scattered distinct keys (bench/peers's
// sort-mem, and sort-spill at 32 MiB) with a Sorter of Int64Key keys and values.
func BenchmarkSortInt64(b *testing.B) {
	n := benchRecords(b)
	for _, spill := range []bool{false, true} {
		for _, mode := range modes {
			name := "mem"
			limit := int64(1 << 30)
			if spill {
				name, limit = "spill", 32<<20
			}
			b.Run(name+"/"+mode.String(), func(b *testing.B) {
				cpu0 := cpuTime(b)
				for b.Loop() {
					tm, scope := newTask(b, mode, limit, 0), newScope(b)
					s, err := NewSorter(ctx, tm, scope, Int64Key{}, Int64Key{}, SorterConfig{})
					if err != nil {
						b.Fatal(err)
					}
					in := &benchPairs[int64]{n: n, key: func(i int64) int64 {
						return int64(uint64(benchKey(i, 1<<32))<<31 ^ uint64(benchKey(i^0x55555555, 1<<31)))
					}}
					if err := s.InsertAll(ctx, in); err != nil {
						b.Fatal(err)
					}
					it, err := s.Iterator(ctx)
					if err != nil {
						b.Fatal(err)
					}
					prev := int64(math.MinInt64)
					for it.Next() {
						if k := it.Value().Key; k < prev {
							b.Fatalf("key %d after %d", k, prev)
						} else {
							prev = k
						}
					}
					if err := it.Err(); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(s.Metrics().Spills), "spills")
					_ = it.Close()
					_ = s.Close()
					tm.Close()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*n), "ns/record")
				b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(int64(b.N)*n), "cpu-ns/record")
			})
		}
	}
}
