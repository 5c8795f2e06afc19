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
// list of "src dst" lines whose vertex names are any strings, URLs in Spark's example;
// # comments), its size, the iterations, cores, memory budget
// (-memory 64MiB, or unlimited) and storage level (-level MEMORY_AND_DISK); -cpuprofile and
// -memprofile write profiles of the run. On a terminal it shows the iteration and stage it is in
// and the spills so far; with output to a file or a pipe it prints only the results. All files
// go to a temporary directory that is removed at the end.
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
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/examples/pagerank/graphgen"
	"github.com/spillway/spillway/examples/pagerank/pagerank"
	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/memory/memtest"
	"github.com/spillway/spillway/storage"
)

func main() {
	err := run(os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
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
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `pagerank runs Spark's PageRank example on Spillway under one memory budget: the links are
cached, and every iteration joins them with the ranks in a map that spills while a second
aggregation fills. It ranks a generated power-law graph (or an edge list file of "src dst"
lines with any vertex names) and checks the ranks against a plain in-memory PageRank.

Usage: go run ./examples/pagerank [flags]

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.edgesPath, "edges", "", `edge list file ("src dst" per line, vertex names of any non-blank characters, # comments); default: a generated power-law graph`)
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

// run runs the command with args, printing to out; on a terminal it also shows progress.
func run(args []string, out *os.File) error {
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
	graphName := fmt.Sprintf("generated power-law graph: %s edges (duplicates included) between vertex ids drawn from %s, seed %d",
		humanize.Comma(o.numEdges), humanize.Comma(o.vertices), o.seed)
	name := func(v int64) string { return strconv.FormatInt(v, 10) }
	if o.edgesPath != "" {
		f, err := os.Open(o.edgesPath)
		if err != nil {
			return err
		}
		list, err := graphgen.ReadEdgeList(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", o.edgesPath, err)
		}
		cfg.Edges = list.Edges
		name = func(v int64) string { return list.Names[v] }
		graphName = fmt.Sprintf("%s: %s edges between %s pages", o.edgesPath, humanize.Comma(int64(len(cfg.Edges))), humanize.Comma(int64(len(list.Names))))
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

	fmt.Fprintln(out, graphName)
	pool := ex.Memory.Metrics().Pools[0]
	fmt.Fprintf(out, "PageRank: %d iterations on %d cores, memory %s (unified: execution and storage; cached blocks are safe from eviction up to %s), links cached %v\n",
		o.iterations, ex.Config().Cores, size(pool.Max), size(pool.StorageRegion), level)
	if sz := ex.Memory.Sizing(); o.goLimit || o.feedback {
		fmt.Fprintf(out, "Go memory limit %s (set: %v), live-heap feedback %v beyond an allowance of %s\n", size(sz.GoMemoryLimit), o.goLimit, o.feedback, size(sz.NonSpillwayAllowance))
	}

	var prog *progress
	if isTerminal(out) {
		prog = &progress{out: out, ex: ex, iterations: o.iterations}
		cfg.Observer = &pagerank.Observer{Every: 1 << 16, Progress: prog.show}
	}
	heap := memtest.Start() // the live heap at every garbage collection of the run
	start := time.Now()
	res, err := pagerank.Run(ctx, ex, cfg)
	elapsed := time.Since(start)
	peak := heap.Stop()
	if prog != nil {
		prog.clear()
	}
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

	fmt.Fprintf(out, "\n%s pages ranked in %v (as in Spark's example, a page has a rank once another page links to it); top %d:\n",
		humanize.Comma(res.Vertices), elapsed.Round(time.Millisecond), len(res.Top))
	for i, v := range res.Top {
		fmt.Fprintf(out, "  %2d. page %-10s rank %.6f\n", i+1, name(v.Vertex), v.Rank)
	}
	s := res.Stats
	m := ex.Memory.Metrics()
	reads := int64(res.Partitions * o.iterations)
	fmt.Fprintf(out, "\nmemory:\n")
	fmt.Fprintf(out, "  peak execution memory of a task  %s (most one task held at once for its maps, sorters and buffers)\n", size(s.PeakTaskExecution))
	fmt.Fprintf(out, "  spills                           %d, of which %d forced spills of a join map while it was read (SPARK-22713)\n", s.Spills, s.JoinForcedSpills)
	fmt.Fprintf(out, "  bytes spilled                    %s estimated in memory, written as %s on disk\n", size(s.MemoryBytesSpilled), size(s.DiskBytesSpilled))
	fmt.Fprintf(out, "  links partitions computed        %d of %d reads (%d partitions × %d iterations) were computed from the links shuffle (not cached, or not kept: MEMORY_ONLY drops what does not fit); %d came from the cache\n",
		s.LinksComputed, reads, res.Partitions, o.iterations, reads-s.LinksComputed)
	fmt.Fprintf(out, "  evictions                        execution asked storage to evict %d times; %s of cached blocks were evicted\n", m.EvictionsRequested, size(m.EvictedBytes))
	fmt.Fprintf(out, "  shuffle written                  %s records, %s (the edges once, then each iteration's contributions summed by page on the map side)\n",
		humanize.Comma(s.ShuffleRecordsWritten), size(s.ShuffleBytesWritten))
	fmt.Fprintf(out, "  %s\n", heapLine(peak, pool.Max))
	if o.feedback {
		fmt.Fprintf(out, "  live heap beyond the allowance   %s at the end (unmanaged)\n", size(ex.Memory.Unmanaged().GoHeap))
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
				return fmt.Errorf("check: page %s has no rank (plain: %g)", name(v), r)
			}
			worst = max(worst, math.Abs(got-r)/max(1, r))
		}
		if worst > 1e-9 {
			return fmt.Errorf("check: ranks differ from the plain PageRank by up to %.3g", worst)
		}
		fmt.Fprintf(out, "\ncheck: every rank equals the plain in-memory PageRank's (largest relative difference %.2g)\n", worst)
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
	return fmt.Sprintf("peak live heap %s (the most the garbage collector found live during the run: %.1f× the %s budget)",
		size(p.Peak), float64(p.Peak)/float64(budget), size(budget))
}

// isTerminal says whether f is a terminal (a character device), where progress is shown.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress shows on a terminal line where the run is: the iteration, the stage, the records
// the reporting task handled, and the spills the memory manager asked for so far.
type progress struct {
	out        io.Writer
	ex         *executor.Executor
	iterations int

	mu    sync.Mutex
	shown bool
}

func (p *progress) show(ev pagerank.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var stage string
	switch ev.Phase {
	case pagerank.PhaseEdges:
		stage = "links stage: shuffling the edges by source"
	case pagerank.PhaseJoin:
		stage = fmt.Sprintf("iteration %d/%d: joining links with ranks", ev.Iteration, p.iterations)
	case pagerank.PhaseContribute:
		stage = fmt.Sprintf("iteration %d/%d: writing contributions", ev.Iteration, p.iterations)
	case pagerank.PhaseRanks:
		stage = "last stage: summing the ranks"
	}
	m := p.ex.Memory.Metrics()
	fmt.Fprintf(p.out, "\r\033[K%s (task %d: %s records); spills forced so far %d (%s)",
		stage, ev.Partition, humanize.Comma(ev.Records), m.SpillsRequested, size(m.SpillBytesReleased))
	p.shown = true
}

// clear erases the progress line.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.out, "\r\033[K")
		p.shown = false
	}
}
