// Command peers runs the same aggregation and sort work against Spillway and its peers (DuckDB
// through its Go driver, lanrat/extsort, the built-in Go map and slices.SortFunc) at the same
// memory budget, checks that every engine produced the same result, and prints a markdown table
// of Spillway's time over each peer's (min/median/max over interleaved runs), with each engine's
// peak RSS and peak live Go heap. Every attempt runs in a child process of this binary, so that
// its RSS is its own.
//
//	cd bench/peers && go run . -runs 5
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/dustin/go-humanize"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == childArg {
		os.Exit(runChild(os.Args[2]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// kind is the shape of a work.
type kind int

const (
	aggInt    kind = iota // sum per int64 key
	aggStr                // sum per string key
	sortPairs             // sort (int64, int64) pairs by key
)

// Engines.
const (
	engSpillway = "spillway"
	engDuckDB   = "duckdb"
	engMap      = "map"
	engSlices   = "slices"
	engExtsort  = "extsort"
)

// work is one row group of the table: Spillway against each of peers.
type work struct {
	name  string
	desc  string
	kind  kind
	spill bool  // run at the spilling budget; else at -mem-budget
	mib   int64 // the default spilling budget
	peers []string
}

func allWorks() []work {
	return []work{
		{"agg-int64-spill", "int64 aggregation spilling", aggInt, true, 32, []string{engDuckDB, engMap}},
		{"agg-int64-mem", "int64 aggregation in memory", aggInt, false, 0, []string{engDuckDB, engMap}},
		{"agg-string-spill", "string-key aggregation spilling", aggStr, true, 48, []string{engDuckDB, engMap}},
		{"agg-string-mem", "string-key aggregation in memory", aggStr, false, 0, []string{engDuckDB, engMap}},
		{"sort-spill", "sort (int64, int64) pairs spilling", sortPairs, true, 32, []string{engDuckDB, engExtsort, engSlices}},
		{"sort-mem", "sort (int64, int64) pairs in memory", sortPairs, false, 0, []string{engDuckDB, engExtsort, engSlices}},
	}
}

func findWork(name string) (work, bool) {
	for _, w := range allWorks() {
		if w.name == name {
			return w, true
		}
	}
	return work{}, false
}

type options struct {
	runs              int
	records, keys     int64
	budget, memBudget int64
	threads           int
	work, peer        *regexp.Regexp
	dir, profiles     string
}

func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("peers", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var (
		o                           options
		budgetFlag, memFlag, wf, pf string
	)
	fl.IntVar(&o.runs, "runs", 5, "interleaved runs of every engine per work")
	fl.Int64Var(&o.records, "records", 10_000_000, "records per work")
	fl.Int64Var(&o.keys, "keys", 1_000_000, "distinct keys of the aggregations")
	fl.StringVar(&budgetFlag, "budget", "", "memory budget of the spilling works (default 32MiB, 48MiB for string keys)")
	fl.StringVar(&memFlag, "mem-budget", "2GiB", "memory budget of the in-memory works")
	fl.IntVar(&o.threads, "threads", 1, "DuckDB's threads (extsort keeps its default 2 workers)")
	fl.StringVar(&wf, "work", "", "regexp: run only the works whose name matches")
	fl.StringVar(&pf, "peer", "", "regexp: run only the peers whose name matches (duckdb, map, extsort, slices)")
	fl.StringVar(&o.dir, "dir", os.TempDir(), "directory for spill and temporary files (on a tmpfs they stay in memory)")
	fl.StringVar(&o.profiles, "cpuprofile", "", "directory to write a CPU profile of every attempt's timed part to")
	fl.Usage = func() {
		fmt.Fprint(stderr, `peers runs the same work against Spillway and against its peers:
sum per key over int64 and string keys, and a sort of (int64, int64) pairs, each in memory and
spilling at a small budget, against DuckDB (in-memory database, memory_limit = the budget, one
thread by default, temp_directory), lanrat/extsort (chunks sized to the budget), the built-in Go
map and slices.SortFunc. Every attempt runs in a child process, interleaved (Spillway, peer 1,
peer 2, Spillway, ...), and every result is checked against the others. It prints a markdown
table of Spillway's wall and CPU time over each peer's (min/median/max over the runs), and peak
RSS and peak live Go heap per engine; progress goes to stderr. It exits 1 when an attempt fails
or its result differs (DuckDB running out of memory is reported in the table instead).

Works: agg-int64-spill, agg-int64-mem, agg-string-spill, agg-string-mem, sort-spill, sort-mem.

Usage: peers [flags]
`)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "peers: "+format+"\n", a...)
		return 2
	}
	if fl.NArg() > 0 {
		return fail("unexpected arguments %q", fl.Args())
	}
	var err error
	if budgetFlag != "" {
		if o.budget, err = parseSize(budgetFlag); err != nil {
			return fail("-budget: %v", err)
		}
	}
	if o.memBudget, err = parseSize(memFlag); err != nil {
		return fail("-mem-budget: %v", err)
	}
	if o.work, err = regexp.Compile(wf); err != nil {
		return fail("-work: %v", err)
	}
	if o.peer, err = regexp.Compile(pf); err != nil {
		return fail("-peer: %v", err)
	}
	switch {
	case o.runs < 1:
		return fail("-runs must be at least 1, got %d", o.runs)
	case o.records < 1 || o.keys < 1:
		return fail("-records and -keys must be positive, got %d and %d", o.records, o.keys)
	case o.keys > 1<<32:
		return fail("-keys must be at most 2^32, got %d", o.keys)
	case o.records > 1<<32:
		return fail("-records must be at most 2^32 (the sort's keys are distinct up to there), got %d", o.records)
	case o.threads < 1:
		return fail("-threads must be at least 1, got %d", o.threads)
	}
	if o.profiles != "" {
		if err := os.MkdirAll(o.profiles, 0o755); err != nil {
			return fail("%v", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fail("%v", err)
	}

	fmt.Fprintf(stdout, "%s records, %s keys, %d interleaved runs, DuckDB %s, lanrat/extsort %s, GOMAXPROCS %d, %d CPUs\n\n",
		humanize.Comma(o.records), humanize.Comma(o.keys), o.runs, duckVersion(), moduleVersion("github.com/lanrat/extsort"),
		runtime.GOMAXPROCS(0), runtime.NumCPU())
	var rows []string
	failed := false
	for _, w := range allWorks() {
		if !o.work.MatchString(w.name) {
			continue
		}
		peers := slices.DeleteFunc(slices.Clone(w.peers), func(p string) bool { return !o.peer.MatchString(p) })
		if len(peers) == 0 {
			continue
		}
		p := params{Records: o.records, Keys: o.keys, Budget: o.memBudget, Threads: o.threads}
		if w.spill {
			p.Budget = w.mib << 20
			if o.budget > 0 {
				p.Budget = o.budget
			}
		}
		engs := append([]string{engSpillway}, peers...)
		res := map[string][]attempt{}
		for r := range o.runs {
			for _, e := range engs {
				a := runAttempt(self, o, w, e, r, p)
				res[e] = append(res[e], a)
				fmt.Fprintf(stderr, "%s run %d/%d %s: %s\n", w.name, r+1, o.runs, e, a)
			}
		}
		if !validate(stderr, w, res, engs) {
			failed = true
		}
		rows = append(rows, tableRows(w, p, peers, res)...)
	}
	fmt.Fprintln(stdout, "| work | peer | time, Spillway ÷ peer (min/median/max) | CPU time, Spillway ÷ peer | median time, Spillway / peer | peak RSS, Spillway / peer | peak live Go heap, Spillway / peer |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintln(stdout, r)
	}
	if failed {
		fmt.Fprintln(stderr, "peers: some attempts failed or disagreed (above)")
		return 1
	}
	return 0
}

func parseSize(s string) (int64, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, err
	}
	if n < 1<<20 || n > 1<<40 {
		return 0, fmt.Errorf("%s is outside [1 MiB, 1 TiB]", s)
	}
	return int64(n), nil
}

// attempt is one child's run of one engine.
type attempt struct {
	childResult
	rss    int64 // peak RSS (the child's ru_maxrss)
	failed string
}

func (a attempt) String() string {
	s := fmt.Sprintf("%.3f s (CPU %.3f s), RSS %s, live heap %s, %s", a.Seconds, a.CPU, mib(a.rss), mib(int64(a.PeakHeap)), a.Outcome.Check)
	if a.Outcome.Spills > 0 {
		s += fmt.Sprintf(", %d spills", a.Outcome.Spills)
	}
	switch {
	case a.OOM:
		s += ": OUT OF MEMORY: " + a.Err
	case a.failed != "":
		s += ": FAILED: " + a.failed
	}
	return s
}

func (a attempt) ok() bool { return !a.OOM && a.failed == "" }

// runAttempt runs engine e on work w in a child process, in a directory of its own that must
// be empty again when the child exits.
func runAttempt(self string, o options, w work, e string, r int, p params) (a attempt) {
	dir, err := os.MkdirTemp(o.dir, "peers-")
	if err != nil {
		a.failed = err.Error()
		return a
	}
	defer os.RemoveAll(dir)
	p.Dir = dir
	sp := childSpec{Work: w.name, Engine: e, Params: p}
	if o.profiles != "" {
		sp.CPUProfile = filepath.Join(o.profiles, fmt.Sprintf("%s-%s-%d.pprof", w.name, e, r+1))
	}
	js, err := json.Marshal(sp)
	if err != nil {
		panic("peers: " + err.Error())
	}
	cmd := exec.Command(self, childArg, string(js))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			a.rss = ru.Maxrss << 10
		}
	}
	if runErr != nil {
		a.failed = fmt.Sprintf("child: %v: %s", runErr, tail(stderr.String()))
		return a
	}
	if err := json.Unmarshal(stdout.Bytes(), &a.childResult); err != nil {
		a.failed = fmt.Sprintf("child output %q: %v", tail(stdout.String()), err)
		return a
	}
	if a.Err != "" && !a.OOM {
		a.failed = a.Err
	}
	var left []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, path)
		}
		return nil
	})
	if len(left) > 0 && a.failed == "" && !a.OOM {
		a.failed = fmt.Sprintf("left %d files behind, %s first", len(left), left[0])
	}
	return a
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// validate checks that every successful attempt of every engine produced the same result, and
// marks the others failed. It reports whether no attempt failed (DuckDB running out of memory
// is not a failure: the table says so).
func validate(log io.Writer, w work, res map[string][]attempt, engs []string) bool {
	var want *check
	var from string
	good := true
	for _, e := range engs {
		for i := range res[e] {
			a := &res[e][i]
			switch {
			case a.OOM:
				continue
			case a.failed != "":
				good = false
			case want == nil:
				want, from = &a.Outcome.Check, e
			case a.Outcome.Check != *want:
				a.failed = fmt.Sprintf("result %s differs from %s's %s", a.Outcome.Check, from, *want)
				fmt.Fprintf(log, "%s run %d %s: %s\n", w.name, i+1, e, a.failed)
				good = false
			}
		}
	}
	return good
}

