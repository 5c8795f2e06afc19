package pagerank

import (
	"fmt"
	"math"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"weak"

	"github.com/dustin/go-humanize"
	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/internal/jobs/executor"
	"github.com/spillway/spillway/internal/jobs/graphgen"
)

// liveHeap runs a garbage collection and returns the live heap it found.
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

type taskKey struct{ iteration, partition int }

// contentionProbe is the scenario test's Observer: it keeps weak pointers to a sample of the
// combiners of every join map, and samples the live heap (after a collection) at every progress event and
// right after every forced spill of a join map.
type contentionProbe struct {
	mu        sync.Mutex
	combiners map[taskKey][]weak.Pointer[Joined] // one in 16 of the join maps' combiners
	seen      int
	starts    map[taskKey]joinStart // every task's join map when contributing starts
	spills    []forcedSpill         // every forced spill of a join map, in order
	peakLive  int64                 // the largest live heap sampled outside the ranks stage
}

// joinStart is a task's join map when the task starts contributing.
type joinStart struct {
	used  int64   // its memory
	share float64 // its share of the task's memory; NaN when the task held none
	alive int     // sampled combiners alive
}

// forcedSpill is a forced spill of a task's join map while it was read.
type forcedSpill struct {
	task  taskKey
	alive int // sampled combiners still alive right after it
}

func alive(ws []weak.Pointer[Joined]) int {
	n := 0
	for _, w := range ws {
		if w.Value() != nil {
			n++
		}
	}
	return n
}

func (p *contentionProbe) observer() *Observer {
	p.combiners = map[taskKey][]weak.Pointer[Joined]{}
	p.starts = map[taskKey]joinStart{}
	return &Observer{
		Every: 16384,
		Progress: func(ev Event) {
			if ev.Phase == PhaseRanks {
				return // the ranks collected into Result are the driver's, not the executor's
			}
			live := liveHeap()
			p.mu.Lock()
			defer p.mu.Unlock()
			p.peakLive = max(p.peakLive, live)
			if ev.Phase != PhaseContribute || ev.Records != 0 {
				return
			}
			var join, total int64
			for _, c := range ev.Task.ConsumerUsage() {
				total += c.Used
				if c.Name == fmt.Sprintf("join of iteration %d", ev.Iteration) {
					join += c.Used
				}
			}
			k := taskKey{ev.Iteration, ev.Partition}
			st := joinStart{used: join, share: math.NaN(), alive: alive(p.combiners[k])}
			if total > 0 {
				st.share = float64(join) / float64(total)
			}
			p.starts[k] = st
		},
		JoinCombiner: func(ev Event, w weak.Pointer[Joined]) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.seen++; p.seen%16 == 0 { // a sample keeps the probe's own memory small
				k := taskKey{ev.Iteration, ev.Partition}
				p.combiners[k] = append(p.combiners[k], w)
			}
		},
		JoinForcedSpill: func(ev Event) {
			live := liveHeap()
			p.mu.Lock()
			defer p.mu.Unlock()
			p.peakLive = max(p.peakLive, live)
			k := taskKey{ev.Iteration, ev.Partition}
			p.spills = append(p.spills, forcedSpill{task: k, alive: alive(p.combiners[k])})
		},
	}
}

// TestPageRankTwoShuffleContention is the SPARK-22713 workload end to end: in every iteration a
// task's join map (the first aggregation, fed by the links and the previous contributions)
// holds most of the task's memory when the contribution writer's map-side-combining sorter (the
// second aggregation) starts to fill while the join map is read. The sorter's requests make the
// TaskManager force-spill the join map's reading iterator. The run must complete with the same
// ranks as Plain; after each forced spill the map's combiners must be collectable (weak
// pointers; only the record being read and the merge's buffered heads may stay); and the live
// heap must stay within the budget plus a slack.
//
// The slack, 3 MiB, covers what the memory manager does not account by design — the runtime and
// the test binary (about 250 KiB before the run), the test's own weak pointers (to one combiner in
// 16), the shuffle fetch buffers in flight (budget/32 per reader), the
// bypass-merge writer's per-partition buffers (about 100 KiB per partition, Spark's too), each
// spill reader's batch (budget/128) and the collections' free allowances (budget/64 each) — and
// the lag of the size estimates behind the heap: heap profiles taken at the peak show the
// join map's table, combiners and destination arrays about 1.5 times its accounted size while
// other records of the task are in flight.
func TestPageRankTwoShuffleContention(t *testing.T) {
	const (
		budget     = 4 << 20
		slack      = 3 << 20
		iterations = 2
	)
	graph := graphgen.Config{Vertices: 30_000, Edges: 200_000, Seed: 2}
	ex := newExecutor(t, executor.Config{Budget: budget, Cores: 2})
	probe := &contentionProbe{}
	res, err := Run(testCtx(t), ex, Config{Graph: graph, Iterations: iterations, Partitions: 2, CollectRanks: true, Observer: probe.observer()})
	require.NoError(t, err)
	t.Logf("peak live heap %s (budget %s); stats %+v", humanize.IBytes(uint64(probe.peakLive)), humanize.IBytes(budget), res.Stats)
	t.Logf("join maps when contributing starts: %+v; forced spills: %+v", probe.starts, probe.spills)

	// When the second aggregation started, every join map held most of its task's memory. (A
	// map that has just spilled itself holds nothing, nor may its task.)
	require.Len(t, probe.starts, iterations*2)
	for k, st := range probe.starts {
		if math.IsNaN(st.share) {
			require.Zero(t, st.used, "task %+v", k)
			continue
		}
		require.GreaterOrEqual(t, st.share, 0.9, "task %+v", k)
	}
	// The join maps were force-spilled while read, and each time their combiners became
	// garbage but for what the reader legitimately holds: the record being read and, in the
	// merge with the map's own spills, the in-memory stream's current pair (read before the
	// spill). Among them at least one map held at least half of its task's fair share of the
	// budget, with many combiners: SPARK-22713's situation. Where each map spilled itself
	// before depends on how the two concurrent tasks were scheduled, so how many spills found
	// a full map varies from run to run; in 60 stress runs every run had 2 to 4 forced spills,
	// and at least one of a full map.
	const heldByReader = 2
	require.NotEmpty(t, probe.spills)
	require.Len(t, probe.spills, int(res.Stats.JoinForcedSpills))
	full := 0
	for i, sp := range probe.spills {
		require.LessOrEqual(t, sp.alive, heldByReader, "forced spill %d (task %+v) left %d sampled combiners reachable", i, sp.task, sp.alive)
		if st := probe.starts[sp.task]; st.used >= budget/4 && st.alive > 100 {
			full++
		}
	}
	require.Positive(t, full, "no forced spill found a full join map")
	// The live heap stayed within budget plus slack although far more than that went through
	// the collections (without spilling they would have held it all).
	require.LessOrEqual(t, probe.peakLive, int64(budget+slack))
	require.Greater(t, res.Stats.MemoryBytesSpilled, int64(budget+slack))

	probe = nil // let the weak pointers go before the model allocates
	g, err := graphgen.New(graph)
	require.NoError(t, err)
	requireRanksEqual(t, Plain(g.All(), iterations), res.Ranks)
	require.NoError(t, ex.Leaks())
}
