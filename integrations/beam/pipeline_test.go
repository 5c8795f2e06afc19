package spillbeam

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests run pipelines on Prism, whose SDK worker runs in this process (loopback), so the
// tests see the worker's executors through the registry (Acquire with the pipeline's Config).

func TestMain(m *testing.M) { ptest.Main(m) }

func init() {
	RegisterSortValues[string, string, string]()
	RegisterCombinePerSubKey[string, string, int, fragile, sumCount]()
	register.DoFn2x0[[]byte, func(string, KV[string, string])](&genFn{})
	register.DoFn2x0[[]byte, func(string, KV[string, int])](&genIntsFn{})
	register.Emitter2[string, KV[string, string]]()
	register.Emitter2[string, KV[string, int]]()
	register.Function2x1(fingerprint)
	register.Function2x1(hashSubKey)
	register.DoFn4x1[context.Context, string, func(*KV[string, string]) bool, func(string), error](&heapCheckFn{})
	register.Emitter1[string]()
	register.Function1x0(recordHeap)
}

// group describes a generated group: N values over Distinct sub-keys, values of about Size bytes.
type group struct {
	Key               string
	N, Distinct, Size int
}

func (g group) value(i int) KV[string, string] {
	return KV[string, string]{
		Key:   fmt.Sprintf("s%07d", (i*7919)%g.Distinct),
		Value: fmt.Sprintf("%s-%08d-%s", g.Key, i, strings.Repeat("v", g.Size)),
	}
}

func (g group) values() []KV[string, string] {
	out := make([]KV[string, string], g.N)
	for i := range out {
		out[i] = g.value(i)
	}
	return out
}

// genFn emits every group's values from an impulse, so Prism holds no large Create.
type genFn struct{ Groups []group }

func (f *genFn) ProcessElement(_ []byte, emit func(string, KV[string, string])) {
	for _, g := range f.Groups {
		for i := range g.N {
			emit(g.Key, g.value(i))
		}
	}
}

// genIntsFn emits every group's sub-keys with the values i%10, and Poison as the value of
// index 3 when it is not 0.
type genIntsFn struct {
	Groups []group
	Poison int
}

func (f *genIntsFn) ProcessElement(_ []byte, emit func(string, KV[string, int])) {
	for _, g := range f.Groups {
		for i := range g.N {
			emit(g.Key, KV[string, int]{g.value(i).Key, f.intValue(i)})
		}
	}
}

func (f *genIntsFn) intValue(i int) int {
	if i == 3 && f.Poison != 0 {
		return f.Poison
	}
	return i % 10
}

// fingerprint names a sorted group by its key, size and a hash of its values, after checking
// the order and normalising equal keys' runs (see normalize).
func fingerprint(key string, values []KV[string, string]) string {
	if !normalize(values) {
		return key + ": out of order"
	}
	h := fnv.New64a()
	for _, kv := range values {
		fmt.Fprintf(h, "%s\x00%s\x00", kv.Key, kv.Value)
	}
	return fmt.Sprintf("%s:%d:%x", key, len(values), h.Sum64())
}

func hashSubKey(key string, kv KV[string, fragile]) int {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%s/%d", key, kv.Key, kv.Value.N)
	return int(h.Sum64() >> 1)
}

// pipelineConfig returns a worker Config with its own spill directory, and checks at the end
// that the worker's executor is idle and the directory empty.
func pipelineConfig(t *testing.T, budget int64) Config {
	t.Helper()
	cfg := Config{Budget: budget, Dirs: []string{t.TempDir()}}
	e, err := Acquire(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		assertIdle(t, e)
		// After the release: a pipeline that spilled (with strict accounting, small budgets spill)
		// leaves its block manager's directory until the executor is released.
		require.NoError(t, e.Release())
		entries, err := os.ReadDir(cfg.Dirs[0])
		require.NoError(t, err)
		assert.Empty(t, entries, "spill directory")
	})
	return cfg
}

func workerMetrics(t *testing.T, cfg Config) Metrics {
	e, err := Acquire(cfg)
	require.NoError(t, err)
	defer e.Release()
	return e.Metrics()
}