func tableRows(w work, p params, peers []string, res map[string][]attempt) []string {
	sw := res[engSpillway]
	label := w.desc
	if w.spill {
		label += " in " + mib(p.Budget)
	}
	if spills := medianInt(sw, func(a attempt) int64 { return a.Outcome.Spills }); spills > 0 {
		label += fmt.Sprintf(" (%d spills)", spills)
	}
	wall := func(a attempt) float64 { return a.Seconds }
	cpu := func(a attempt) float64 { return a.CPU }
	rss := func(a attempt) int64 { return a.rss }
	heap := func(a attempt) int64 { return int64(a.PeakHeap) }
	var rows []string
	for _, peer := range peers {
		pr := res[peer]
		oom, failed := 0, 0
		for _, a := range pr {
			switch {
			case a.OOM:
				oom++
			case !a.ok():
				failed++
			}
		}
		ratio := ratios(sw, pr, wall)
		if oom > 0 {
			ratio = fmt.Sprintf("%s; %s out of memory in %d/%d runs", ratio, peerName(peer, p), oom, len(pr))
		}
		if failed > 0 {
			ratio = fmt.Sprintf("%s; FAILED in %d/%d runs", ratio, failed, len(pr))
		}
		if n := len(sw) - countOK(sw); n > 0 {
			ratio = fmt.Sprintf("%s; Spillway FAILED in %d/%d runs", ratio, n, len(sw))
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s / %s | %s / %s | %s / %s |", label, peerName(peer, p),
			ratio, ratios(sw, pr, cpu), secs(sw, wall), secs(pr, wall),
			mib(maxOf(sw, rss)), mib(maxOf(pr, rss)), mib(maxOf(sw, heap)), mib(maxOf(pr, heap))))
	}
	return rows
}

