// Command iterate caches a dataset and reuses it in an iterative loop, as Spark programs do with
// rdd.persist(MEMORY_AND_DISK) before a machine-learning loop: 2,000,000 points (x, y) in 8
// partitions, cached through the executor's block manager, fit y = a·x + b by gradient descent
// in 10 iterations, each one a stage whose tasks read their cached partition. The points take
// more than the 16 MiB budget, so the partitions that do not fit in storage memory are written
// to disk and read from there. Run it with
//
//	go run ./examples/iterate
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/memory/memtest"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

func main() {
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "iterate:", err)
		os.Exit(1)
	}
}

// point is one record of the dataset: x and y = 3x + 2 + noise.
type point = storage.Pair[float64, float64]

// points returns partition p of n points in parts partitions, made as they are read (the
// partition's compute).
func points(n, parts, p int) storage.Iterator[point] {
	i, end := p*n/parts, (p+1)*n/parts
	return storage.FuncIterator(func() (point, bool, error) {
		if i == end {
			return point{}, false, nil
		}
		i++
		h := uint64(i) * 0x9e3779b97f4a7c15
		x := float64(h>>40)/(1<<23) - 1 // uniform in [-1, 1)
		noise := (float64(h&0xffff)/(1<<16) - 0.5) / 10
		return point{Key: x, Value: 3*x + 2 + noise}, true, nil
	}, nil)
}

func run(args []string) error {
	fs := flag.NewFlagSet("iterate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "iterate caches a dataset larger than the memory budget (MEMORY_AND_DISK) and fits a line to it\n"+
			"by gradient descent, reading the cached partitions in every iteration.\n\nUsage: go run ./examples/iterate [flags]\n\n")
		fs.PrintDefaults()
	}
	n := fs.Int("points", 2_000_000, "points in the dataset")
	parts := fs.Int("partitions", 8, "partitions of the dataset")
	iterations := fs.Int("iterations", 10, "gradient descent iterations")
	cores := fs.Int("cores", 2, "tasks run at once")
	budget := fs.String("memory", "16MiB", "memory budget of the executor")
	levelName := fs.String("level", "MEMORY_AND_DISK", "storage level of the cached points")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mem, err := humanize.ParseBytes(*budget)
	if err != nil {
		return fmt.Errorf("-memory: %w", err)
	}
	level, err := storage.ParseLevel(*levelName)
	if err != nil {
		return fmt.Errorf("-level: %w", err)
	}
	dir, err := os.MkdirTemp("", "iterate")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ex, err := executor.New(executor.Config{Budget: int64(mem), Cores: *cores, Dirs: []string{dir}})
	if err != nil {
		return err
	}
	defer ex.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	codec := storage.NewPairCodec[float64, float64](storage.Float64Codec{}, storage.Float64Codec{})
	block := func(p int) storage.BlockID { return storage.RDDBlockID(0, p) }
	defer func() {
		for p := range *parts {
			_, _ = ex.Blocks.Remove(context.Background(), storage.NonTaskID, block(p))
		}
	}()
	var computed atomic.Int64
	a, b := 0.0, 0.0
	start := time.Now()
	peak := memtest.Measure(func() {
		for it := 1; it <= *iterations && err == nil; it++ {
			if isTerminal(os.Stdout) {
				fmt.Printf("\r\033[Kiteration %d/%d: a = %.4f, b = %.4f; partitions computed so far %d", it, *iterations, a, b, computed.Load())
			}
			var mu sync.Mutex
			var da, db float64
			err = ex.Runner.Run(ctx, *parts, func(ctx context.Context, tc *shuffle.TaskContext, p int) error {
				pts, _, err := storage.GetOrElseUpdate(ctx, tc.Blocks(), tc.ID(), block(p), level, codec, func() (storage.Iterator[point], error) {
					computed.Add(1)
					return points(*n, *parts, p), nil
				})
				if err != nil {
					return err
				}
				defer pts.Close()
				var ga, gb float64
				for pts.Next() {
					pt := pts.Value()
					e := a*pt.Key + b - pt.Value
					ga, gb = ga+e*pt.Key, gb+e
				}
				mu.Lock()
				da, db = da+ga, db+gb
				mu.Unlock()
				return pts.Err()
			})
			// A Newton step for x uniform in [-1, 1): the mean of x² is 1/3, the mean of x is 0.
			a, b = a-3*da/float64(*n), b-db/float64(*n)
		}
	})
	if isTerminal(os.Stdout) {
		fmt.Print("\r\033[K")
	}
	if err != nil {
		return err
	}
	m := ex.Memory.Metrics()
	fmt.Printf("fit y = %.3f·x + %.3f to %s points in %d iterations in %v (the points were made with y = 3x + 2)\n",
		a, b, humanize.Comma(int64(*n)), *iterations, time.Since(start).Round(time.Millisecond))
	fmt.Printf("partitions computed: %d of %d read (%d partitions × %d iterations); the others came from the cache at %v\n",
		computed.Load(), *parts**iterations, *parts, *iterations, level)
	fmt.Printf("cached blocks evicted from memory: %s; peak live heap %s (budget %s)\n",
		humanize.IBytes(uint64(m.EvictedBytes)), humanize.IBytes(uint64(peak.Peak)), humanize.IBytes(mem))
	if math.IsNaN(a) || math.IsNaN(b) {
		return errors.New("the fit diverged")
	}
	return nil
}

// isTerminal says whether f is a terminal (a character device), where progress is shown.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
