// Command tungstenbench compares the page-based collections of package tungsten with the
// object-based ones of package collection on the same work in one process: summing int64 values
// by int64 key and by string key (an aggregation), and sorting (int64, int64) pairs by key, in
// memory and spilling within a budget. It prints the median wall time
// and the process CPU time of -runs interleaved runs, and the peak live heap above the input
// (after a full collection at 10 points in and 10 out, in one extra run).
//
//	go run ./bench/cmd/tungstenbench                         # 10M records, 1M keys, 32 MiB
//	go run ./bench/cmd/tungstenbench -records 1000000 -keys 100000 -runs 1
//	go run ./bench/cmd/tungstenbench -work sort -impl tungsten-offheap
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/memory/memtest"
	"github.com/spillway/spillway/storage"
	"github.com/spillway/spillway/tungsten"
)

type input struct {
	ints    []int64
	strings []string
	idx     []int32
	vals    []int64
	sortKey []int64
}

func makeInput(records, keys int) *input {
	rng := rand.New(rand.NewPCG(1, 2))
	in := &input{ints: make([]int64, keys), strings: make([]string, keys), idx: make([]int32, records),
		vals: make([]int64, records), sortKey: make([]int64, records)}
	for k := range keys {
		in.ints[k] = int64(rng.Uint64() >> 1)
		in.strings[k] = "key-" + strconv.FormatInt(in.ints[k], 36)
	}
	for i := range records {
		in.idx[i] = int32(rng.IntN(keys))
		in.vals[i] = int64(i)
		in.sortKey[i] = int64(rng.Uint64() >> 1)
	}
	return in
}

type env struct {
	tm    *memory.TaskManager
	scope *storage.Scope
	probe *probe // nil in timed runs
}

// probe samples the live heap (after a full collection) every `every` records in and out.
type probe struct {
	every int
	base  int64
	peak  int64
}

func (p *probe) tick(i int) {
	if p != nil && i%p.every == 0 {
		p.peak = max(p.peak, memtest.LiveHeap()-p.base)
	}
}

// result is one run's output checksum and spill count.
type result struct {
	sum, keys int64
	spills    int64
}

type impl func(ctx context.Context, e env, in *input) (result, error)

func sumAgg[K any]() collection.Aggregator[K, int64, int64] {
	return collection.Aggregator[K, int64, int64]{
		CreateCombiner: func(v int64) int64 { return v },
		MergeValue:     func(c, v int64) int64 { return c + v },
		MergeCombiners: func(a, b int64) int64 { return a + b },
	}
}

func collectionAgg[K comparable](keys func(*input) []K, codec storage.Codec[K], budget int64) impl {
	return func(ctx context.Context, e env, in *input) (result, error) {
		cfg := collection.ExternalMapConfig[K]{}
		if budget > 0 {
			cfg.InitialThreshold = budget / 8 // Spark's 5 MiB, scaled to the budget
		}
		m, err := collection.NewExternalAppendOnlyMap(e.tm, e.scope, sumAgg[K](), codec, storage.VarintCodec[int64]{}, cfg)
		if err != nil {
			return result{}, err
		}
		defer m.Close()
		if err := m.InsertAll(ctx, &aggIter[K]{in: in, keys: keys(in), i: -1, probe: e.probe}); err != nil {
			return result{}, err
		}
		it, err := m.Iterator(ctx)
		if err != nil {
			return result{}, err
		}
		r, err := sumValues(it, e.probe)
		r.spills = int64(m.NumSpills())
		return r, errors.Join(err, it.Close(), m.Close())
	}
}

func tungstenAgg[K any](keys func(*input) []K, codec tungsten.KeyCodec[K]) impl {
	return func(ctx context.Context, e env, in *input) (result, error) {
		a, err := tungsten.NewAggregator(ctx, e.tm, e.scope, codec, tungsten.Int64Key{}, func(a, b int64) int64 { return a + b },
			tungsten.AggregatorConfig{})
		if err != nil {
			return result{}, err
		}
		defer a.Close()
		if err := a.InsertAll(ctx, &aggIter[K]{in: in, keys: keys(in), i: -1, probe: e.probe}); err != nil {
			return result{}, err
		}
		it, err := a.Iterator(ctx)
		if err != nil {
			return result{}, err
		}
		r, err := sumValues(it, e.probe)
		r.spills = a.Metrics().Spills
		return r, errors.Join(err, it.Close(), a.Close())
	}
}