// ratios is min/median/max of f(Spillway's run r) ÷ f(the peer's run r) over the runs both
// completed.
func ratios(sw, pr []attempt, f func(attempt) float64) string {
	var rs []float64
	for r := range pr {
		if sw[r].ok() && pr[r].ok() {
			rs = append(rs, f(sw[r])/f(pr[r]))
		}
	}
	if len(rs) == 0 {
		return "–"
	}
	slices.Sort(rs)
	return fmt.Sprintf("%.2f/%.2f/%.2f", rs[0], median(rs), rs[len(rs)-1])
}

func peerName(peer string, p params) string {
	switch peer {
	case engDuckDB:
		if p.Threads == 1 {
			return "DuckDB, 1 thread"
		}
		return fmt.Sprintf("DuckDB, %d threads", p.Threads)
	case engMap:
		return "built-in map, in memory"
	case engSlices:
		return "slices.SortFunc, in memory"
	case engExtsort:
		return "lanrat/extsort " + moduleVersion("github.com/lanrat/extsort")
	}
	return peer
}

func countOK(as []attempt) int {
	n := 0
	for _, a := range as {
		if a.ok() {
			n++
		}
	}
	return n
}

func median(xs []float64) float64 {
	if n := len(xs); n%2 == 1 {
		return xs[n/2]
	} else {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
}

// secs is the median of f over the successful attempts, in seconds.
func secs(as []attempt, f func(attempt) float64) string {
	var xs []float64
	for _, a := range as {
		if a.ok() {
			xs = append(xs, f(a))
		}
	}
	if len(xs) == 0 {
		return "–"
	}
	slices.Sort(xs)
	return fmt.Sprintf("%.2f s", median(xs))
}

func medianInt(as []attempt, f func(attempt) int64) int64 {
	var xs []int64
	for _, a := range as {
		if a.ok() {
			xs = append(xs, f(a))
		}
	}
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// maxOf is the largest f over every attempt that ran to its end (out-of-memory ones included).
func maxOf(as []attempt, f func(attempt) int64) int64 {
	var m int64
	for _, a := range as {
		if a.ok() || a.OOM {
			m = max(m, f(a))
		}
	}
	return m
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "(unknown version)"
}
