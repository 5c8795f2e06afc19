// Command sort sorts 5,000,000 structs by a custom order — highest score first, then by user
// and time — with a collection.ExternalSorter in one task of an executor with 16 MiB, far less
// than the records take, so the sorter spills sorted runs and merges them. It checks the order
// as it reads the result and prints the time, the spills and the peak live heap. Run it with
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
	"os"
	"os/signal"
	"time"

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

// eventCodec encodes an event field by field.
var eventCodec = storage.FuncCodec[event]{
	AppendFunc: func(dst []byte, e event) []byte {
		dst = storage.VarintCodec[int64]{}.Append(dst, e.User)
		dst = storage.VarintCodec[int64]{}.Append(dst, e.At)
		return storage.Float64Codec{}.Append(dst, e.Score)
	},
	DecodeFunc: func(src []byte) (e event, n int, err error) {
		var m int
		if e.User, m, err = (storage.VarintCodec[int64]{}).Decode(src); err != nil {
			return e, 0, err
		}
		n += m
		if e.At, m, err = (storage.VarintCodec[int64]{}).Decode(src[n:]); err != nil {
			return e, 0, err
		}
		n += m
		if e.Score, m, err = (storage.Float64Codec{}).Decode(src[n:]); err != nil {
			return e, 0, err
		}
		return e, n + m, nil
	},
}

// noValue encodes the sorter's values, which plain records do not have.
var noValue = storage.FuncCodec[struct{}]{
	AppendFunc: func(dst []byte, _ struct{}) []byte { return dst },
	DecodeFunc: func([]byte) (struct{}, int, error) { return struct{}{}, 0, nil },
}

// events returns n events made as they are read, calling progress after every 2^19.
func events(n int, progress func(read int)) collection.Iterator[collection.Pair[event, struct{}]] {
	i := 0
	return storage.FuncIterator(func() (collection.Pair[event, struct{}], bool, error) {
		if i == n {
			return collection.Pair[event, struct{}]{}, false, nil
		}
		if i++; i%(1<<19) == 0 {
			progress(i)
		}
		h := uint64(i) * 0x9e3779b97f4a7c15
		e := event{User: int64(h % 100_000), At: int64(i), Score: float64(h>>40) / (1 << 24)}
		return collection.Pair[event, struct{}]{Key: e}, true, nil
	}, nil)
}

func run(args []string) error {
	fs := flag.NewFlagSet("sort", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "sort sorts structs by a custom order with an ExternalSorter that spills, in a memory budget\n"+
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
			s, err := collection.NewExternalSorter(tc.TaskManager(), tc.Disk(), eventCodec, noValue, collection.SorterConfig[event, struct{}, struct{}]{
				Ordering: byScore, Spill: tc.Runner().Config().Shuffle.Spill,
			})
			if err != nil {
				return err
			}
			defer s.Close()
			progress := func(int) {}
			if isTerminal(os.Stdout) {
				progress = func(i int) {
					fmt.Printf("\r\033[Ksorting: %s of %s records inserted, %d sorted runs spilled so far", humanize.Comma(int64(i)), humanize.Comma(int64(*n)), s.NumSpills())
				}
				defer fmt.Print("\r\033[K")
			}
			if err := s.InsertAll(ctx, events(*n, progress)); err != nil {
				return err
			}
			it, err := s.Iterator(ctx)
			if err != nil {
				return err
			}
			defer it.Close()
			var prev event
			for it.Next() {
				if e := it.Value().Key; read > 0 && byScore(prev, e) > 0 {
					return fmt.Errorf("record %d (%+v) sorts before record %d (%+v)", read, e, read-1, prev)
				} else {
					prev = e
				}
				read++
			}
			metrics = s.Metrics()
			return it.Err()
		})
	})
	if err != nil {
		return err
	}
	if read != *n {
		return fmt.Errorf("read %d records back, sorted %d", read, *n)
	}
	fmt.Printf("sorted %s records by score, user and time in %v: %d spills (%s written to disk); peak live heap %s (budget %s)\n",
		humanize.Comma(int64(read)), time.Since(start).Round(time.Millisecond), metrics.Spills,
		humanize.IBytes(uint64(metrics.DiskBytesSpilled)), humanize.IBytes(uint64(peak.Peak)), humanize.IBytes(mem))
	return ex.Leaks()
}

// isTerminal says whether f is a terminal (a character device), where progress is shown.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
