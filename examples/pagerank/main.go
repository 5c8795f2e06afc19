// Command pagerank runs Spark's PageRank example on Spillway: links (distinct edges grouped by
// source) are cached with a storage level, and every iteration joins them with the ranks in an
// ExternalAppendOnlyMap while a map-side-combining sorter collects the contributions — two
// aggregations in one task, Spark's best-documented out-of-memory workload (SPARK-22713) —
// under one memory budget for the whole run. Run it with
//
//	go run ./examples/pagerank
//
// which ranks a generated power-law graph of 300,000 edges on 2 cores in 8 MiB — small enough
// that the join maps spill and are force-spilled while read — then checks every rank against a
// plain in-memory PageRank. Flags choose the graph (-edges file.txt for an edge
// list of "src dst" lines, # comments), its size, the iterations, cores, memory budget
// (-memory 64MiB, or unlimited) and storage level (-level MEMORY_AND_DISK); -cpuprofile and
// -memprofile write profiles of the run. All files go to a temporary directory that is removed
// at the end.
//
// Sizing a budget: the input is the edges as 16-byte (src, dst) records, so a budget of ⅛ of the
// data is 2 bytes per edge (-num-edges 4000000 -memory 8MB). With MEMORY_ONLY (Spark's cache())
// links partitions that do not fit are recomputed from the links shuffle in every iteration, as
// in Spark; MEMORY_AND_DISK reads them back from disk instead. No Go GC setting is needed: with
// a budget the live heap is small, so collections are frequent, but GOGC=400 or
// GOMEMLIMIT=32MiB GOGC=off did not make a budgeted run measurably faster (GOGC=400 doubled
// the resident set).
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/internal/jobs/executor"
	"github.com/spillway/spillway/internal/jobs/graphgen"
	"github.com/spillway/spillway/internal/jobs/pagerank"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/memory/memtest"
	"github.com/spillway/spillway/storage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pagerank:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	edgesPath  string
	vertices   int64
	numEdges   int64
	seed       uint64
	iterations int
	cores      int
	partitions int
	memory     string
	level      string
	top        int
	check      bool
	verbose    bool
	cpuprofile string
	memprofile string
	goLimit    bool   // memory.Config.SetGoMemoryLimit
	feedback   bool   // memory.Config.GoHeapFeedback
	allowance  string // memory.Config.NonSpillwayAllowance
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("pagerank", flag.ContinueOnError)
	fs.StringVar(&o.edgesPath, "edges", "", `edge list file ("src dst" per line, # comments); default: a generated power-law graph`)
	fs.Int64Var(&o.vertices, "vertices", 50_000, "vertices of the generated graph")
	fs.Int64Var(&o.numEdges, "num-edges", 300_000, "edges of the generated graph (duplicates included)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated graph")
	fs.IntVar(&o.iterations, "iterations", 10, "PageRank iterations")
	fs.IntVar(&o.cores, "cores", 2, "tasks run at once")
	fs.IntVar(&o.partitions, "partitions", 0, "partitions of the input and of every shuffle (default: one per core)")
	fs.StringVar(&o.memory, "memory", "8MiB", `memory budget of the whole run (execution and storage), e.g. 64MiB, or "unlimited"`)
	fs.StringVar(&o.level, "level", "MEMORY_ONLY", "storage level of the cached links (MEMORY_ONLY, MEMORY_AND_DISK, DISK_ONLY, MEMORY_ONLY_SER, ...)")
	fs.IntVar(&o.top, "top", 10, "highest ranks printed")
	fs.BoolVar(&o.check, "check", true, "check the ranks against a plain in-memory PageRank")
	fs.BoolVar(&o.verbose, "v", false, "log spills and evictions")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile to this file")
	fs.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile of the run to this file")
	fs.BoolVar(&o.goLimit, "go-limit", false, "set the Go memory limit to the budget plus -allowance (memory.Config.SetGoMemoryLimit)")
	fs.BoolVar(&o.feedback, "heap-feedback", false, "count the live heap beyond the budget and -allowance as unmanaged memory (memory.Config.GoHeapFeedback)")
	fs.StringVar(&o.allowance, "allowance", "0", "memory.Config.NonSpillwayAllowance for -go-limit and -heap-feedback (0: 32 MiB + budget/4)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, nil
}

