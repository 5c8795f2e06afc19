// Command spillbench runs Spillway's benchmark workloads under several spill
// strategies, each beside plain-Go baselines in the same process, and prints a table (or CSV or
// JSON) with one SVG memory timeline per run.
//
//	go run ./bench/cmd/spillbench                      # every workload, default strategies
//	go run ./bench/cmd/spillbench -workloads sort -records 2000000 -budget 64MiB
//	go run ./bench/cmd/spillbench -workloads agg-zipf -strategies 'default;nocompress;victim=largest'
//	go run ./bench/cmd/spillbench -workloads cache -strategies 'level=MEMORY_AND_DISK;level=MEMORY_AND_DISK,unroll=presize'
//	go run ./bench/cmd/spillbench -workloads agg-uniform -accounting both  # strict beside Spark's allowances
//	go run ./bench/cmd/spillbench -format csv > results.csv
//
// Timelines go to -out (default bench-out/ in the current directory). Progress goes to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/bench/harness"
	"github.com/spillway/spillway/bench/workload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// errListed ends a run that only listed the workloads (-list): a success.
var errListed = errors.New("workloads listed")

// exitCode is the process's exit status for run's result: 0 on success, after -h and after
// -list; 1 after any other error, which it prints.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp), errors.Is(err, errListed):
		return 0
	}
	fmt.Fprintln(stderr, "spillbench:", err)
	return 1
}

const usage = `spillbench runs Spillway's benchmark workloads (aggregation, grouping of one huge key,
sorting, caching, PageRank) under several spill strategies, each beside plain-Go baselines in the
same process, and prints one row per run: wall time, records per second, peak live heap, peak
accounted memory, spills and evictions, with time and heap as ratios to the workload's first
baseline. It writes one SVG memory timeline per run to -out. bench/README.md explains every
column and strategy; -list shows the workloads and their default strategies.

Usage: spillbench [flags]

Flags:
`

type options struct {
	records    int64
	budget     int64
	workloads  []string
	strategies []harness.Strategy // nil: each workload's own
	accounting string             // "" (as each strategy says), "strict", "spark" or "both"
	baselines  bool
	format     string
	out        string
	seed       uint64
	iterations int
	interval   time.Duration
	verbose    bool
}

