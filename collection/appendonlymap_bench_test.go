package collection

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/spillway/spillway/storage"
)

const (
	benchRecords = 10_000_000
	benchKeys    = 1_000_000
)

// benchInput returns benchRecords key indexes, each of benchKeys keys benchRecords/benchKeys
// times, in random order.
func benchInput() []int32 {
	rng := rand.New(rand.NewPCG(1, 2))
	idx := make([]int32, benchRecords)
	for i := range idx {
		idx[i] = int32(i % benchKeys)
	}
	rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	return idx
}

func addOne(had bool, old int64) int64 { return old + 1 }

// BenchmarkAggregate counts 10M records over 1M keys with AppendOnlyMap.ChangeValue and with a
// built-in map (m[k]++), from an empty map each time, for int64 and string keys.
//
//	go test -run '^$' -bench 'Aggregate' -benchtime 3x ./collection/
func BenchmarkAggregate(b *testing.B) {
	idx := benchInput()
	ints := make([]int64, benchKeys)
	strs := make([]string, benchKeys)
	for i := range ints {
		ints[i] = int64(i)*7919 + 1<<40
		strs[i] = "key-" + strconv.Itoa(i*7919)
	}
	b.Run("int64/AppendOnlyMap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := NewAppendOnlyMap[int64, int64](DefaultInitialCapacity)
			for _, i := range idx {
				if _, err := m.ChangeValue(ints[i], addOne); err != nil {
					b.Fatal(err)
				}
			}
			if m.Len() != benchKeys {
				b.Fatal(m.Len())
			}
		}
	})
	b.Run("int64/SizeTrackingMap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := NewSizeTrackingMap[int64, int64](DefaultInitialCapacity, Hasher[int64]{})
			for _, i := range idx {
				if _, err := m.ChangeValue(ints[i], addOne); err != nil {
					b.Fatal(err)
				}
			}
			if m.Len() != benchKeys || m.EstimateSize() <= 0 {
				b.Fatal(m.Len())
			}
		}
	})
	b.Run("int64/builtin", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := map[int64]int64{}
			for _, i := range idx {
				m[ints[i]]++
			}
			if len(m) != benchKeys {
				b.Fatal(len(m))
			}
		}
	})
	b.Run("string/AppendOnlyMap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := NewAppendOnlyMap[string, int64](DefaultInitialCapacity)
			for _, i := range idx {
				if _, err := m.ChangeValue(strs[i], addOne); err != nil {
					b.Fatal(err)
				}
			}
			if m.Len() != benchKeys {
				b.Fatal(m.Len())
			}
		}
	})
	b.Run("string/SizeTrackingMap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := NewSizeTrackingMap[string, int64](DefaultInitialCapacity, Hasher[string]{})
			for _, i := range idx {
				if _, err := m.ChangeValue(strs[i], addOne); err != nil {
					b.Fatal(err)
				}
			}
			if m.Len() != benchKeys || m.EstimateSize() <= 0 {
				b.Fatal(m.Len())
			}
		}
	})
	b.Run("string/builtin", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := map[string]int64{}
			for _, i := range idx {
				m[strs[i]]++
			}
			if len(m) != benchKeys {
				b.Fatal(len(m))
			}
		}
	})
}

