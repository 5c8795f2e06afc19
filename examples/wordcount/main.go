// Command wordcount counts Zipf-distributed words (generated with math/rand/v2's Zipf) the way
// Spark's word count does — map-side combining SortWriters, then reduce-side aggregation in
// ExternalAppendOnlyMaps — under a small memory budget, so both sides spill. It prints the most
// frequent words and the spill metrics, and checks the counts against a Go map. Run it with
//
//	go run ./examples/wordcount
//
// Files go to a temporary directory that is removed at the end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/examples/wordcount/wordcount"
	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/memory/memtest"
)

func main() {
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wordcount:", err)
		os.Exit(1)
	}
}

func size(n int64) string { return humanize.IBytes(uint64(n)) }

func run(args []string) error {
	fs := flag.NewFlagSet("wordcount", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `wordcount counts generated Zipf-distributed words as Spark's word count does (map-side
combining sorters, a shuffle, reduce-side aggregation in maps) in a small memory budget where
both sides spill, and checks the counts against a Go map.

Usage: go run ./examples/wordcount [flags]

`)
		fs.PrintDefaults()
	}
	words := fs.Int64("words", 1_000_000, "words in the generated text")
	vocabulary := fs.Int64("vocabulary", 400_000, "distinct words that can occur")
	skew := fs.Float64("skew", wordcount.DefaultSkew, "Zipf exponent of word frequencies (> 1)")
	seed := fs.Uint64("seed", 1, "seed of the text")
	cores := fs.Int("cores", 2, "tasks run at once")
	partitions := fs.Int("partitions", 0, "input splits and reduce partitions (default: one per core)")
	mem := fs.String("memory", "4MiB", `memory budget of the whole run, e.g. 16MiB, or "unlimited"`)
	top := fs.Int("top", 10, "most frequent words printed")
	check := fs.Bool("check", true, "check the counts against a Go map")
	if err := fs.Parse(args); err != nil {
		return err
	}
	budget := executor.Unlimited
	if !strings.EqualFold(*mem, "unlimited") {
		n, err := humanize.ParseBytes(*mem)
		if err != nil {
			return fmt.Errorf("-memory %q: %w", *mem, err)
		}
		if n == 0 || n > math.MaxInt64 {
			return fmt.Errorf("-memory %q: must be positive (or unlimited)", *mem)
		}
		budget = int64(n)
	}
	if *partitions == 0 {
		*partitions = *cores
	}
	cfg := wordcount.JobConfig{
		Text:          wordcount.Config{Words: *words, Vocabulary: *vocabulary, Skew: *skew, Seed: *seed},
		Partitions:    *partitions,
		Top:           *top,
		CollectCounts: *check,
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	ex, err := executor.New(executor.Config{Budget: budget, Cores: *cores})
	if err != nil {
		return err
	}
	defer ex.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Printf("word count: %s Zipf(%.2f) words over a vocabulary of %s, %d cores, memory %s\n",
		humanize.Comma(*words), *skew, humanize.Comma(*vocabulary), ex.Config().Cores, size(ex.Memory.Metrics().Pools[0].Max))
	heap := memtest.Start() // the live heap at every garbage collection of the run
	start := time.Now()
	res, err := wordcount.Run(ctx, ex, cfg)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	peak := heap.Stop()
	if err := ex.Leaks(); err != nil {
		return err
	}
	fmt.Printf("\n%s distinct words (of the %s the vocabulary allows) counted in %v; most frequent:\n", humanize.Comma(res.Distinct), humanize.Comma(*vocabulary), elapsed.Round(time.Millisecond))
	for i, wc := range res.Top {
		fmt.Printf("  %2d. %-12s %s\n", i+1, wc.Word, humanize.Comma(wc.Count))
	}
	fmt.Printf("\nspills: %d (map-side sorters and reduce-side maps), %s estimated in memory, written as %s on disk\n",
		res.Spills, size(res.MemoryBytesSpilled), size(res.DiskBytesSpilled))
	fmt.Printf("peak execution memory of a task: %s (most one task held at once)\n", size(res.PeakTaskExecution))
	fmt.Println(heapLine(peak, ex.Memory.Metrics().Pools[0].Max))

	if *check {
		text, err := wordcount.NewText(cfg.Text)
		if err != nil {
			return err
		}
		want := wordcount.Count(text)
		if len(want) != len(res.Counts) {
			return fmt.Errorf("check: %d distinct words counted, the Go map has %d", len(res.Counts), len(want))
		}
		for w, n := range want {
			if res.Counts[w] != n {
				return fmt.Errorf("check: %q counted %d times, the Go map says %d", w, res.Counts[w], n)
			}
		}
		fmt.Println("check: every count equals the Go map's")
	}
	return nil
}

// heapLine puts the peak live heap of a run beside the memory budget.
func heapLine(p memtest.Peak, budget int64) string {
	return fmt.Sprintf("peak live heap: %s (the most the garbage collector found live during the run: %.1f× the %s budget)",
		size(p.Peak), float64(p.Peak)/float64(budget), size(budget))
}
