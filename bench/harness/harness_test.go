package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// testConsumer is a memory.Consumer that never spills.
type testConsumer struct{ memory.ConsumerBase }

func (c *testConsumer) Spill(int64, memory.Consumer) (int64, error) { return 0, nil }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a safety net only
	t.Cleanup(cancel)
	return ctx
}

func TestStrategyLabelRoundTrip(t *testing.T) {
	for _, s := range []Strategy{
		{},
		{Victim: VictimLargest},
		{NoCompress: true},
		{Victim: VictimRequester, NoCompress: true},
		{Level: "MEMORY_AND_DISK_SER", Unroll: UnrollPresize},
		{Level: "OFF_HEAP", Unroll: UnrollMaterialise, Victim: VictimLargest, NoCompress: true},
		{Unroll: UnrollSpark},
		{SparkAllowances: true},
		{Victim: VictimLargest, SparkAllowances: true},
	} {
		got, err := ParseStrategy(s.Label())
		require.NoError(t, err, s.Label())
		require.Equal(t, s, got)
	}
	for _, bad := range []string{"victim=lru", "unroll=lazy", "level=MEMORY_SOMETIMES", "fast", "nocompress=1", "accounting=lax", "accounting"} {
		_, err := ParseStrategy(bad)
		require.Error(t, err, bad)
	}
}

func TestStrategyStorageLevel(t *testing.T) {
	l, err := Strategy{}.StorageLevel()
	require.NoError(t, err)
	require.Equal(t, storage.MemoryOnly, l)
	l, err = Strategy{Level: "OFF_HEAP"}.StorageLevel()
	require.NoError(t, err)
	require.True(t, l.UseOffHeap())
	require.Equal(t, "level=DISK_ONLY,unroll=materialise", Strategy{Level: "DISK_ONLY", Unroll: UnrollMaterialise}.Label())
}

// An off-heap storage level gives the run an off-heap region of the budget, for blocks only.
func TestOffHeapLevelSizesTheOffHeapPool(t *testing.T) {
	for _, tc := range []struct {
		level   string
		offHeap int64
	}{{"", 0}, {"MEMORY_AND_DISK_SER", 0}, {"OFF_HEAP", 1 << 20}} {
		env, err := newEnv(Config{TempDir: t.TempDir()}, 1<<20, Strategy{Level: tc.level}, false, false)
		require.NoError(t, err)
		m := env.Memory.Metrics()
		require.Equal(t, tc.offHeap, m.Pools[memory.OffHeap].Max, tc.level)
		require.Equal(t, int64(1<<20), m.Pools[memory.OnHeap].Max, tc.level)
		require.Equal(t, memory.OnHeap, env.Memory.TungstenMode())
		require.NoError(t, env.close())
	}
}

// A body on its own memory manager hands it to the sampler (UseMemory) and its tasks to the
// timeline (AddTask); what it leaves accounted fails the run.
func TestRunOnTheBodysOwnMemory(t *testing.T) {
	ctx := testCtx(t)
	cfg := Config{TempDir: t.TempDir(), Interval: time.Millisecond}
	body := func(leak bool) Body {
		return func(ctx context.Context, env *Env) (int64, error) {
			require.Nil(t, env.Memory)
			require.Nil(t, env.Disk)
			m, err := memory.NewUnifiedManager(memory.Config{SystemMemory: env.Budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1})
			require.NoError(t, err)
			env.UseMemory(m)
			tm := memory.NewTaskManager(m, 3, memory.TaskConfig{})
			env.AddTask(tm)
			env.AddTask(tm)
			c := &testConsumer{}
			c.Init(tm, memory.OnHeap, "own", c)
			if _, err := c.Acquire(ctx, 4096); err != nil {
				return 0, err
			}
			s := startSampler(env, time.Hour, nil) // one sample while the memory is held
			tl, _ := s.Stop()
			require.Equal(t, []string{"task 3/own"}, tl.Series)
			require.Equal(t, int64(4096), tl.Samples[0].Execution)
			if !leak {
				c.Free(4096)
			}
			return 1, nil
		}
	}
	res, tl, err := Run(ctx, cfg, Spec{Workload: "own", Budget: 1 << 20, OwnMemory: true, Body: body(false)})
	require.NoError(t, err)
	require.Equal(t, []string{"task 3/own"}, tl.Series)
	require.Equal(t, int64(1), res.Records)
	_, _, err = Run(ctx, cfg, Spec{Workload: "own", Budget: 1 << 20, OwnMemory: true, Body: body(true)})
	require.ErrorContains(t, err, "4.0 KiB of execution memory still accounted")
}