func collectionSort(budget int64) impl {
	return func(ctx context.Context, e env, in *input) (result, error) {
		cfg := collection.SorterConfig[int64, int64, int64]{Ordering: cmp.Compare[int64]}
		if budget > 0 {
			cfg.Spill.InitialThreshold = budget / 8
		}
		s, err := collection.NewExternalSorter(e.tm, e.scope, storage.VarintCodec[int64]{}, storage.VarintCodec[int64]{}, cfg)
		if err != nil {
			return result{}, err
		}
		defer s.Close()
		if err := s.InsertAll(ctx, &sortIter{in: in, i: -1, probe: e.probe}); err != nil {
			return result{}, err
		}
		it, err := s.Iterator(ctx)
		if err != nil {
			return result{}, err
		}
		r, err := checkSorted(it, e.probe)
		r.spills = int64(s.NumSpills())
		return r, errors.Join(err, it.Close(), s.Close())
	}
}

// aggIter is the aggregations' input: record i is (keys[idx[i]], vals[i]).
type aggIter[K any] struct {
	in    *input
	keys  []K
	i     int
	probe *probe
}

func (p *aggIter[K]) Next() bool {
	p.i++
	p.probe.tick(p.i)
	return p.i < len(p.in.idx)
}
func (p *aggIter[K]) Value() storage.Pair[K, int64] {
	return storage.Pair[K, int64]{Key: p.keys[p.in.idx[p.i]], Value: p.in.vals[p.i]}
}
func (p *aggIter[K]) Err() error   { return nil }
func (p *aggIter[K]) Close() error { return nil }

// sortIter is the sort's input: record i is (sortKey[i], vals[i]).
type sortIter struct {
	in    *input
	i     int
	probe *probe
}

func (p *sortIter) Next() bool {
	p.i++
	p.probe.tick(p.i)
	return p.i < len(p.in.sortKey)
}
func (p *sortIter) Value() storage.Pair[int64, int64] {
	return storage.Pair[int64, int64]{Key: p.in.sortKey[p.i], Value: p.in.vals[p.i]}
}
func (p *sortIter) Err() error   { return nil }
func (p *sortIter) Close() error { return nil }

func tungstenSort(ctx context.Context, e env, in *input) (result, error) {
	s, err := tungsten.NewSorter(ctx, e.tm, e.scope, tungsten.Int64Key{}, tungsten.Int64Key{}, tungsten.SorterConfig{})
	if err != nil {
		return result{}, err
	}
	defer s.Close()
	if err := s.InsertAll(ctx, &sortIter{in: in, i: -1, probe: e.probe}); err != nil {
		return result{}, err
	}
	it, err := s.Iterator(ctx)
	if err != nil {
		return result{}, err
	}
	r, err := checkSorted(it, e.probe)
	r.spills = s.Metrics().Spills
	return r, errors.Join(err, it.Close(), s.Close())
}

// sumValues reads an aggregation's output: its keys and the sum of their values.
func sumValues[K any](it storage.Iterator[storage.Pair[K, int64]], pr *probe) (result, error) {
	var r result
	for it.Next() {
		pr.tick(int(r.keys) * 10)
		r.sum += it.Value().Value
		r.keys++
	}
	return r, it.Err()
}

// checkSorted reads a sort's output, checking its order: its records and the sum of their values.
func checkSorted(it storage.Iterator[storage.Pair[int64, int64]], pr *probe) (result, error) {
	var r result
	last := int64(-1 << 63)
	for it.Next() {
		pr.tick(int(r.keys))
		k, v := it.Value().Key, it.Value().Value
		if k < last {
			return r, fmt.Errorf("output not sorted: %d after %d", k, last)
		}
		last = k
		r.sum += v
		r.keys++
	}
	return r, it.Err()
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tungstenbench:", err)
		os.Exit(1)
	}
}

