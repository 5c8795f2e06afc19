// Command rssbound checks, from outside the process, that a spilling aggregation run under a Go
// memory limit derived from its budget (memory.Config.SetGoMemoryLimit) keeps its resident set
// within that limit plus a stated margin.
//
//	go run ./bench/cmd/rssbound                                  # 16 MiB budget, 4M records
//	go run ./bench/cmd/rssbound -budget 64MiB -records 8000000
//	go run ./bench/cmd/rssbound -go-limit=false                  # the same run without the limit
//
// It runs itself as a child process (environment RSSBOUND_CHILD=1) that counts -records records over records/4
// distinct keys in a collection.ExternalAppendOnlyMap under a memory.Config{Budget: budget,
// SetGoMemoryLimit: true} manager, and reads the child's peak resident set (getrusage's
// ru_maxrss, the kernel's VmHWM) when it exits. It prints the peak RSS beside the Go memory limit
// and exits with status 1 when RSS exceeds limit + margin. The margin (-margin, default 16 MiB)
// covers what the Go memory limit does not: the binary's mapped code and data, and the C
// and kernel memory of the process. Without -go-limit the limit it reports against is the one
// the option would have set.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/memory/memtest"
	"github.com/spillway/spillway/storage"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rssbound:", err)
		os.Exit(1)
	}
}

type options struct {
	budget, allowance, margin int64
	records                   int64
	goLimit                   bool
}

// childEnv in the environment makes the process the child that runs the aggregation.
const childEnv = "RSSBOUND_CHILD"

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("rssbound", flag.ContinueOnError)
	budget := fs.String("budget", "16MiB", "memory budget (memory.Config.Budget)")
	allowance := fs.String("allowance", "0", "memory.Config.NonSpillwayAllowance (0: the default, 32 MiB + budget/4)")
	margin := fs.String("margin", "16MiB", "what RSS may exceed the Go memory limit by")
	fs.Int64Var(&o.records, "records", 4_000_000, "records aggregated (records/4 distinct keys)")
	fs.BoolVar(&o.goLimit, "go-limit", true, "set the Go memory limit from the budget (memory.Config.SetGoMemoryLimit)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, f := range []struct {
		name string
		s    string
		dst  *int64
	}{{"budget", *budget, &o.budget}, {"allowance", *allowance, &o.allowance}, {"margin", *margin, &o.margin}} {
		n, err := humanize.ParseBytes(f.s)
		if err != nil || n > 1<<62 {
			return o, fmt.Errorf("-%s %q: want a size such as 16MiB", f.name, f.s)
		}
		*f.dst = int64(n)
	}
	if o.records <= 0 {
		return o, fmt.Errorf("-records %d: must be positive", o.records)
	}
	return o, nil
}

func run(args []string, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if os.Getenv(childEnv) == "1" {
		return child(o, stdout)
	}
	return parent(args, o, stdout)
}

// parent runs the child and compares its peak RSS with the Go memory limit.
func parent(args []string, o options, stdout io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var out strings.Builder
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, stdout), os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("child: %w", err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return errors.New("no resource usage of the child on this platform")
	}
	rss := int64(ru.Maxrss) << 10 // KiB on Linux
	limit, err := field(out.String(), "goMemoryLimit")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "peak RSS %s; Go memory limit %s + margin %s = %s\n",
		size(rss), size(limit), size(o.margin), size(limit+o.margin))
	if rss > limit+o.margin {
		return fmt.Errorf("peak RSS %s exceeds the Go memory limit %s + margin %s", size(rss), size(limit), size(o.margin))
	}
	fmt.Fprintln(stdout, "ok: RSS within the Go memory limit plus the margin")
	return nil
}

// field reads "name=<bytes>" from the child's output.
func field(out, name string) (int64, error) {
	for line := range strings.SplitSeq(out, "\n") {
		if v, ok := strings.CutPrefix(line, name+"="); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("child printed no %s", name)
}

// child runs the aggregation.
func child(o options, stdout io.Writer) (err error) {
	cfg := memory.Config{Budget: o.budget, NonSpillwayAllowance: o.allowance, SetGoMemoryLimit: o.goLimit}
	mm, err := memory.NewUnifiedManager(cfg)
	if err != nil {
		return err
	}
	defer mm.Close()
	limit := mm.Sizing().GoMemoryLimit
	if limit == 0 { // what the option would have set
		limit = mm.Sizing().OnHeap + mm.Sizing().NonSpillwayAllowance
	}
	dir, err := os.MkdirTemp("", "rssbound-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{dir}})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, disk.Close()) }()
	tm := memory.NewTaskManager(mm, 1, memory.TaskConfig{})
	defer func() {
		if leaked := tm.Close(); leaked != 0 && err == nil {
			err = fmt.Errorf("%d bytes of execution memory leaked", leaked)
		}
	}()
	scope := disk.NewScope()
	defer scope.Close()
	agg := collection.Aggregator[string, int64, int64]{
		CreateCombiner: func(v int64) int64 { return v },
		MergeValue:     func(c, v int64) int64 { return c + v },
		MergeCombiners: func(a, b int64) int64 { return a + b },
	}
	m, err := collection.NewExternalAppendOnlyMap(tm, scope, agg, storage.StringCodec{}, storage.VarintCodec[int64]{},
		collection.ExternalMapConfig[string]{})
	if err != nil {
		return err
	}
	defer m.Close()

	ctx := context.Background()
	heap := memtest.Start()
	r := rand.New(rand.NewPCG(1, 2))
	keys := uint64(max(o.records/4, 1))
	for range o.records {
		if err := m.Insert(ctx, "user-"+strconv.FormatUint(r.Uint64N(keys), 36), 1); err != nil {
			return err
		}
	}
	it, err := m.Iterator(ctx)
	if err != nil {
		return err
	}
	var sum, distinct int64
	for it.Next() {
		sum += it.Value().Value
		distinct++
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return err
	}
	peak := heap.Stop()
	if sum != o.records {
		return fmt.Errorf("counted %d records, want %d", sum, o.records)
	}
	met := m.Metrics()
	fmt.Fprintf(stdout, "aggregated %d records, %d keys, budget %s, Go memory limit %s (set: %v), %d spills; peak live heap %s\n",
		o.records, distinct, size(o.budget), size(limit), o.goLimit, met.Spills+met.ForcedSpills, size(peak.Peak))
	fmt.Fprintf(stdout, "goMemoryLimit=%d\n", limit)
	return nil
}

func size(n int64) string { return humanize.IBytes(uint64(n)) }