func TestSamplerRecordsConsumersAndEventsAndStops(t *testing.T) {
	env, err := newEnv(Config{TempDir: t.TempDir()}, 1<<20, Strategy{}, false, false)
	require.NoError(t, err)
	defer func() { require.NoError(t, env.close()) }()

	tm := env.NewTask(7)
	c := &testConsumer{}
	c.Init(tm, memory.OnHeap, "c", c)
	got, err := c.Acquire(testCtx(t), 100)
	require.NoError(t, err)
	require.Equal(t, int64(100), got)
	var spills atomic.Int64
	env.AddCounters(func() Counters { return Counters{Spills: spills.Load(), SpillBytes: 10 * spills.Load()} })
	env.AddRecords(5)

	// An interval of an hour: only the first sample (in startSampler) and the last (in Stop)
	// are taken, so the test does not depend on timing.
	s := startSampler(env, time.Hour, nil)
	c.Free(100)
	spills.Store(3)
	tl, _ := s.Stop()
	select {
	case <-s.done:
	default:
		t.Fatal("Stop returned before the sampler goroutine ended")
	}

	require.Equal(t, []string{"task 7/c"}, tl.Series)
	require.Len(t, tl.Samples, 2)
	require.Equal(t, []int64{100}, tl.Samples[0].Consumers)
	require.Equal(t, int64(100), tl.Samples[0].Execution)
	require.Equal(t, []int64{0}, tl.Samples[1].Consumers)
	require.Equal(t, int64(5), tl.Samples[1].Records)
	require.Positive(t, tl.Samples[1].HeapObjects)
	require.Equal(t, []Event{{T: tl.Samples[1].T, Kind: EventSpill, Count: 3, Bytes: 30}}, tl.Events)
	require.Equal(t, int64(1<<20), tl.Budget)
	require.Zero(t, tm.Close())
}

func TestRunReportsTheBodyAndChecksReleased(t *testing.T) {
	ctx := testCtx(t)
	cfg := Config{TempDir: t.TempDir(), Interval: time.Millisecond}
	var dir string
	res, tl, err := Run(ctx, cfg, Spec{Workload: "w", Budget: 1 << 20, Strategy: Strategy{Victim: VictimLargest},
		Body: func(ctx context.Context, env *Env) (int64, error) {
			dir = env.Dir
			require.NotNil(t, env.Memory)
			require.Equal(t, int64(1<<20), env.Memory.Metrics().Pools[memory.OnHeap].Max)
			tm := env.NewTask(1)
			defer tm.Close()
			c := &testConsumer{}
			c.Init(tm, memory.OnHeap, "c", c)
			if _, err := c.Acquire(ctx, 4096); err != nil {
				return 0, err
			}
			c.Free(4096)
			env.AddCounters(func() Counters { return Counters{Spills: 2, SpillBytes: 300, Evictions: 1} })
			return 1000, nil
		}})
	require.NoError(t, err)
	require.NoDirExists(t, dir)
	require.Equal(t, "victim=largest", res.Strategy)
	require.False(t, res.Baseline)
	require.Equal(t, int64(1000), res.Records)
	require.Positive(t, res.Wall)
	require.InDelta(t, 1000/res.Wall.Seconds(), res.RecordsPerSec, 1e-6)
	require.Equal(t, Counters{Spills: 2, SpillBytes: 300, Evictions: 1}, Counters{res.Spills, res.SpillBytes, res.Evictions})
	require.GreaterOrEqual(t, res.PeakLiveHeap, res.HeapStart)
	require.Contains(t, tl.Title, "w — victim=largest — budget 1.0 MiB")
	require.GreaterOrEqual(t, len(tl.Samples), 2)

	// A baseline has no memory manager and is labelled by its name.
	res, _, err = Run(ctx, cfg, Spec{Workload: "w", Baseline: "map", Budget: 1 << 20,
		Body: func(_ context.Context, env *Env) (int64, error) {
			require.Nil(t, env.Memory)
			require.Nil(t, env.Disk)
			require.DirExists(t, env.Dir)
			return 1, nil
		}})
	require.NoError(t, err)
	require.True(t, res.Baseline)
	require.Equal(t, "baseline: map", res.Strategy)
	require.Zero(t, res.PeakAccounted)
}