func run() error {
	records := flag.Int("records", 10_000_000, "records")
	keys := flag.Int("keys", 1_000_000, "distinct keys of the aggregations")
	budgetFlag := flag.String("budget", "32MiB", "budget of the spilling runs")
	runs := flag.Int("runs", 3, "runs of each case, interleaved")
	work := flag.String("work", "agg-int64,agg-string,sort", "workloads")
	impls := flag.String("impl", "collection,tungsten,tungsten-offheap", "implementations")
	modes := flag.String("modes", "memory,spill", "memory (a 4 GiB budget) and/or spill (-budget)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed runs to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	budget, err := humanize.ParseBytes(*budgetFlag)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tungstenbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dbm, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{dir}})
	if err != nil {
		return err
	}
	defer dbm.Close()
	in := makeInput(*records, *keys)
	ints := func(in *input) []int64 { return in.ints }
	strs := func(in *input) []string { return in.strings }

	type kase struct {
		work, mode, impl string
		budget           int64
		run              impl
		times, cpu       []time.Duration
		peak             int64
		res              result
	}
	var cases []*kase
	for _, w := range strings.Split(*work, ",") {
		for _, mode := range strings.Split(*modes, ",") {
			b := int64(4 << 30)
			if mode == "spill" {
				b = int64(budget)
			}
			cb := b
			if mode == "memory" {
				cb = 0
			}
			for _, im := range strings.Split(*impls, ",") {
				var f impl
				switch w + "/" + strings.TrimSuffix(im, "-offheap") {
				case "agg-int64/collection":
					f = collectionAgg(ints, storage.VarintCodec[int64]{}, cb)
				case "agg-string/collection":
					f = collectionAgg(strs, storage.StringCodec{}, cb)
				case "sort/collection":
					f = collectionSort(cb)
				case "agg-int64/tungsten":
					f = tungstenAgg(ints, tungsten.Int64Key{})
				case "agg-string/tungsten":
					f = tungstenAgg(strs, tungsten.StringKey{})
				case "sort/tungsten":
					f = tungstenSort
				default:
					return fmt.Errorf("unknown work %q or implementation %q", w, im)
				}
				cases = append(cases, &kase{work: w, mode: mode, impl: im, budget: b, run: f})
			}
		}
	}
	ctx := context.Background()
	// -runs timed runs, interleaved, then one run per case sampling the live heap after a full
	// collection at 10 points while inserting and 10 while reading (off the clock).
	for r := range *runs + 1 {
		for _, c := range cases {
			cfg := memory.Config{SystemMemory: c.budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 1}
			if strings.HasSuffix(c.impl, "-offheap") {
				cfg.SystemMemory, cfg.OffHeapEnabled, cfg.OffHeapSize = 1<<30, true, c.budget
			}
			mm, err := memory.NewUnifiedManager(cfg)
			if err != nil {
				return err
			}
			tm := memory.NewTaskManager(mm, 1, memory.TaskConfig{})
			scope := dbm.NewScope()
			e := env{tm: tm, scope: scope}
			if r == *runs {
				e.probe = &probe{every: max(*records/10, 1), base: memtest.LiveHeap()}
			}
			runtime.GC()
			cpu0 := cpuTime()
			start := time.Now()
			res, err := c.run(ctx, e, in)
			elapsed, cpu := time.Since(start), cpuTime()-cpu0
			err = errors.Join(err, scope.Close())
			if leaked := tm.Close(); leaked != 0 {
				err = errors.Join(err, fmt.Errorf("%d bytes leaked", leaked))
			}
			err = errors.Join(err, mm.Close()) // unmaps the off-heap pages kept for reuse
			if err != nil {
				return fmt.Errorf("%s/%s/%s: %w", c.work, c.mode, c.impl, err)
			}
			if r > 0 && res != (result{sum: c.res.sum, keys: c.res.keys, spills: res.spills}) {
				return fmt.Errorf("%s/%s/%s: result %+v, earlier %+v", c.work, c.mode, c.impl, res, c.res)
			}
			c.res = res
			if e.probe != nil {
				c.peak = e.probe.peak
				fmt.Fprintf(os.Stderr, "heap run %s/%s/%s: peak live heap +%s\n", c.work, c.mode, c.impl, humanize.IBytes(uint64(max(c.peak, 0))))
				continue
			}
			c.times = append(c.times, elapsed)
			c.cpu = append(c.cpu, cpu)
			fmt.Fprintf(os.Stderr, "run %d %s/%s/%s: %v wall, %v CPU, %d spills\n", r, c.work, c.mode, c.impl,
				elapsed.Round(time.Millisecond), cpu.Round(time.Millisecond), res.spills)
		}
	}
	fmt.Printf("records %d, keys %d, spill budget %s, %d runs (median)\n\n", *records, *keys, humanize.IBytes(budget), *runs)
	fmt.Println("| work | mode | implementation | CPU time | CPU vs collection | wall time | peak live heap | spills |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	base := map[string]time.Duration{}
	for _, c := range cases {
		slices.Sort(c.times)
		slices.Sort(c.cpu)
		med, cpu := c.times[len(c.times)/2], c.cpu[len(c.cpu)/2]
		if c.impl == "collection" {
			base[c.work+c.mode] = cpu
		}
		ratio := "–"
		if b, ok := base[c.work+c.mode]; ok && c.impl != "collection" {
			ratio = fmt.Sprintf("%.2f", float64(cpu)/float64(b))
		}
		fmt.Printf("| %s | %s | %s | %v | %s | %v | %s | %d |\n", c.work, c.mode, c.impl, cpu.Round(time.Millisecond), ratio,
			med.Round(time.Millisecond), humanize.IBytes(uint64(max(c.peak, 0))), c.res.spills)
	}
	return nil
}

// cpuTime is the process's user and system CPU time (all threads: the garbage collector's
// included). The machine is shared, so wall time says more about the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
