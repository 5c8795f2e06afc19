// Command sort sorts 5,000,000 structs by a custom order — highest score first, then by user
// and time — with collection.Sort in one task of an executor with 16 MiB, far less than the
// records take, so the sort spills sorted runs and merges them. The records' codec is
// storage.NewStructCodec, one line per field. It checks the order as it reads the result and
// prints the time, the spills and the peak live heap. Run it with
//
//	go run ./examples/sort
//
// Files go to a temporary directory that is removed at the end.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"iter"
	"os"
	"os/signal"
	"time"
	"unsafe"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/collection"
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
		fmt.Fprintln(os.Stderr, "sort:", err)
		os.Exit(1)
	}
}

// event is the record sorted.
type event struct {
	User  int64
	At    int64
	Score float64
}

// byScore is the custom order: highest score first, then by user, then by time.
func byScore(a, b event) int {
	return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.User, b.User), cmp.Compare(a.At, b.At))
}

// eventCodec encodes an event in spill files, field by field.
var eventCodec = storage.NewStructCodec(
	storage.Field(func(e *event) *int64 { return &e.User }, storage.VarintCodec[int64]{}),
	storage.Field(func(e *event) *int64 { return &e.At }, storage.VarintCodec[int64]{}),
	storage.Field(func(e *event) *float64 { return &e.Score }, storage.Float64Codec{}),
)

// events yields n events made as they are read, calling progress after every 2^19.
func events(n int, progress func(read int)) iter.Seq[event] {
	return func(yield func(event) bool) {
		for i := 1; i <= n; i++ {
			if i%(1<<19) == 0 {
				progress(i)
			}
			h := uint64(i) * 0x9e3779b97f4a7c15
			if !yield(event{User: int64(h % 100_000), At: int64(i), Score: float64(h>>40) / (1 << 24)}) {
				return
			}
		}
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("sort", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "sort sorts structs by a custom order with collection.Sort, which spills, in a memory budget\n"+
			"far smaller than the records, and checks the order.\n\nUsage: go run ./examples/sort [flags]\n\n")
		fs.PrintDefaults()
	}
	n := fs.Int("records", 5_000_000, "structs to sort")
	budget := fs.String("memory", "16MiB", "memory budget of the executor")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mem, err := humanize.ParseBytes(*budget)
	if err != nil {
		return fmt.Errorf("-memory: %w", err)
	}
	dir, err := os.MkdirTemp("", "sort")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ex, err := executor.New(executor.Config{Budget: int64(mem), Cores: 1, Dirs: []string{dir}})
	if err != nil {
		return err
	}
	defer ex.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var read int
	var metrics collection.SpillMetrics
	start := time.Now()
	peak := memtest.Measure(func() {
		err = ex.Runner.Run(ctx, 1, func(ctx context.Context, tc *shuffle.TaskContext, _ int) error {
			progress := func(int) {}
			if isTerminal(os.Stdout) {
				progress = func(i int) {
					fmt.Printf("\r\033[Ksorting: %s of %s records read", humanize.Comma(int64(i)), humanize.Comma(int64(*n)))
				}
				defer fmt.Print("\r\033[K")
			}
			sorted, err := collection.Sort(ctx, tc.TaskManager(), tc.Disk(), eventCodec, collection.FromSeq(events(*n, progress)),
				collection.SortConfig[event]{Compare: byScore, Spill: tc.Runner().Config().Shuffle.Spill})
			if err != nil {
				return err
			}
			defer sorted.Close()
			var prev event
			for sorted.Next() {
				e := sorted.Value()
				if read > 0 && byScore(prev, e) > 0 {
					return fmt.Errorf("record %d (%+v) sorts before record %d (%+v)", read, e, read-1, prev)
				}
				prev = e
				read++
			}
			metrics = sorted.Metrics()
			return sorted.Err()
		})
	})
	if err != nil {
		return err
	}
	if read != *n {
		return fmt.Errorf("read %d records back, sorted %d", read, *n)
	}
	fmt.Printf("sorted %s records by score, user and time in %v, in a %s budget (the records take %s in a Go slice)\n",
		humanize.Comma(int64(read)), time.Since(start).Round(time.Millisecond), humanize.IBytes(mem),
		humanize.IBytes(uint64(read)*uint64(unsafe.Sizeof(event{}))))
	fmt.Printf("  %d sorted runs spilled to disk (%s written) and merged; peak live heap %s (the most any garbage collection found reachable)\n",
		metrics.Spills, humanize.IBytes(uint64(metrics.DiskBytesSpilled)), humanize.IBytes(uint64(peak.Peak)))
	return ex.Leaks()
}

// isTerminal says whether f is a terminal (a character device), where progress is shown.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