func TestRunFailures(t *testing.T) {
	ctx := testCtx(t)
	cfg := Config{TempDir: t.TempDir()}
	boom := errors.New("boom")

	res, _, err := Run(ctx, cfg, Spec{Workload: "w", Budget: 1 << 20, Body: func(context.Context, *Env) (int64, error) { return 0, boom }})
	require.ErrorIs(t, err, boom)
	require.Contains(t, res.Err, "boom")

	// Memory left accounted is an error: the library's accounting must return to zero.
	_, _, err = Run(ctx, cfg, Spec{Workload: "w", Budget: 1 << 20, Body: func(ctx context.Context, env *Env) (int64, error) {
		c := &testConsumer{}
		c.Init(env.NewTask(1), memory.OnHeap, "leaky", c)
		_, err := c.Acquire(ctx, 512)
		return 1, err
	}})
	require.ErrorContains(t, err, "512 B of execution memory still accounted")

	_, _, err = Run(ctx, cfg, Spec{Workload: "w", Budget: 1 << 20, Strategy: Strategy{Victim: "lru"}, Body: func(context.Context, *Env) (int64, error) { return 0, nil }})
	require.ErrorContains(t, err, `unknown victim order "lru"`)
	_, _, err = Run(ctx, cfg, Spec{Workload: "w", Budget: 0, Body: func(context.Context, *Env) (int64, error) { return 0, nil }})
	require.ErrorContains(t, err, "budget must be positive")

	// A panicking body still stops the sampler and removes the run directory.
	var dir string
	require.PanicsWithValue(t, "body panic", func() {
		_, _, _ = Run(ctx, cfg, Spec{Workload: "w", Budget: 1 << 20, Body: func(_ context.Context, env *Env) (int64, error) {
			dir = env.Dir
			panic("body panic")
		}})
	})
	require.NoDirExists(t, dir)
	entries, err := os.ReadDir(cfg.TempDir)
	require.NoError(t, err)
	require.Empty(t, entries)
}

func sampleRows() []Result {
	rows := []Result{
		{Workload: "agg", Strategy: "baseline: map", Baseline: true, Budget: 64 << 20, Records: 1000, Wall: 2 * time.Second,
			RecordsPerSec: 500, HeapStart: 1 << 20, PeakLiveHeap: 100 << 20, GCCycles: 3},
		{Workload: "agg", Strategy: "nocompress, \"quoted\"", Budget: 64 << 20, Records: 1000, Wall: 3 * time.Second,
			RecordsPerSec: 333.3333333333333, PeakLiveHeap: 50 << 20, PeakAccounted: 60 << 20, Spills: 4, SpillBytes: 1 << 30,
			Evictions: 2, GCCycles: 9, Timeline: "out/agg.svg"},
		{Workload: "sort", Strategy: "default", Err: "sort (default): failed,\nbadly"},
	}
	SetRatios(rows)
	return rows
}

func TestSetRatios(t *testing.T) {
	rows := sampleRows()
	require.InDelta(t, 1, rows[0].TimeRatio, 1e-12)
	require.InDelta(t, 1.5, rows[1].TimeRatio, 1e-12)
	require.InDelta(t, 0.5, rows[1].HeapRatio, 1e-12)
	require.Zero(t, rows[2].TimeRatio) // no baseline for sort
}