// BenchmarkDestructiveSort sorts 1M int64 pairs: compacting and sorting an AppendOnlyMap's table
// in place and reading it, against slices.SortFunc on a slice of the same pairs. Filling is not
// timed.
//
//	go test -run '^$' -bench 'DestructiveSort' -benchtime 5x ./collection/
func BenchmarkDestructiveSort(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	keys := make([]int64, benchKeys)
	for i := range keys {
		keys[i] = rng.Int64()
	}
	b.Run("AppendOnlyMap", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			m := NewAppendOnlyMap[int64, int64](DefaultInitialCapacity)
			for j, k := range keys {
				if err := m.Update(k, int64(j)); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			it := m.DestructiveSortedIterator(cmp.Compare[int64])
			n := 0
			for it.Next() {
				n++
			}
			if n != len(keys) {
				b.Fatal(n)
			}
		}
	})
	b.Run("AppendOnlyMapByHash", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			m := NewAppendOnlyMap[int64, int64](DefaultInitialCapacity)
			for j, k := range keys {
				if err := m.Update(k, int64(j)); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			it := m.DestructiveSortedByHash()
			n := 0
			for it.Next() {
				n++
			}
			if n != len(keys) {
				b.Fatal(n)
			}
		}
	})
	b.Run("slices.SortFunc/comparatorValue", func(b *testing.B) {
		// The comparator arrives as a func value, as it does in DestructiveSortedIterator, so the
		// sort pays the same indirect call per comparison.
		keyCmp := opaqueCompare()
		b.ReportAllocs()
		pairs := make([]Pair[int64, int64], len(keys))
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			for j, k := range keys {
				pairs[j] = Pair[int64, int64]{Key: k, Value: int64(j)}
			}
			b.StartTimer()
			slices.SortFunc(pairs, func(a, b Pair[int64, int64]) int { return keyCmp(a.Key, b.Key) })
		}
	})
	b.Run("slices.SortFunc", func(b *testing.B) {
		b.ReportAllocs()
		pairs := make([]Pair[int64, int64], len(keys))
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			for j, k := range keys {
				pairs[j] = Pair[int64, int64]{Key: k, Value: int64(j)}
			}
			b.StartTimer()
			slices.SortFunc(pairs, func(a, b Pair[int64, int64]) int { return cmp.Compare(a.Key, b.Key) })
		}
	})
}

// opaqueCompare returns cmp.Compare[int64] as a func value the compiler cannot see through.
//
//go:noinline
func opaqueCompare() func(a, b int64) int { return cmp.Compare[int64] }

// BenchmarkPartitionedPairBufferSort sorts 1M records of 16 partitions by (partition, key): the
// buffer's destructive sorted iterator (sort in place, then read) against slices.SortFunc on a
// slice of the same records. Filling is not timed.
//
//	go test -run '^$' -bench 'PartitionedPairBufferSort' -benchtime 5x ./collection/
func BenchmarkPartitionedPairBufferSort(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	recs := make([]PartitionedPair[int64, int64], benchKeys)
	for i := range recs {
		recs[i] = PartitionedPair[int64, int64]{Partition: int32(rng.IntN(16)), Key: rng.Int64(), Value: int64(i)}
	}
	b.Run("PartitionedPairBuffer", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			buf := NewPartitionedPairBuffer[int64, int64]()
			for _, r := range recs {
				if err := buf.Insert(r.Partition, r.Key, r.Value); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			it := buf.PartitionedDestructiveSortedIterator(cmp.Compare[int64])
			n := 0
			for it.Next() {
				n++
			}
			if n != len(recs) {
				b.Fatal(n)
			}
		}
	})
	b.Run("slices.SortFunc", func(b *testing.B) {
		b.ReportAllocs()
		s := make([]PartitionedPair[int64, int64], len(recs))
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			copy(s, recs)
			b.StartTimer()
			slices.SortFunc(s, func(x, y PartitionedPair[int64, int64]) int {
				if c := cmp.Compare(x.Partition, y.Partition); c != 0 {
					return c
				}
				return cmp.Compare(x.Key, y.Key)
			})
		}
	})
}

// BenchmarkExternalMapSpills aggregates 1M int64 records over 100k keys in an
// ExternalAppendOnlyMap on budgets that make it spill 4 and 16 times, where the growth of
// each table started by a spill shows.
func BenchmarkExternalMapSpills(b *testing.B) {
	in := makeAggInput(1_000_000, 100_000)
	for _, c := range []struct {
		name   string
		budget int64
	}{{"spills=4", 6 << 20}, {"spills=16", 4608 << 10}} {
		b.Run(c.name, func(b *testing.B) {
			benchExternal(b, c.budget, storage.CompressionNone, storage.VarintCodec[int64]{}, in.ints, in)
		})
	}
}
