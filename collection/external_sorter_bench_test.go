package collection

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// BenchmarkExternalSorter compares an ExternalSorter ordering int64 keys (one partition, no
// aggregation: insert every pair, then read them all in key order) with slices.SortFunc doing
// the same work on a copy of the pairs (copy, sort, read). "sorter" has memory for everything;
// "sorter-spill" has a budget of about an eighth of its buffer, so it spills about 8 times and
// merges. Sizes: "1M" pairs for a quick run, "10M" for issue 5's figures. Divide the sorter's
// ns/op by slices.SortFunc's for the ratio.
func BenchmarkExternalSorter(b *testing.B) {
	for _, n := range []struct {
		name string
		n    int
	}{{"1M", 1_000_000}, {"10M", 10_000_000}} {
		var pairs int64Pairs
		get := func() int64Pairs {
			if pairs == nil {
				rng := rand.New(rand.NewPCG(1, 2))
				pairs = pairsOf(n.n, func(int) int64 { return int64(rng.Uint64() >> 1) }, func(i int) int64 { return int64(i) })
			}
			return pairs
		}
		b.Run(n.name+"/slices.SortFunc", func(b *testing.B) {
			in := get()
			scratch := make(int64Pairs, len(in))
			b.ReportAllocs()
			for b.Loop() {
				copy(scratch, in)
				slices.SortFunc(scratch, func(a, b Pair[int64, int64]) int { return cmp.Compare(a.Key, b.Key) })
				var sum int64
				for _, p := range scratch {
					sum += p.Value
				}
				sink = sum
			}
		})
		b.Run(n.name+"/sorter", func(b *testing.B) { benchSorter(b, get(), 1<<40) })
		// The buffer of one partition holds 16-byte pairs in a slice that doubles; the budget
		// (kept from when records were 24 bytes, so figures stay comparable) still makes about
		// 7 spills.
		b.Run(n.name+"/sorter-spill", func(b *testing.B) { benchSorter(b, get(), int64(n.n)*24/8) })
	}
}

func benchSorter(b *testing.B, in int64Pairs, budget int64) {
	mm, err := memory.NewUnifiedManager(memory.Config{SystemMemory: budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 1})
	if err != nil {
		b.Fatal(err)
	}
	dbm, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	defer dbm.Close()
	ctx := context.Background()
	var spills int
	base := uint64(liveHeap()) // the input
	hs := startHeapSampler()
	b.ReportAllocs()
	for b.Loop() {
		tm := memory.NewTaskManager(mm, 1, memory.TaskConfig{})
		scope := dbm.NewScope()
		cfg := SorterConfig[int64, int64, int64]{Ordering: cmp.Compare[int64], KeyCodec: int64Codec, ValueCodec: int64Codec}
		if budget < 1<<40 {
			cfg.Spill.InitialThreshold = budget / 8 // Spark's 5 MiB, scaled to the budget
		}
		s, err := NewExternalSorter(tm, scope, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.InsertAll(ctx, SliceIterator(in)); err != nil {
			b.Fatal(err)
		}
		it, err := s.Iterator(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var sum int64
		for it.Next() {
			sum += it.Value().Value
		}
		if err := it.Err(); err != nil {
			b.Fatal(err)
		}
		sink = sum
		spills = s.NumSpills()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		_ = scope.Close()
		tm.Close()
	}
	peak := max(hs.finish(), base) - base
	b.ReportMetric(float64(spills), "spills")
	b.ReportMetric(float64(peak)/(1<<20), "peak-live-MiB") // above the input's
	if budget < 1<<40 {
		b.ReportMetric(float64(budget)/(1<<20), "budget-MiB")
	}
}
