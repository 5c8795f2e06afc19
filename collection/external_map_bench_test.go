package collection

import (
	"context"
	"math/rand/v2"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// aggInput is a benchmark input: records index into a table of distinct keys.
type aggInput struct {
	ints    []int64
	strings []string
	idx     []int32
	vals    []int64
}

func makeAggInput(records, keys int) *aggInput {
	rng := rand.New(rand.NewPCG(1, 2))
	in := &aggInput{ints: make([]int64, keys), strings: make([]string, keys), idx: make([]int32, records), vals: make([]int64, records)}
	for k := range keys {
		in.ints[k] = int64(rng.Uint64() >> 1)
		in.strings[k] = "key-" + strconv.FormatInt(in.ints[k], 36)
	}
	for i := range records {
		in.idx[i] = int32(rng.IntN(keys))
		in.vals[i] = int64(i)
	}
	return in
}

// heapSampler records the peak of /gc/heap/live:bytes (the live heap at the last collection)
// while a benchmark runs.
type heapSampler struct {
	stop chan struct{}
	wg   sync.WaitGroup
	peak uint64
}

func startHeapSampler() *heapSampler {
	s := &heapSampler{stop: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			s.peak = max(s.peak, sample[0].Value.Uint64())
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *heapSampler) finish() uint64 {
	close(s.stop)
	s.wg.Wait()
	return s.peak
}

// BenchmarkAggregation compares summing values by key in an ExternalAppendOnlyMap (InsertAll of
// the records, as a reduce-side aggregation does), without spilling and on a budget that forces about 8 spills, with a built-in map doing the same work
// (insert every record, then read every key once). Sizes: "1M" is 1M records over 100k keys (a
// quick run), "10M" is 10M records over 1M keys (issue 5's figures). Divide the ns/op of the
// external runs by the builtin run's for the ratio. "external-spill" compresses its spills with
// the default (S2), "external-spill-uncompressed" does not.
func BenchmarkAggregation(b *testing.B) {
	for _, size := range []struct {
		name          string
		records, keys int
	}{{"1M", 1_000_000, 100_000}, {"10M", 10_000_000, 1_000_000}} {
		var in *aggInput
		get := func() *aggInput {
			if in == nil {
				in = makeAggInput(size.records, size.keys)
			}
			return in
		}
		// Budgets that make the map spill about 8 times: its table stops short of the doubling
		// that would hold all keys.
		intBudget, strBudget := 32<<20*int64(size.keys)/1_000_000, 48<<20*int64(size.keys)/1_000_000
		b.Run(size.name+"/int64/builtin", func(b *testing.B) {
			in := get()
			b.ReportAllocs()
			for b.Loop() {
				m := map[int64]int64{}
				for i, k := range in.idx {
					m[in.ints[k]] += in.vals[i]
				}
				var sum int64
				for _, v := range m {
					sum += v
				}
				sink = sum
			}
		})
		b.Run(size.name+"/string/builtin", func(b *testing.B) {
			in := get()
			b.ReportAllocs()
			for b.Loop() {
				m := map[string]int64{}
				for i, k := range in.idx {
					m[in.strings[k]] += in.vals[i]
				}
				var sum int64
				for _, v := range m {
					sum += v
				}
				sink = sum
			}
		})
		for _, mode := range []struct {
			name        string
			int, string int64 // budgets
			compression storage.Compression
		}{
			{"external", 1 << 40, 1 << 40, storage.CompressionDefault},
			{"external-spill", intBudget, strBudget, storage.CompressionDefault},
			{"external-spill-uncompressed", intBudget, strBudget, storage.CompressionNone},
		} {
			b.Run(size.name+"/int64/"+mode.name, func(b *testing.B) {
				in := get()
				benchExternal(b, mode.int, mode.compression, storage.VarintCodec[int64]{}, in.ints, in)
			})
			b.Run(size.name+"/string/"+mode.name, func(b *testing.B) {
				in := get()
				benchExternal(b, mode.string, mode.compression, storage.StringCodec{}, in.strings, in)
			})
		}
	}
}

var sink int64

// aggIterator is the input of an external benchmark run: record i is (keys[idx[i]], vals[i]),
// read as the builtin runs read it. It calls sample (if set) every sampleEvery records.
type aggIterator[K any] struct {
	keys        []K
	in          *aggInput
	i           int
	sampleEvery int
	sample      func()
}

func (it *aggIterator[K]) Next() bool {
	it.i++
	if it.sample != nil && it.i > 0 && it.i%it.sampleEvery == 0 {
		it.sample()
	}
	return it.i < len(it.in.idx)
}
func (it *aggIterator[K]) Value() Pair[K, int64] {
	return Pair[K, int64]{Key: it.keys[it.in.idx[it.i]], Value: it.in.vals[it.i]}
}
func (it *aggIterator[K]) Err() error   { return nil }
func (it *aggIterator[K]) Close() error { return nil }

func benchExternal[K comparable](b *testing.B, budget int64, compression storage.Compression, keys storage.Codec[K], keyTable []K, in *aggInput) {
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
	b.ReportAllocs()
	// The peak live heap is sampled after a full collection, with the timer stopped, ten times
	// while inserting and ten times while reading, in the first run only: a sampler reading
	// /gc/heap/live:bytes as it goes sees only the collections that happen to run, and counts
	// what they allocated black.
	var spills int
	base := liveHeap() // the input
	var peak int64
	sample := func() {
		b.StopTimer()
		peak = max(peak, liveHeap()-base)
		b.StartTimer()
	}
	first := true
	for b.Loop() {
		tm := memory.NewTaskManager(mm, 1, memory.TaskConfig{})
		scope := dbm.NewScope()
		cfg := ExternalMapConfig[K]{SpillConfig: SpillConfig{Compression: compression}}
		if budget < 1<<40 {
			cfg.InitialThreshold = budget / 8 // Spark's 5 MiB, scaled to the budget
		}
		m, err := NewExternalAppendOnlyMap(tm, scope, sumAgg[K](), keys, storage.VarintCodec[int64]{}, cfg)
		if err != nil {
			b.Fatal(err)
		}
		input := &aggIterator[K]{keys: keyTable, in: in, i: -1, sampleEvery: len(in.idx) / 10}
		if first {
			input.sample = sample
		}
		if err := m.InsertAll(ctx, input); err != nil {
			b.Fatal(err)
		}
		it, err := m.Iterator(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var sum int64
		for n := 1; it.Next(); n++ {
			sum += it.Value().Value
			if first && n%(len(keyTable)/10) == 0 {
				sample()
			}
		}
		first = false
		if err := it.Err(); err != nil {
			b.Fatal(err)
		}
		sink = sum
		spills = m.NumSpills()
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
		_ = scope.Close()
		tm.Close()
	}
	b.ReportMetric(float64(spills), "spills")
	b.ReportMetric(float64(peak)/(1<<20), "peak-live-MiB") // above the input's
	if budget < 1<<40 {
		b.ReportMetric(float64(budget)/(1<<20), "budget-MiB")
	}
}