// TestSortValuesOnPrism sorts small groups, a group of duplicates and several hot keys whose
// values are many times the budget, against the in-memory reference.
func TestSortValuesOnPrism(t *testing.T) {
	groups := []group{
		{Key: "small", N: 5, Distinct: 5, Size: 1},
		{Key: "dups", N: 3000, Distinct: 3, Size: 0}, // values repeat: i*7919%3 and i
		{Key: "hot1", N: 60000, Distinct: 60000, Size: 100},
		{Key: "hot2", N: 60000, Distinct: 1000, Size: 100},
		{Key: "hot3", N: 60000, Distinct: 7, Size: 100},
	}
	cfg := pipelineConfig(t, MinBudget)
	var want []any
	for _, g := range groups {
		want = append(want, fingerprint(g.Key, referenceSort(g.values())))
	}
	p, s := beam.NewPipelineWithRoot()
	grouped := beam.GroupByKey(s, beam.ParDo(s, &genFn{Groups: groups}, beam.Impulse(s)))
	sorted := SortValues[string, string, string](s, cfg, grouped)
	passert.Equals(s, beam.ParDo(s, fingerprint, sorted), want...)
	ptest.RunAndValidate(t, p)

	m := workerMetrics(t, cfg)
	t.Logf("worker: %+v", m)
	assert.GreaterOrEqual(t, m.Spills, int64(3), "each hot key spills")
	assert.GreaterOrEqual(t, m.Tasks, int64(len(groups)))
	assert.Zero(t, m.FailedTasks)
}

func TestCombinePerSubKeyOnPrism(t *testing.T) {
	groups := []group{
		{Key: "a", N: 10, Distinct: 3},
		{Key: "hot", N: 200000, Distinct: 100000},
	}
	cfg := pipelineConfig(t, MinBudget)
	gen := &genIntsFn{Groups: groups}
	want := 0
	for _, g := range groups {
		sums := make(map[string]int)
		for i := range g.N {
			sums[g.value(i).Key] += gen.intValue(i)
		}
		for k, n := range sums {
			want += hashSubKey(g.Key, KV[string, fragile]{k, fragile{n}})
		}
	}
	p, s := beam.NewPipelineWithRoot()
	grouped := beam.GroupByKey(s, beam.ParDo(s, gen, beam.Impulse(s)))
	combined := CombinePerSubKey[string, string, int, fragile](s, cfg, sumCount{}, grouped)
	passert.Equals(s, stats.Sum(s, beam.ParDo(s, hashSubKey, combined)), want)
	ptest.RunAndValidate(t, p)
	m := workerMetrics(t, cfg)
	t.Logf("worker: %+v", m)
	assert.Positive(t, m.Spills)
}

// TestFailedBundlesReleaseEverything runs pipelines whose bundles fail in ProcessElement (an
// accumulator whose encoding fails after spills) and in Setup (invalid configs); the worker's
// memory and files must be released all the same.
func TestFailedBundlesReleaseEverything(t *testing.T) {
	hot := []group{{Key: "hot", N: 200000, Distinct: 100000}}
	tests := []struct {
		name   string
		budget int64
		poison int
		want   string
	}{
		{"encoding fails", MinBudget, -1000, "spillbeam: encoding failed: spillbeam.fragile value: fragile: negative value"},
		{"budget below minimum", 1 << 20, 0, "Config.Budget 1.0 MiB (1048576 bytes) is below the minimum 4.0 MiB"},
		{"negative budget", -5, 0, "Config.Budget -5 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Budget: tt.budget, Dirs: []string{t.TempDir()}}
			if tt.budget >= MinBudget {
				cfg = pipelineConfig(t, tt.budget)
			}
			p, s := beam.NewPipelineWithRoot()
			grouped := beam.GroupByKey(s, beam.ParDo(s, &genIntsFn{Groups: hot, Poison: tt.poison}, beam.Impulse(s)))
			CombinePerSubKey[string, string, int, fragile](s, cfg, sumCount{}, grouped)
			err := ptest.Run(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			if tt.budget >= MinBudget {
				m := workerMetrics(t, cfg)
				assert.Positive(t, m.Spills)
				assert.Positive(t, m.FailedTasks)
			}
		})
	}
}