// parseBudget reads a human-readable size ("64MiB", "1.5GB") or "unlimited".
func parseBudget(s string) (int64, error) {
	if strings.EqualFold(s, "unlimited") {
		return executor.Unlimited, nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("-memory %q: %w", s, err)
	}
	if n == 0 || n > math.MaxInt64 {
		return 0, fmt.Errorf("-memory %q: must be positive (or unlimited)", s)
	}
	return int64(n), nil
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	budget, err := parseBudget(o.memory)
	if err != nil {
		return err
	}
	level, err := storage.ParseLevel(o.level)
	if err != nil {
		return fmt.Errorf("-level: %w", err)
	}
	if o.partitions == 0 {
		o.partitions = o.cores
	}
	cfg := pagerank.Config{
		Graph:      graphgen.Config{Vertices: o.vertices, Edges: o.numEdges, Seed: o.seed},
		Iterations: o.iterations,
		Partitions: o.partitions,
		Level:      level,
		Top:        o.top,
		// With -check the ranks are collected to compare them all (Spark's ranks.collect()).
		CollectRanks: o.check,
	}
	graphName := fmt.Sprintf("generated power-law graph: %s vertices, %s edges, seed %d",
		humanize.Comma(o.vertices), humanize.Comma(o.numEdges), o.seed)
	if o.edgesPath != "" {
		f, err := os.Open(o.edgesPath)
		if err != nil {
			return err
		}
		cfg.Edges, err = graphgen.ReadEdgeList(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", o.edgesPath, err)
		}
		graphName = fmt.Sprintf("%s: %s edges", o.edgesPath, humanize.Comma(int64(len(cfg.Edges))))
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger := zap.NewNop()
	if o.verbose {
		if logger, err = zap.NewDevelopment(); err != nil {
			return err
		}
		defer func() { _ = logger.Sync() }()
	}
	allowance, err := humanize.ParseBytes(o.allowance)
	if err != nil {
		return fmt.Errorf("-allowance: %w", err)
	}
	ex, err := executor.New(executor.Config{Budget: budget, Cores: o.cores, Logger: logger, Memory: func(c *memory.Config) {
		c.SetGoMemoryLimit, c.GoHeapFeedback, c.NonSpillwayAllowance = o.goLimit, o.feedback, int64(allowance)
	}})
	if err != nil {
		return err
	}
	defer ex.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	fmt.Println(graphName)
	pool := ex.Memory.Metrics().Pools[0]
	fmt.Printf("PageRank: %d iterations on %d cores, memory %s (unified, storage region %s), links cached %v\n",
		o.iterations, ex.Config().Cores, size(pool.Max), size(pool.StorageRegion), level)
	if sz := ex.Memory.Sizing(); o.goLimit || o.feedback {
		fmt.Printf("Go memory limit %s (set: %v), live-heap feedback %v beyond an allowance of %s\n", size(sz.GoMemoryLimit), o.goLimit, o.feedback, size(sz.NonSpillwayAllowance))
	}

	heap := memtest.Start() // the live heap at every garbage collection of the run
	start := time.Now()
	res, err := pagerank.Run(ctx, ex, cfg)
	elapsed := time.Since(start)
	peak := heap.Stop()
	if err != nil {
		return err
	}
	if err := ex.Leaks(); err != nil {
		return err
	}
	if o.memprofile != "" {
		if err := writeHeapProfile(o.memprofile); err != nil {
			return err
		}
	}

	fmt.Printf("\n%d ranked pages in %v; top %d:\n", res.Vertices, elapsed.Round(time.Millisecond), len(res.Top))
	for i, v := range res.Top {
		fmt.Printf("  %2d. page %-10d rank %.6f\n", i+1, v.Vertex, v.Rank)
	}
	s := res.Stats
	m := ex.Memory.Metrics()
	fmt.Printf("\nmemory:\n")
	fmt.Printf("  peak execution memory of a task  %s\n", size(s.PeakTaskExecution))
	fmt.Printf("  spills                           %d (%d forced spills of a join map while read)\n", s.Spills, s.JoinForcedSpills)
	fmt.Printf("  bytes spilled                    %s in memory, %s on disk\n", size(s.MemoryBytesSpilled), size(s.DiskBytesSpilled))
	fmt.Printf("  links partitions computed        %d (%d partitions × %d iterations)\n", s.LinksComputed, res.Partitions, o.iterations)
	fmt.Printf("  eviction requests                %d (%s of cached blocks evicted)\n", m.EvictionsRequested, size(m.EvictedBytes))
	fmt.Printf("  shuffle written                  %s records, %s\n", humanize.Comma(s.ShuffleRecordsWritten), size(s.ShuffleBytesWritten))
	fmt.Printf("  %s\n", heapLine(peak, pool.Max))
	if o.feedback {
		fmt.Printf("  live heap beyond the allowance   %s at the end (unmanaged)\n", size(ex.Memory.Unmanaged().GoHeap))
	}

	if o.check {
		edges := cfg.Edges
		if edges == nil {
			g, err := graphgen.New(cfg.Graph)
			if err != nil {
				return err
			}
			edges = g.All()
		}
		want := pagerank.Plain(edges, o.iterations)
		if len(want) != len(res.Ranks) {
			return fmt.Errorf("check: %d pages ranked, the plain PageRank ranks %d", len(res.Ranks), len(want))
		}
		var worst float64
		for v, r := range want {
			got, ok := res.Ranks[v]
			if !ok {
				return fmt.Errorf("check: page %d has no rank (plain: %g)", v, r)
			}
			worst = max(worst, math.Abs(got-r)/max(1, r))
		}
		if worst > 1e-9 {
			return fmt.Errorf("check: ranks differ from the plain PageRank by up to %.3g", worst)
		}
		fmt.Printf("\ncheck: every rank equals the plain in-memory PageRank's (largest relative difference %.2g)\n", worst)
	}
	return nil
}

// writeHeapProfile writes the heap profile (allocations since the start, and what the last
// garbage collection found live) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func size(n int64) string { return humanize.IBytes(uint64(n)) }

// heapLine puts the peak live heap of a run beside the memory budget.
func heapLine(p memtest.Peak, budget int64) string {
	return fmt.Sprintf("peak live heap %s (budget %s, %.1f× the budget)", size(p.Peak), size(budget), float64(p.Peak)/float64(budget))
}
