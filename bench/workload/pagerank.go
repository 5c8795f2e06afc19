package workload

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"github.com/spillway/spillway/bench/harness"
	"github.com/spillway/spillway/examples/pagerank/graphgen"
	"github.com/spillway/spillway/examples/pagerank/pagerank"
	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/memory"
)

// rankTop is how many of the highest ranks a PageRank run compares with the baseline's.
const rankTop = 100

// rankDigest is what a PageRank run is checked by: the number of ranked pages and the highest
// ranks, highest first (ties by page id).
type rankDigest struct {
	vertices int64
	top      []pagerank.VertexRank
}

func byRank(a, b pagerank.VertexRank) int {
	if c := cmp.Compare(b.Rank, a.Rank); c != 0 {
		return c
	}
	return cmp.Compare(a.Vertex, b.Vertex)
}

// closeRanks reports whether two ranks are equal up to the rounding of summing contributions in
// another order.
func closeRanks(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b)) }

// check compares got with want: the same number of pages, and the same highest ranks; a page may
// differ only where ranks tie (within rounding) at the same place or at the cut.
func (want rankDigest) check(got rankDigest) error {
	if got.vertices != want.vertices || len(got.top) != len(want.top) {
		return fmt.Errorf("workload: pagerank ranked %d pages (top %d), the plain PageRank %d (top %d)",
			got.vertices, len(got.top), want.vertices, len(want.top))
	}
	byVertex := make(map[int64]float64, len(want.top))
	for _, v := range want.top {
		byVertex[v.Vertex] = v.Rank
	}
	for i, v := range got.top {
		w, ok := byVertex[v.Vertex]
		if !closeRanks(v.Rank, want.top[i].Rank) || (ok && !closeRanks(v.Rank, w)) ||
			(!ok && !closeRanks(v.Rank, want.top[len(want.top)-1].Rank)) {
			return fmt.Errorf("workload: pagerank rank %d is page %d with %g, the plain PageRank has page %d with %g",
				i+1, v.Vertex, v.Rank, want.top[i].Vertex, want.top[i].Rank)
		}
	}
	return nil
}

// rankGraph is the PageRank workload's graph: a quarter as many edges as Params.Records (so the
// run takes about as long as the other workloads), over a sixth as many vertices.
func rankGraph(p Params) graphgen.Config {
	edges := max(p.Records/4, 1)
	return graphgen.Config{Edges: edges, Vertices: max(edges/6, 100), Seed: p.Seed}
}

// pageRank is Spark's PageRank example (examples/pagerank/pagerank: links cached at the strategy's
// storage level, each iteration a join map read while a map-side-combining sorter fills, in one
// task) on an executor of its own sized to the budget, beside the same algorithm in Go maps.
func pageRank(p Params) Workload {
	g := rankGraph(p)
	want := &rankDigest{} // set by the baseline
	return Workload{
		Name:        "pagerank",
		Description: "Spark's PageRank example (10 iterations) over a power-law graph of records/4 edges (examples/pagerank/pagerank on its own executor)",
		Strategies:  []harness.Strategy{{}, {Victim: harness.VictimLargest}, {Level: "MEMORY_AND_DISK_SER"}},
		OwnMemory:   true,
		MinBudget:   executor.MinBudget,
		Baselines: []Baseline{{Name: "maps", Body: func(ctx context.Context, env *harness.Env) (int64, error) {
			gen, err := graphgen.New(g)
			if err != nil {
				return 0, err
			}
			edges := gen.All()
			env.AddRecords(int64(len(edges)))
			ranks := pagerank.Plain(edges, p.iterations())
			top := make([]pagerank.VertexRank, 0, len(ranks))
			for v, r := range ranks {
				top = append(top, pagerank.VertexRank{Vertex: v, Rank: r})
			}
			slices.SortFunc(top, byRank)
			*want = rankDigest{vertices: int64(len(ranks)), top: slices.Clone(top[:min(rankTop, len(top))])}
			return g.Edges, ctx.Err()
		}}},
		Run: func(ctx context.Context, env *harness.Env) (int64, error) {
			got, err := runPageRank(ctx, env, g, p.iterations())
			if err == nil && want.top != nil {
				err = want.check(got)
			}
			return g.Edges, err
		},
	}
}

// runPageRank runs the job on an executor it builds from env and hands to the sampler.
func runPageRank(ctx context.Context, env *harness.Env, g graphgen.Config, iterations int) (_ rankDigest, err error) {
	level, err := env.Strategy.StorageLevel()
	if err != nil {
		return rankDigest{}, err
	}
	order, err := env.Strategy.Victim.Order()
	if err != nil {
		return rankDigest{}, err
	}
	cfg := executor.Config{Budget: env.Budget, Dirs: []string{env.Dir}, Task: memory.TaskConfig{VictimOrder: order},
		Accounting: env.Strategy.Accounting(), Logger: env.Logger}
	if level.UseOffHeap() {
		cfg.OffHeap = env.Budget
	}
	ex, err := executor.New(cfg)
	if err != nil {
		return rankDigest{}, err
	}
	env.UseMemory(ex.Memory)
	defer func() { err = errors.Join(err, ex.Close()) }()
	ms := ex.Blocks.MemoryStore()
	var stats atomic.Pointer[pagerank.Stats] // the job's spill metrics, known when it ends
	env.AddCounters(func() harness.Counters {
		c := harness.Counters{Evictions: ms.Metrics().EvictedBlocks}
		if s := stats.Load(); s != nil {
			c.Spills, c.SpillBytes = s.Spills, s.DiskBytesSpilled
		}
		return c
	})

	every := int64(pagerank.DefaultObserveEvery)
	res, err := pagerank.Run(ctx, ex, pagerank.Config{
		Graph: g, Iterations: iterations, Level: level, Top: rankTop,
		Observer: &pagerank.Observer{Every: every, Progress: func(ev pagerank.Event) {
			env.AddTask(ev.Task)
			if ev.Phase == pagerank.PhaseEdges && ev.Records > 0 {
				env.AddRecords(every)
			}
		}},
	})
	if err != nil {
		return rankDigest{}, err
	}
	stats.Store(&res.Stats)
	if err := ex.Leaks(); err != nil {
		return rankDigest{}, err
	}
	return rankDigest{vertices: res.Vertices, top: res.Top}, nil
}
