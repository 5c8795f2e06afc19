// Command join joins two tables larger than its memory budget: 3,000,000 orders (customer id,
// amount) with 500,000 customers (id, name), on 4 tasks in 16 MiB, with executor.Join. The
// customers do not fit the broadcast threshold, so both tables are shuffled by customer id and
// cogrouped in maps that spill. It then runs the same join in Go maps and prints, for both, the
// time and the peak live heap. Run it with
//
//	go run ./examples/join
//
// Flags change the sizes, tasks and budget. Files go to a temporary directory that is removed
// at the end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/memory"
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
		fmt.Fprintln(os.Stderr, "join:", err)
		os.Exit(1)
	}
}

// order returns row i of the left table: an order of one of the customers, and its amount.
func order(customers int) func(i int) collection.Pair[int64, int64] {
	return func(i int) collection.Pair[int64, int64] {
		return collection.Pair[int64, int64]{Key: int64(uint64(i) * 0x9e3779b97f4a7c15 % uint64(customers)), Value: int64(i%1000 + 1)}
	}
}

// customer is one row of the right table.
func customer(i int) collection.Pair[int64, string] {
	return collection.Pair[int64, string]{Key: int64(i), Value: fmt.Sprintf("customer-%08d", i)}
}

// generated is an input of parts partitions, partition p holding rows [p·n/parts, (p+1)·n/parts)
// made by row as they are read.
func generated[V any](n, parts int, codec storage.Codec[V], row func(int) collection.Pair[int64, V]) executor.Input[int64, V] {
	return executor.Input[int64, V]{Partitions: parts, Codec: codec,
		Read: func(_ context.Context, _ *shuffle.TaskContext, p int) (collection.Iterator[collection.Pair[int64, V]], error) {
			i, end := p*n/parts, (p+1)*n/parts
			return storage.FuncIterator(func() (collection.Pair[int64, V], bool, error) {
				if i == end {
					return collection.Pair[int64, V]{}, false, nil
				}
				i++
				return row(i - 1), true, nil
			}, nil), nil
		}}
}