func TestCSVAndJSONRoundTrip(t *testing.T) {
	rows := sampleRows()
	var buf bytes.Buffer
	require.NoError(t, WriteCSV(&buf, rows))
	got, err := ReadCSV(&buf)
	require.NoError(t, err)
	require.Equal(t, rows, got)

	buf.Reset()
	require.NoError(t, WriteJSON(&buf, rows))
	var back []Result
	require.NoError(t, json.Unmarshal(buf.Bytes(), &back))
	require.Equal(t, rows, back)

	_, err = ReadCSV(strings.NewReader("workload,nope\n"))
	require.Error(t, err)
	buf.Reset()
	require.NoError(t, WriteCSV(&buf, rows[:1]))
	_, err = ReadCSV(strings.NewReader(strings.Replace(buf.String(), ",1000,", ",many,", 1)))
	require.ErrorContains(t, err, "column records")
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, sampleRows()))
	out := buf.String()
	t.Log("\n" + out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4)
	require.Contains(t, lines[0], "peak heap")
	require.Contains(t, lines[1], "100 MiB")
	require.Contains(t, lines[2], "1.50x")
	require.Contains(t, lines[2], "1.0 GiB")
	require.Contains(t, lines[3], "FAILED")
}

// svgTimeline is a timeline with every kind of line and marker, and more consumers than are
// drawn individually.
func svgTimeline() Timeline {
	tl := Timeline{Title: `agg <zipf> & "friends"`, Budget: 32 << 20}
	for i := range 9 {
		tl.Series = append(tl.Series, "task 1/consumer "+string(rune('a'+i)))
	}
	for i := range 300 {
		s := Sample{T: time.Duration(i) * 10 * time.Millisecond, LiveHeap: int64(i/30+1) << 20, HeapObjects: int64(i%30+1) << 20,
			Execution: int64(i%50) << 19, Storage: 1 << 20}
		for k := range tl.Series[:i%10] {
			s.Consumers = append(s.Consumers, int64(k+1)<<18)
		}
		tl.Samples = append(tl.Samples, s)
	}
	tl.Events = []Event{{T: time.Second, Kind: EventSpill, Count: 2, Bytes: 5 << 20}, {T: 2 * time.Second, Kind: EventEvict, Count: 1}}
	return tl
}

// svgElements parses doc as XML and counts its elements by name.
func svgElements(t *testing.T, doc []byte) map[string]int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	count := map[string]int{}
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
				require.Equal(t, "http://www.w3.org/2000/svg", se.Name.Space)
			}
			count[se.Name.Local]++
		}
	}
	require.Equal(t, "svg", root)
	return count
}

func TestWriteSVGIsValidXML(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteSVG(&buf, svgTimeline()))
	count := svgElements(t, buf.Bytes())
	// heap objects, live heap, budget, accounted, storage, 6 consumers and "3 other consumers".
	require.Equal(t, 12, count["polyline"])
	require.Contains(t, buf.String(), "3 other consumers")
	require.Contains(t, buf.String(), "32 MiB") // a y tick or the budget legend
	require.Contains(t, buf.String(), "&lt;zipf&gt; &amp;")
	require.Equal(t, 4, count["path"]) // two markers and their two legend entries

	// An empty timeline (a run that failed at once) still renders.
	buf.Reset()
	require.NoError(t, WriteSVG(&buf, Timeline{Title: "empty"}))
	svgElements(t, buf.Bytes())
}

func TestAxisSteps(t *testing.T) {
	for _, top := range []int64{1, 7, 1000, 3 << 20, 100 << 20, 5 << 30} {
		step := sizeStep(top)
		require.LessOrEqual(t, top/step, int64(8), top)
		require.Zero(t, step&(step-1), "power of two")
	}
	for _, tMax := range []float64{0.001, 0.37, 1, 9.9, 64, 250} {
		step := timeStep(tMax)
		require.LessOrEqual(t, tMax/step, 10.0+1e-9, tMax)
		require.GreaterOrEqual(t, tMax/step, 1.0, tMax)
	}
}
