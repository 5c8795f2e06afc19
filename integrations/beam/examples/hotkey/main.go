// Command hotkey is a Beam pipeline with hot keys whose values do not fit in memory: it groups
// generated values by key and consumes each key's values sorted by a secondary key with
// spillbeam.SortGroup (or, with -mode slice, with a slice-based sort for comparison), reporting
// per key the values, spills, the time taken, and the worker's live heap when the group arrives
// (which holds the received group: the transport) and at its peak while sorting (sampled after a
// forced GC every -sample-every values and at the end).
//
// Locally it runs on Prism (the default runner):
//
//	go run ./examples/hotkey -n 1000000 -budget 16MiB
//
// The same binary runs on any Beam runner with the usual flags (see README.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"
	"github.com/dustin/go-humanize"

	spillbeam "github.com/spillway/spillway/integrations/beam"
)

var (
	n          = flag.Int("n", 1_000_000, "values per hot key")
	keys       = flag.Int("keys", 1, "number of hot keys")
	valueBytes = flag.Int("value-bytes", 40, "bytes of each value")
	budget     = flag.String("budget", "16MiB", "worker memory budget (spillbeam.Config.Budget); 0 follows GOMEMLIMIT")
	mode       = flag.String("mode", "spill", "spill: spillbeam.SortGroup; slice: an in-memory slice sort")
	sampleLive = flag.Int("sample-every", 100_000, "force a GC and sample the live heap every this many values (0: never)")
	dirs       = flag.String("dirs", "", "comma-separated spill directories (default os.TempDir())")
)

func init() {
	register.DoFn2x0[[]byte, func(string, spillbeam.KV[string, string])](&generateFn{})
	register.DoFn3x1[context.Context, string, func(*spillbeam.KV[string, string]) bool, error](&consumeSortedFn{})
	register.Emitter2[string, spillbeam.KV[string, string]]()
	register.Iter1[spillbeam.KV[string, string]]()
}

// generateFn emits N values for each of Keys hot keys, from an impulse, with secondary keys in
// a scrambled order.
type generateFn struct {
	Keys, N, ValueBytes int
}

func (f *generateFn) ProcessElement(_ []byte, emit func(string, spillbeam.KV[string, string])) {
	pad := strings.Repeat("v", max(f.ValueBytes-10, 0))
	for k := range f.Keys {
		key := fmt.Sprintf("hot%d", k)
		for i := range f.N {
			sub := fmt.Sprintf("%010d", (uint64(i)*2654435761+uint64(k))%1_000_000_007)
			emit(key, spillbeam.KV[string, string]{Key: sub, Value: fmt.Sprintf("%09d-%s", i, pad)})
		}
	}
}

// consumeSortedFn reads each key's values in secondary-key order, checks the order and reports
// what it took. It is the GroupByKey's only consumer, so the values reach it lazily.
type consumeSortedFn struct {
	Config      spillbeam.Config
	Slice       bool
	SampleEvery int
	exec        *spillbeam.Executor
}

func (f *consumeSortedFn) Setup() (err error) {
	f.exec, err = spillbeam.Acquire(f.Config)
	return err
}

func (f *consumeSortedFn) ProcessElement(ctx context.Context, key string, values func(*spillbeam.KV[string, string]) bool) error {
	start := time.Now()
	atStart := liveHeap(f.SampleEvery > 0)
	var peak int64
	var count int64
	var prev string
	consume := func(k, _ string) error {
		if k < prev {
			return fmt.Errorf("key %q after %q", k, prev)
		}
		prev = k
		if count++; f.SampleEvery > 0 && count%int64(f.SampleEvery) == 0 {
			peak = max(peak, liveHeap(true))
		}
		return nil
	}
	var st spillbeam.Stats
	if f.Slice {
		var all []spillbeam.KV[string, string]
		var kv spillbeam.KV[string, string]
		for values(&kv) {
			all = append(all, kv)
		}
		slices.SortFunc(all, func(a, b spillbeam.KV[string, string]) int { return strings.Compare(a.Key, b.Key) })
		for _, kv := range all {
			if err := consume(kv.Key, kv.Value); err != nil {
				return err
			}
		}
		st.Values = int64(len(all))
	} else {
		var err error
		if st, err = spillbeam.SortGroup(ctx, f.exec, values, consume); err != nil {
			return err
		}
	}
	peak = max(peak, liveHeap(f.SampleEvery > 0))
	elapsed := time.Since(start)
	beam.NewCounter("hotkey", "values").Inc(ctx, count)
	beam.NewCounter("hotkey", "spills").Inc(ctx, st.Spills)
	beam.NewDistribution("hotkey", "sortMillis").Update(ctx, elapsed.Milliseconds())
	beam.NewDistribution("hotkey", "startLiveHeapMiB").Update(ctx, atStart>>20)
	beam.NewDistribution("hotkey", "sortPeakLiveHeapMiB").Update(ctx, peak>>20)
	log.Infof(ctx, "hotkey: key %s: %d values sorted in %v, %d spills (%s spilled to disk), live heap %s at the start, peak %s while sorting",
		key, count, elapsed.Round(time.Millisecond), st.Spills, humanize.IBytes(uint64(st.DiskBytesSpilled)),
		humanize.IBytes(uint64(atStart)), humanize.IBytes(uint64(peak)))
	return nil
}

// liveHeap returns the live heap (runtime/metrics' /gc/heap/live:bytes), after a forced GC
// when gc is set, so the figure is exact at that point.
func liveHeap(gc bool) int64 {
	if gc {
		runtime.GC()
	}
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

func main() {
	flag.Parse()
	beam.Init()
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "hotkey:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	b, err := humanize.ParseBytes(*budget)
	if err != nil {
		return fmt.Errorf("-budget %q: %w", *budget, err)
	}
	cfg := spillbeam.Config{Budget: int64(b)}
	if *dirs != "" {
		cfg.Dirs = strings.Split(*dirs, ",")
	}
	if *mode != "spill" && *mode != "slice" {
		return fmt.Errorf("-mode %q: want spill or slice", *mode)
	}
	p, s := beam.NewPipelineWithRoot()
	kvs := beam.ParDo(s, &generateFn{Keys: *keys, N: *n, ValueBytes: *valueBytes}, beam.Impulse(s))
	beam.ParDo0(s, &consumeSortedFn{Config: cfg, Slice: *mode == "slice", SampleEvery: *sampleLive}, beam.GroupByKey(s, kvs))

	start := time.Now()
	pr, err := beamx.RunWithMetrics(ctx, p)
	if err != nil {
		return err
	}
	fmt.Printf("hotkey: mode %s, budget %s, %d keys x %d values of %d bytes: pipeline %v\n",
		*mode, *budget, *keys, *n, *valueBytes, time.Since(start).Round(time.Millisecond))
	if pr == nil {
		return nil
	}
	q := pr.Metrics().Query(func(r beam.MetricResult) bool { return r.Namespace() == "hotkey" })
	for _, c := range q.Counters() {
		fmt.Printf("hotkey: %s = %d\n", c.Name(), c.Result())
	}
	for _, d := range q.Distributions() {
		r := d.Result()
		fmt.Printf("hotkey: %s: max %d, sum %d over %d keys\n", d.Name(), r.Max, r.Sum, r.Count)
	}
	return nil
}