// parseFlags parses args. -list writes the workloads to stdout and returns errListed; -h writes
// the usage to stderr and returns flag.ErrHelp.
func parseFlags(args []string, stdout, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("spillbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var o options
	var budget, workloads, strategies string
	fs.Int64Var(&o.records, "records", 2_000_000, "input records per workload")
	fs.StringVar(&budget, "budget", "16MiB", "memory budget: the unified region of Spillway's memory manager, and the run size of the hand-written external sort")
	fs.StringVar(&workloads, "workloads", "all", "comma-separated workloads to run (see -list)")
	fs.StringVar(&strategies, "strategies", "", "semicolon-separated strategies to run on every workload instead of each workload's defaults, e.g. 'default;nocompress;victim=largest'")
	fs.StringVar(&o.accounting, "accounting", "", "memory accounting of every strategy: strict, spark (memory.SparkAllowances, Spark's unaccounted allowances) or both (each strategy twice); empty: as each strategy says (accounting=spark in its label), else strict")
	fs.BoolVar(&o.baselines, "baselines", true, "run the plain-Go baselines too")
	fs.StringVar(&o.format, "format", "table", "output format: table, csv or json")
	fs.StringVar(&o.out, "out", "bench-out", "directory for the SVG timelines (one per run); empty for none")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated data")
	fs.IntVar(&o.iterations, "iterations", 10, "PageRank iterations")
	fs.DurationVar(&o.interval, "interval", harness.DefaultInterval, "memory sampling interval")
	fs.BoolVar(&o.verbose, "v", false, "log Spillway's spill messages to stderr")
	list := fs.Bool("list", false, "list the workloads and their default strategies, and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	b, err := humanize.ParseBytes(budget)
	if err != nil || b == 0 {
		return o, fmt.Errorf("-budget %q: want a positive size such as 16MiB", budget)
	}
	o.budget = int64(b)
	if o.records <= 0 {
		return o, fmt.Errorf("-records %d: must be positive", o.records)
	}
	if o.iterations <= 0 {
		return o, fmt.Errorf("-iterations %d: must be positive", o.iterations)
	}
	switch o.format {
	case "table", "csv", "json":
	default:
		return o, fmt.Errorf("-format %q: want table, csv or json", o.format)
	}
	switch o.accounting {
	case "", "strict", "spark", "both":
	default:
		return o, fmt.Errorf("-accounting %q: want strict, spark or both", o.accounting)
	}
	if strategies != "" {
		for label := range strings.SplitSeq(strategies, ";") {
			s, err := harness.ParseStrategy(label)
			if err != nil {
				return o, fmt.Errorf("-strategies: %w", err)
			}
			o.strategies = append(o.strategies, s)
		}
	}
	all := workload.All(o.params())
	if *list {
		for _, w := range all {
			var labels []string
			for _, s := range w.Strategies {
				labels = append(labels, s.Label())
			}
			fmt.Fprintf(stdout, "%-14s %s\n%-14s strategies: %s\n", w.Name, w.Description, "", strings.Join(labels, "; "))
		}
		return o, errListed
	}
	if workloads == "all" {
		for _, w := range all {
			o.workloads = append(o.workloads, w.Name)
		}
	} else {
		for name := range strings.SplitSeq(workloads, ",") {
			name = strings.TrimSpace(name)
			if !slices.ContainsFunc(all, func(w workload.Workload) bool { return w.Name == name }) {
				return o, fmt.Errorf("-workloads: unknown workload %q (see -list)", name)
			}
			o.workloads = append(o.workloads, name)
		}
	}
	for _, w := range all {
		if slices.Contains(o.workloads, w.Name) && o.budget < w.MinBudget {
			return o, fmt.Errorf("-budget %s: workload %s needs at least %s", humanize.IBytes(uint64(o.budget)), w.Name, humanize.IBytes(uint64(w.MinBudget)))
		}
	}
	return o, nil
}

func (o options) params() workload.Params {
	return workload.Params{Records: o.records, Seed: o.seed, Iterations: o.iterations}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stdout, stderr)
	if err != nil {
		return err
	}
	logger := zap.NewNop()
	if o.verbose {
		if logger, err = zap.NewDevelopment(); err != nil {
			return err
		}
		defer logger.Sync()
	}
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return err
		}
	}

	type job struct {
		w    workload.Workload
		spec harness.Spec
	}
	var jobs []job
	for _, w := range workload.All(o.params()) {
		if !slices.Contains(o.workloads, w.Name) {
			continue
		}
		if o.baselines {
			for _, b := range w.Baselines {
				jobs = append(jobs, job{w, w.BaselineSpec(b, o.budget)})
			}
		}
		strategies := w.Strategies
		if o.strategies != nil {
			strategies = o.strategies
		}
		for _, s := range withAccounting(strategies, o.accounting) {
			jobs = append(jobs, job{w, w.Spec(s, o.budget)})
		}
	}

	fmt.Fprintf(stderr, "spillbench: %d runs, %d records, budget %s, timelines in %q\n",
		len(jobs), o.records, humanize.IBytes(uint64(o.budget)), o.out)
	var rows []harness.Result
	var failed int
	for i, j := range jobs {
		prefix := fmt.Sprintf("[%d/%d] %s %s", i+1, len(jobs), j.spec.Workload, label(j.spec))
		cfg := harness.Config{Interval: o.interval, Logger: logger, Progress: func(p harness.Progress) {
			fmt.Fprintf(stderr, "%s: %s, %s records\n", prefix, p.Elapsed.Round(time.Second), humanize.Comma(p.Records))
		}}
		res, tl, err := harness.Run(ctx, cfg, j.spec)
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "%s: FAILED: %v\n", prefix, err)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		} else {
			fmt.Fprintf(stderr, "%s: %s, peak live heap %s\n", prefix, res.Wall.Round(time.Millisecond), humanize.IBytes(uint64(res.PeakLiveHeap)))
		}
		if o.out != "" && len(tl.Samples) > 0 {
			name := filepath.Join(o.out, fileName(j.spec.Workload, label(j.spec))+".svg")
			if err := writeSVG(name, tl); err != nil {
				return err
			}
			res.Timeline = name
		}
		rows = append(rows, res)
	}
	harness.SetRatios(rows)
	switch o.format {
	case "csv":
		err = harness.WriteCSV(stdout, rows)
	case "json":
		err = harness.WriteJSON(stdout, rows)
	default:
		err = harness.WriteTable(stdout, rows)
	}
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d runs failed", failed, len(jobs))
	}
	return nil
}

func label(s harness.Spec) string {
	if s.Baseline != "" {
		return "baseline-" + s.Baseline
	}
	return s.Strategy.Label()
}

// fileName makes a file name of a workload and a run label.
func fileName(workload, label string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, workload+"_"+label)
}

func writeSVG(name string, tl harness.Timeline) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	return errors.Join(harness.WriteSVG(f, tl), f.Close())
}

// withAccounting applies the -accounting flag to strategies: "strict" and "spark" set every
// strategy's accounting, "both" runs each strategy strict and then with Spark's allowances, ""
// leaves them as they are.
func withAccounting(strategies []harness.Strategy, accounting string) []harness.Strategy {
	if accounting == "" {
		return strategies
	}
	var out []harness.Strategy
	for _, s := range strategies {
		if accounting != "spark" {
			s.SparkAllowances = false
			out = append(out, s)
		}
		if accounting != "strict" {
			s.SparkAllowances = true
			out = append(out, s)
		}
	}
	return out
}
