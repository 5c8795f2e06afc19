// Package memtest checks from inside a test that code keeps its memory budget: a Sampler records
// the live heap the garbage collector finds at every cycle, and Require fails the test when the
// peak exceeds the budget plus a stated slack, or grows with the data.
//
// The live heap is runtime/metrics' /gc/heap/live:bytes: the bytes the last collection marked
// reachable, the figure GODEBUG=gctrace=1 prints as the second of its three heap sizes. It is
// only known at the end of a cycle, so the sampler reads it once per cycle, from a cleanup
// (runtime.AddCleanup) that the cycle itself triggers: no polling goroutine, no timing.
//
// What a concurrent collection reports live includes every object allocated while it marked
// (the runtime allocates them already marked), garbage or not: on a busy machine, where a mark
// spans many allocations, that adds megabytes that were never reachable together. RunExact
// runs a test binary's tests with every collection stopping the world
// (GODEBUG=gcstoptheworld=1), so the live heap is exactly what was reachable at each cycle.
//
// Spillway's own scenario tests use this package; an engine can put the same bound on its own
// operators. A Sampler observes the whole process, so tests that use one must not run in
// parallel with other allocating tests.
package memtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dustin/go-humanize"
)

// LiveHeap runs a full garbage collection and returns the live heap it found.
func LiveHeap() int64 {
	runtime.GC()
	return read().live
}

type reading struct {
	live   int64
	cycles uint64
}

func read() reading {
	s := [2]metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s[:])
	return reading{live: int64(s[0].Value.Uint64()), cycles: s[1].Value.Uint64()}
}

// Peak is what a Sampler saw between Start and Stop.
type Peak struct {
	// Baseline is the live heap at Start, after a full collection.
	Baseline int64
	// Peak is the largest live heap found by any collection between Start and Stop (at least
	// Baseline).
	Peak int64
	// Cycles is the number of garbage collections between Start and Stop; Sampled is how many
	// of them the sampler read. A cycle is missed only when the next one ends before the
	// runtime ran the first one's cleanup.
	Cycles, Sampled uint64
}

// Growth is the peak live heap above the baseline: what the code under test held at its worst.
func (p Peak) Growth() int64 { return p.Peak - p.Baseline }

// String gives the figures in IEC units.
func (p Peak) String() string {
	return fmt.Sprintf("peak live heap %s (baseline %s, growth %s; %d of %d GC cycles sampled)",
		size(p.Peak), size(p.Baseline), size(p.Growth()), p.Sampled, p.Cycles)
}

// Sampler records the live heap at every garbage collection. Create one with Start.
type Sampler struct {
	mu      sync.Mutex
	stopped bool
	start   reading
	peak    int64
	sampled uint64
}

// token is the object whose collection marks the end of a cycle. It holds a pointer so the
// runtime never places it in a tiny-allocator block shared with live objects.
type token struct{ _ *byte }

// Start runs a full collection, records the live heap as the baseline and starts sampling.
func Start() *Sampler {
	runtime.GC()
	r := read()
	s := &Sampler{start: r, peak: r.live}
	s.arm()
	return s
}

func (s *Sampler) arm() {
	runtime.AddCleanup(new(token), (*Sampler).observe, s)
}

// observe runs on the runtime's cleanup goroutine after a cycle found the current token
// unreachable: it records that cycle's live heap and arms the next token.
func (s *Sampler) observe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.peak = max(s.peak, read().live)
	s.sampled++
	s.arm()
}

// Stop ends sampling and returns what was seen. It does not force a collection: the peak is the
// workload's, not the heap after it. Stop may be called more than once; later calls return the
// same figures.
func (s *Sampler) Stop() Peak {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.stopped = true
		r := read()
		if r.cycles > s.start.cycles+s.sampled { // the last cycle's cleanup has not run yet
			s.peak = max(s.peak, r.live)
			s.sampled++
		}
		s.start.cycles = r.cycles - s.start.cycles // now the number of cycles while sampling
	}
	return Peak{Baseline: s.start.live, Peak: s.peak, Cycles: s.start.cycles, Sampled: s.sampled}
}

// Measure samples the live heap while f runs.
func Measure(f func()) Peak {
	s := Start()
	f()
	return s.Stop()
}

// Bound is a bound on a peak's growth: the memory budget plus a slack for what no budget
// accounts (runtime structures, the test's own bookkeeping, the garbage collector's granularity).
type Bound struct {
	Budget, Slack int64
}

// StrictBound is the bound Spillway states for its own collections: the budget plus 10% of it
// plus 2 MiB.
func StrictBound(budget int64) Bound {
	return Bound{Budget: budget, Slack: budget/10 + 2<<20}
}

// Limit is Budget + Slack.
func (b Bound) Limit() int64 { return b.Budget + b.Slack }

// Check returns an error naming the sizes if p's growth exceeds b.
func (b Bound) Check(p Peak) error {
	if p.Growth() > b.Limit() {
		return fmt.Errorf("memtest: live heap grew by %s, above the budget %s plus slack %s = %s (%s)",
			size(p.Growth()), size(b.Budget), size(b.Slack), size(b.Limit()), p)
	}
	return nil
}

// Require fails t if p's growth exceeds b, and logs the figures either way.
func Require(t testing.TB, p Peak, b Bound) {
	t.Helper()
	t.Logf("memtest: %s; bound %s + %s slack", p, size(b.Budget), size(b.Slack))
	if err := b.Check(p); err != nil {
		t.Fatal(err)
	}
}

// RequireFlat fails t if the larger run's growth exceeds the smaller run's by more than
// tolerance bytes: the peak must not grow with the data.
func RequireFlat(t testing.TB, small, large Peak, tolerance int64) {
	t.Helper()
	t.Logf("memtest: growth %s on the small input, %s on the large one (tolerance %s)",
		size(small.Growth()), size(large.Growth()), size(tolerance))
	if large.Growth() > small.Growth()+tolerance {
		t.Fatalf("memtest: peak grows with the data: growth %s on the large input, %s on the small one, more than %s apart",
			size(large.Growth()), size(small.Growth()), size(tolerance))
	}
}

func size(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}

// exactSetting is the GODEBUG setting RunExact runs the tests with.
const exactSetting = "gcstoptheworld=1"

// RunExact runs m's tests with every garbage collection stopping the world, so that the live
// heap a Sampler reads is what was reachable at that collection, with nothing allocated during
// a concurrent mark counted in. The runtime reads GODEBUG's gcstoptheworld only at start-up, so
// unless it is already set RunExact runs the test binary again as a child process with
// GODEBUG=gcstoptheworld=1 added, the same arguments, standard input and outputs, and returns
// the child's exit code; otherwise it returns m.Run(). Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(memtest.RunExact(m)) }
//
// Collections then pause the program for the whole mark, which at the small heaps of memory
// tests takes well under a millisecond.
func RunExact(m *testing.M) int {
	godebug := os.Getenv("GODEBUG")
	if slices.Contains(strings.Split(godebug, ","), exactSetting) {
		return m.Run()
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "memtest: cannot run the tests again with GODEBUG=%s: %v\n", exactSetting, err)
		return 1
	}
	if godebug != "" {
		godebug += ","
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), "GODEBUG="+godebug+exactSetting)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "memtest: running the tests with GODEBUG=%s: %v\n", exactSetting, err)
		return 1
	}
	return 0
}