func run(args []string) error {
	fs := flag.NewFlagSet("join", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "join joins a table of orders with a table of customers, both larger than the memory budget,\n"+
			"with executor.Join, then in Go maps, and compares their time and peak live heap.\n\nUsage: go run ./examples/join [flags]\n\n")
		fs.PrintDefaults()
	}
	orders := fs.Int("orders", 3_000_000, "rows of the left table (orders)")
	customers := fs.Int("customers", 500_000, "rows of the right table (customers)")
	cores := fs.Int("cores", 4, "tasks run at once")
	budget := fs.String("memory", "16MiB", "memory budget of the executor")
	plain := fs.Bool("plain", true, "also run the join in Go maps")
	threshold := fs.String("broadcast", "", "largest right side joined by broadcast (default: 10 MiB, or a quarter of the budget if less)")
	allowances := fs.Bool("spark-allowances", false, "leave Spark's allowances (spill writer and reader buffers, fetches in flight) outside the budget instead of accounting every byte")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mem, err := humanize.ParseBytes(*budget)
	if err != nil {
		return fmt.Errorf("-memory: %w", err)
	}
	dir, err := os.MkdirTemp("", "join")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := executor.Config{Budget: int64(mem), Cores: *cores, Dirs: []string{dir}}
	if *allowances {
		cfg.Accounting = memory.SparkAllowances
	}
	if *threshold != "" {
		n, err := humanize.ParseBytes(*threshold)
		if err != nil {
			return fmt.Errorf("-broadcast: %w", err)
		}
		cfg.BroadcastThreshold = int64(n)
	}
	ex, err := executor.New(cfg)
	if err != nil {
		return err
	}
	defer ex.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	fmt.Printf("joining %s orders with %s customers on %d tasks in %s\n",
		humanize.Comma(int64(*orders)), humanize.Comma(int64(*customers)), *cores, humanize.IBytes(mem))
	var rows, amount atomic.Int64
	var stats executor.Stats
	stopProgress := func() {}
	if isTerminal(os.Stdout) {
		stopProgress = showProgress(ex, &rows)
	}
	start := time.Now()
	peak := memtest.Measure(func() {
		stats, err = executor.Join(ctx, ex, executor.JoinConfig[int64]{Partitioning: executor.Partitioning[int64]{KeyCodec: storage.VarintCodec[int64]{}, Partitions: 2 * *cores}},
			generated(*orders, 2**cores, storage.VarintCodec[int64]{}, order(*customers)), generated(*customers, 2**cores, storage.StringCodec{}, customer),
			func(_ context.Context, _ *shuffle.TaskContext, _ int, it collection.Iterator[executor.Row[int64, int64, string]]) error {
				for it.Next() {
					rows.Add(1)
					amount.Add(it.Value().Left)
				}
				return it.Err()
			})
	})
	stopProgress()
	if err != nil {
		return err
	}
	fmt.Printf("spillway (%v): %s joined rows, amounts summing to %s, in %v; peak live heap %s (%.1f× the %s budget)\n",
		stats.Strategy, humanize.Comma(rows.Load()), humanize.Comma(amount.Load()), time.Since(start).Round(time.Millisecond),
		humanize.IBytes(uint64(peak.Peak)), float64(peak.Peak)/float64(mem), humanize.IBytes(mem))
	if stats.Strategy == executor.BroadcastJoin {
		fmt.Printf("  the customers fit the broadcast threshold: one table of %s (estimated) shared by every task\n", humanize.IBytes(uint64(stats.BroadcastBytes)))
	} else {
		fmt.Printf("  shuffled %s records (%s); %d spills of the shuffle writers and the cogroup maps, %s estimated in memory, written as %s on disk\n",
			humanize.Comma(stats.ShuffleRecordsWritten), humanize.IBytes(uint64(stats.ShuffleBytesWritten)), stats.Spills,
			humanize.IBytes(uint64(stats.MemoryBytesSpilled)), humanize.IBytes(uint64(stats.DiskBytesSpilled)))
	}
	if !*plain {
		return ex.Leaks()
	}
	var plainRows, plainAmount int64
	start = time.Now()
	peak = memtest.Measure(func() {
		names := make(map[int64]string, *customers)
		for i := range *customers {
			c := customer(i)
			names[c.Key] = c.Value
		}
		orderOf := order(*customers)
		for i := range *orders {
			o := orderOf(i)
			if _, ok := names[o.Key]; ok {
				plainRows, plainAmount = plainRows+1, plainAmount+o.Value
			}
		}
	})
	fmt.Printf("Go map join: %s joined rows, amounts summing to %s, in %v; peak live heap %s\n",
		humanize.Comma(plainRows), humanize.Comma(plainAmount), time.Since(start).Round(time.Millisecond), humanize.IBytes(uint64(peak.Peak)))
	if plainRows != rows.Load() || plainAmount != amount.Load() {
		return fmt.Errorf("the joins differ: %d rows summing to %d, the Go map join %d summing to %d", rows.Load(), amount.Load(), plainRows, plainAmount)
	}
	return ex.Leaks()
}

// isTerminal says whether f is a terminal (a character device), where progress is shown.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// showProgress prints, twice a second, the rows joined so far and the spills the memory manager
// forced, on one terminal line, until the function it returns is called, which clears the line.
func showProgress(ex *executor.Executor, rows *atomic.Int64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				m := ex.Memory.Metrics()
				stage := "shuffling both tables by customer id"
				if n := rows.Load(); n > 0 {
					stage = "joining: " + humanize.Comma(n) + " rows so far"
				}
				fmt.Printf("\r\033[K%s; spills forced so far %d (%s)", stage, m.SpillsRequested, humanize.IBytes(uint64(m.SpillBytesReleased)))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		fmt.Print("\r\033[K")
	}
}