// heapCheckFn sorts one group with SortGroup, or with a slice when Slice is set, and reports the
// growth of the worker's live heap during the sort: runtime/metrics' /gc/heap/live:bytes after a
// forced GC at the start and every SampleEvery values (forced, so the figure does not depend on
// when the runtime chose to collect).
type heapCheckFn struct {
	Config      Config
	Slice       bool
	SampleEvery int
	exec        *Executor
}

func (f *heapCheckFn) Setup() (err error) {
	f.exec, err = Acquire(f.Config)
	return err
}

func (f *heapCheckFn) ProcessElement(ctx context.Context, key string, values func(*KV[string, string]) bool, emit func(string)) error {
	start := liveHeap()
	peak, n := start, 0
	sample := func() {
		if n++; n%f.SampleEvery == 0 {
			peak = max(peak, liveHeap())
		}
	}
	var prev string
	check := func(k, _ string) error {
		if k < prev {
			return fmt.Errorf("key %q after %q", k, prev)
		}
		prev = k
		sample()
		return nil
	}
	if f.Slice {
		var all []KV[string, string]
		var kv KV[string, string]
		for values(&kv) {
			all = append(all, kv)
		}
		slices.SortFunc(all, func(a, b KV[string, string]) int { return strings.Compare(a.Key, b.Key) })
		for _, kv := range all {
			if err := check(kv.Key, kv.Value); err != nil {
				return err
			}
		}
		runtime.KeepAlive(all)
	} else if _, err := SortGroup(ctx, f.exec, values, check); err != nil {
		return err
	}
	emit(fmt.Sprintf("%s %d %d %d", key, n, start, peak))
	return nil
}

func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

var heapResults struct {
	sync.Mutex
	got []string
}

func recordHeap(s string) {
	heapResults.Lock()
	defer heapResults.Unlock()
	heapResults.got = append(heapResults.got, s)
}

// TestWorkerHeapStaysWithinBudget checks the worker's live heap grows by no more than the
// budget plus a fixed slack while it sorts a hot key whose decoded values are several times the
// budget, and peaks no higher than with a slice-based sort of the same group. Prism runs in this
// process, so the live heap also holds the runner's copies of the data, which dominate it and
// are freed as the worker reads the group: the slice sort's growth is small too. The example's
// figures in README.md measure a worker without Prism in its process.
func TestWorkerHeapStaysWithinBudget(t *testing.T) {
	const budget, slack = 8 << 20, 8 << 20
	g := group{Key: "hot", N: 200000, Distinct: 200000, Size: 60}
	run := func(slice bool) (start, peak int64) {
		cfg := pipelineConfig(t, budget)
		p, s := beam.NewPipelineWithRoot()
		grouped := beam.GroupByKey(s, beam.ParDo(s, &genFn{Groups: []group{g}}, beam.Impulse(s)))
		out := beam.ParDo(s, &heapCheckFn{Config: cfg, Slice: slice, SampleEvery: 20000}, grouped)
		beam.ParDo0(s, recordHeap, out)
		heapResults.Lock()
		heapResults.got = nil
		heapResults.Unlock()
		ptest.RunAndValidate(t, p)
		heapResults.Lock()
		defer heapResults.Unlock()
		require.Len(t, heapResults.got, 1)
		var key string
		var n int
		_, err := fmt.Sscan(heapResults.got[0], &key, &n, &start, &peak)
		require.NoError(t, err)
		require.Equal(t, g.N, n)
		return start, peak
	}
	spillStart, spillPeak := run(false)
	sliceStart, slicePeak := run(true)
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	t.Logf("live heap sorting %d values at a %d MiB budget: spilling %.1f -> %.1f MiB, slice %.1f -> %.1f MiB",
		g.N, budget>>20, mib(spillStart), mib(spillPeak), mib(sliceStart), mib(slicePeak))
	assert.Less(t, spillPeak-spillStart, int64(budget+slack))
	assert.LessOrEqual(t, spillPeak, slicePeak+slack)
}
