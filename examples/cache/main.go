// Command cache caches one partition larger than memory under each storage level, the way
// Spark's rdd.persist(level) does through the BlockManager: the values are unrolled into memory
// as far as the storage pool allows, then kept in memory, written to disk, or not cached at all,
// depending on the level. For each level it prints where the block ended up, how long the put
// took, the peak live heap while it ran beside the budget, and whether reading the block back gives the values
// that were put. Run it with
//
//	go run ./examples/cache
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

	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/memory/memtest"
	"github.com/spillway/spillway/storage"
)

func main() {
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cache:", err)
		os.Exit(1)
	}
}

func size(n int64) string { return humanize.IBytes(uint64(n)) }

// record is one value of the partition: a key and a short text, about 40 bytes in the heap.
type record = storage.Pair[int64, string]

// partition returns the n records of the partition, generated as they are read (the
// partition's "compute"), and the checksum of all of them.
func partition(n int64) (func() storage.Iterator[record], uint64) {
	gen := func(i int64) record {
		return record{Key: i, Value: fmt.Sprintf("value-%08x", uint64(i)*0x9e3779b97f4a7c15>>32)}
	}
	var sum uint64
	for i := range n {
		sum = checksum(sum, gen(i))
	}
	return func() storage.Iterator[record] {
		var i int64
		return storage.FuncIterator(func() (record, bool, error) {
			if i == n {
				return record{}, false, nil
			}
			i++
			return gen(i - 1), true, nil
		}, nil)
	}, sum
}

// checksum folds one record into an order-dependent checksum.
func checksum(sum uint64, r record) uint64 {
	sum = sum*1099511628211 + uint64(r.Key)
	for i := 0; i < len(r.Value); i++ {
		sum = sum*1099511628211 + uint64(r.Value[i])
	}
	return sum
}

func run(args []string) error {
	fs := flag.NewFlagSet("cache", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `cache caches one partition larger than memory under each storage level, as Spark's
rdd.persist(level) does, and prints where the block ended up, the time, the peak live heap
and whether reading it back gives the values put.

Usage: go run ./examples/cache [flags]

`)
		fs.PrintDefaults()
	}
	records := fs.Int64("records", 1_000_000, "records in the partition (about 40 bytes each in memory)")
	mem := fs.String("memory", "16MiB", "memory budget (half of it is the protected storage region)")
	levels := fs.String("levels", "MEMORY_ONLY,MEMORY_ONLY_SER,MEMORY_AND_DISK,MEMORY_AND_DISK_SER,DISK_ONLY,OFF_HEAP", "storage levels to try, comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	budget, err := humanize.ParseBytes(*mem)
	if err != nil || budget == 0 || budget > math.MaxInt64 {
		return fmt.Errorf("-memory %q: want a positive size such as 16MiB", *mem)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	compute, want := partition(*records)
	fmt.Printf("one partition of %s records (about %s as Go values), memory %s\n\n",
		humanize.Comma(*records), size(*records*40), size(int64(budget)))
	fmt.Printf("%-20s %-32s %10s %22s  %s\n", "level", "stored", "time", "peak live heap (×budget)", "read back")
	for _, name := range strings.Split(*levels, ",") {
		level, err := storage.ParseLevel(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		line, err := cacheOnce(ctx, int64(budget), level, compute, want)
		if err != nil {
			return fmt.Errorf("%v: %w", level, err)
		}
		fmt.Println(line)
	}
	return nil
}

// cacheOnce caches the partition at level in a fresh executor, reads it back and describes the
// outcome in one line.
func cacheOnce(ctx context.Context, budget int64, level storage.Level, compute func() storage.Iterator[record], want uint64) (string, error) {
	cfg := executor.Config{Budget: budget, Cores: 1}
	if level.UseOffHeap() {
		// Off-heap blocks are charged to the off-heap pool, which the executor sizes like
		// spark.memory.offHeap.size: here as large as the on-heap budget.
		cfg.OffHeap = budget
	}
	ex, err := executor.New(cfg)
	if err != nil {
		return "", err
	}
	defer ex.Close()
	codec := storage.NewPairCodec[int64, string](storage.VarintCodec[int64]{}, storage.StringCodec{})
	id := storage.RDDBlockID(0, 0)
	task := storage.NonTaskID

	heap := memtest.Start() // the live heap at every garbage collection while the block is cached and read
	start := time.Now()
	it, cached, err := storage.GetOrElseUpdate(ctx, ex.Blocks, task, id, level, codec, func() (storage.Iterator[record], error) { return compute(), nil })
	if err != nil {
		return "", err
	}
	var sum uint64
	for it.Next() {
		sum = checksum(sum, it.Value())
	}
	if err := it.Err(); err != nil {
		return "", err
	}
	if err := it.Close(); err != nil {
		return "", err
	}
	elapsed := time.Since(start)
	peak := heap.Stop()

	where := "not cached (recomputed on read)"
	if st, ok := ex.Blocks.Status(id); ok && cached {
		var parts []string
		if st.InMemory {
			parts = append(parts, "memory "+size(st.MemSize))
		}
		if st.OnDisk {
			parts = append(parts, "disk "+size(st.DiskSize))
		}
		where = strings.Join(parts, " + ")
	}
	check := "ok"
	if sum != want {
		check = "MISMATCH"
	}
	if _, err := ex.Blocks.Remove(ctx, task, id); err != nil {
		return "", err
	}
	if err := ex.Leaks(); err != nil {
		return "", err
	}
	return fmt.Sprintf("%-20v %-32s %10v %22s  %s", level, where, elapsed.Round(time.Millisecond), fmt.Sprintf("%s (%.1f×)", size(peak.Peak), float64(peak.Peak)/float64(budget)), check), nil
}
