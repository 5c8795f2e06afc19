package stress

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

// Running the stress test:
//
//	go test -race ./internal/stress/                          short: a few rounds (part of the normal suite)
//	go test ./internal/stress/ -stress.long -v                long: 200 rounds
//	go test ./internal/stress/ -stress.rounds=1000 -v         any length (or SPILLWAY_STRESS_ROUNDS=1000)
//	go test ./internal/stress/ -stress.seed=0x1234 -v         replay a run (or SPILLWAY_STRESS_SEED=0x1234)
//	go test ./internal/stress/ -stress.seed=0x1234 -stress.round=17 -v
//	                                                          replay only round 17 of that run
//	go test ./internal/stress/ -stress.fates=finish,cancel    only these fates (or SPILLWAY_STRESS_FATES)
//
// A failure names the master seed, the round and the task; the same seed replays the same rounds
// with the same tasks, data and fates (the interleaving, which is the point, differs).
var (
	flagSeed   = flag.String("stress.seed", "", "master seed of the stress test (default: $SPILLWAY_STRESS_SEED, else random)")
	flagRounds = flag.Int("stress.rounds", 0, "rounds of the stress test (default: $SPILLWAY_STRESS_ROUNDS, else 3, or 200 with -stress.long)")
	flagRound  = flag.Int("stress.round", -1, "run only this round of the master seed (default: $SPILLWAY_STRESS_ROUND, else all)")
	flagFates  = flag.String("stress.fates", "", "comma-separated fates tasks may meet: finish,cancel,abort,early-stop (default: $SPILLWAY_STRESS_FATES, else all); an excluded fate becomes finish, so seeds replay the same data")
	flagLong   = flag.Bool("stress.long", false, "run the long stress test (200 rounds unless -stress.rounds says otherwise)")
)

const (
	shortRounds = 3
	longRounds  = 200
	maxTasks    = 64
	// taskIDBase keeps the stress tasks' ids apart from the Runner's (which count from 1).
	taskIDBase memory.TaskID = 1 << 32
	// roundTimeout only turns a hang into a report naming the seed; no assertion depends on it.
	roundTimeout = 5 * time.Minute
)

// settings resolves the flags and environment variables.
func settings(t *testing.T) (seed uint64, rounds, only int) {
	t.Helper()
	seedText := *flagSeed
	if seedText == "" {
		seedText = os.Getenv("SPILLWAY_STRESS_SEED")
	}
	if seedText == "" {
		seed = rand.Uint64()
	} else {
		var err error
		seed, err = strconv.ParseUint(seedText, 0, 64)
		require.NoError(t, err, "stress seed %q", seedText)
	}
	rounds = *flagRounds
	if rounds == 0 {
		if env := os.Getenv("SPILLWAY_STRESS_ROUNDS"); env != "" {
			var err error
			rounds, err = strconv.Atoi(env)
			require.NoError(t, err, "SPILLWAY_STRESS_ROUNDS=%q", env)
		}
	}
	if rounds == 0 {
		rounds = shortRounds
		if *flagLong {
			rounds = longRounds
		}
	}
	only = *flagRound
	if env := os.Getenv("SPILLWAY_STRESS_ROUND"); only < 0 && env != "" {
		var err error
		only, err = strconv.Atoi(env)
		require.NoError(t, err, "SPILLWAY_STRESS_ROUND=%q", env)
	}
	return seed, rounds, only
}

func fateNames(allowed [numFates]bool) string {
	var names []string
	for f, ok := range allowed {
		if ok {
			names = append(names, fate(f).String())
		}
	}
	return strings.Join(names, ",")
}

// allowedFates resolves -stress.fates.
func allowedFates(t *testing.T) [numFates]bool {
	t.Helper()
	text := *flagFates
	if text == "" {
		text = os.Getenv("SPILLWAY_STRESS_FATES")
	}
	var allowed [numFates]bool
	if text == "" {
		for f := range allowed {
			allowed[f] = true
		}
		return allowed
	}
	for name := range strings.SplitSeq(text, ",") {
		found := false
		for f := range numFates {
			if f.String() == strings.TrimSpace(name) {
				allowed[f], found = true, true
			}
		}
		require.True(t, found, "unknown fate %q in -stress.fates", name)
	}
	return allowed
}

// TestStress runs the rounds; see the package doc and the comment on the flags.
func TestStress(t *testing.T) {
	seed, rounds, only := settings(t)
	fates := allowedFates(t)
	t.Logf("stress: master seed %#x, %d rounds, fates %v (replay: -stress.seed=%#x or SPILLWAY_STRESS_SEED=%#x)",
		seed, rounds, fateNames(fates), seed, seed)
	root := t.TempDir()
	var total counters
	start := time.Now()
	failedRounds := 0
	for r := range rounds {
		if only >= 0 && r != only {
			continue
		}
		rs := roundSeed(seed, r)
		failures := runRound(t, root, seed, r, rs, fates, &total)
		if len(failures) > 0 {
			failedRounds++
			for i, f := range failures {
				if i == 20 {
					t.Errorf("... and %d more", len(failures)-i)
					break
				}
				t.Errorf("master seed %#x round %d (replay: -stress.seed=%#x -stress.round=%d): %s", seed, r, seed, r, f)
			}
		}
	}
	t.Logf("stress: %d failed rounds in %v: %v", failedRounds,
		time.Since(start).Round(time.Millisecond), &total)
}

// roundSeed derives round r's seed from the master seed.
func roundSeed(master uint64, r int) uint64 {
	return rand.New(rand.NewPCG(master, uint64(r))).Uint64()
}

// counter names one operation count of the summary line.
type counter int

const (
	cRounds counter = iota
	cTasks
	cFinished
	cInserts
	cRecordsRead
	cAcquisitions
	cSpills
	cForcedSpills
	cSpillRequests
	cWaits
	cEvictions
	cBlocksPut
	cShuffles
	cCancellations
	cAborts
	cEarlyStops
	cOutOfMemory
	cChecks
	numCounters
)

func (c counter) String() string {
	return [...]string{"rounds", "tasks", "finished normally", "inserts", "records read",
		"hog acquisitions", "spills", "forced spills", "spill requests", "pool waits", "evictions",
		"blocks put", "shuffles", "cancellations", "aborts", "early stops", "out of memory", "monitor checks"}[c]
}

// counters are the operation counts.
type counters [numCounters]atomic.Int64

func (c *counters) add(o *counters) {
	for i := range c {
		c[i].Add(o[i].Load())
	}
}

func (c *counters) String() string {
	parts := make([]string, 0, numCounters)
	for i := range c {
		parts = append(parts, fmt.Sprintf("%v %d", counter(i), c[i].Load()))
	}
	return strings.Join(parts, ", ")
}

// round is what one round's tasks share.
type round struct {
	r      int
	seed   uint64
	m      *memory.UnifiedManager
	disk   *storage.DiskBlockManager
	bm     *storage.BlockManager
	runner *shuffle.Runner
	spill  collection.SpillConfig
	count  counters
	// tick wakes the monitor; tasks poke it as they make progress.
	tick chan struct{}

	mu       sync.Mutex
	failures []string
}

func (rd *round) failf(format string, args ...any) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.failures = append(rd.failures, fmt.Sprintf(format, args...))
}

func (rd *round) poke() {
	select {
	case rd.tick <- struct{}{}:
	default:
	}
}

// runRound runs round r and returns its failures; it adds its counts to total.
func runRound(t *testing.T, root string, master uint64, r int, seed uint64, fates [numFates]bool, total *counters) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	goroutines := runtime.NumGoroutine()

	// Each task's fair share is 64 to 256 KiB (the round's tasks and the Runner's, up to 4,
	// share the budget): under strict accounting a merge needs two spill readers and a writer
	// (at least a 32 KiB file buffer each, plus their batches), so with less most tasks would
	// end in ErrOutOfMemory before reaching the paths the test exercises, and with much more
	// few would spill.
	n := 1 + rng.IntN(maxTasks)
	budget := int64(n+4) * (64 << 10 << rng.IntN(3))
	m, err := memory.NewUnifiedManager(memory.Config{
		SystemMemory: budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1,
		StorageFraction: []float64{0.1, 0.5, 0.9}[rng.IntN(3)], NumCores: 1, PageSize: 64 << 10,
	})
	require.NoError(t, err)
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{root}, SubDirsPerDir: 4})
	require.NoError(t, err)
	bm, err := storage.NewBlockManager(storage.Config{Memory: m, Disk: disk})
	require.NoError(t, err)
	rd := &round{r: r, seed: seed, m: m, disk: disk, bm: bm, tick: make(chan struct{}, 1)}
	watchdog := time.AfterFunc(roundTimeout, func() {
		rd.mu.Lock()
		failures := strings.Join(rd.failures, "\n")
		rd.mu.Unlock()
		buf := make([]byte, 64<<20)
		buf = buf[:runtime.Stack(buf, true)]
		fmt.Fprintf(os.Stderr, "stress: master seed %#x round %d (replay: -stress.seed=%#x -stress.round=%d) still running after %v; failures so far:\n%s\ngoroutines:\n%s\n",
			master, r, master, r, roundTimeout, failures, buf)
		panic(fmt.Sprintf("stress: round %d hangs", r))
	})
	defer watchdog.Stop()
	rd.spill = collection.SpillConfig{
		InitialThreshold: []int64{collection.NoInitialThreshold, 4 << 10, 64 << 10}[rng.IntN(3)],
		BatchSize:        []int{0, 7, 100}[rng.IntN(3)],
		BatchBytes:       []int{0, 512, 4 << 10}[rng.IntN(3)],
		Compression:      []storage.Compression{storage.CompressionNone, storage.CompressionDefault}[rng.IntN(2)],
	}
	if rng.IntN(4) == 0 {
		rd.spill.ForceSpillElements = int64(50 + rng.IntN(500))
	}
	rd.runner, err = shuffle.NewRunner(shuffle.RunnerConfig{
		Memory: m, Disk: disk, Cores: 1 + rng.IntN(4),
		Shuffle: shuffle.Config{
			BypassMergeThreshold: []int{0, shuffle.NoBypassMerge}[rng.IntN(2)],
			MaxBytesInFlight:     int64(1+rng.IntN(64)) << 10,
			Spill:                rd.spill,
		},
		ExceptionOnMemoryLeak: true, ExceptionOnPinLeak: true,
	})
	require.NoError(t, err)

	tasks := make([]*task, n)
	for i := range tasks {
		tasks[i] = newTask(rd, i, rng.Uint64(), fates)
	}

	// The monitor checks the pools at every poke until the round ends.
	stop, monitorDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(monitorDone)
		prev := m.Metrics()
		for {
			select {
			case <-stop:
				return
			case <-rd.tick:
			}
			cur := m.Metrics()
			rd.count[cChecks].Add(1)
			// Waiting counts the stress tasks and the Runner's tasks, at most Cores per stage.
			for _, v := range append(CheckPools(cur, -1), CheckCounters(prev, cur)...) {
				rd.failf("monitor: %s", v)
			}
			prev = cur
		}
	}()

	var wg sync.WaitGroup
	for _, tk := range tasks {
		wg.Go(tk.run)
	}
	wg.Wait()
	close(stop)
	<-monitorDone

	// After the round: nothing left in memory, on disk or running.
	final := m.Metrics()
	for _, v := range append(CheckPools(final, 0), CheckIdle(final)...) {
		rd.failf("after the round: %s", v)
	}
	rd.count[cWaits].Add(final.Waits)
	rd.count[cSpillRequests].Add(final.SpillsRequested)
	rd.count[cEvictions].Add(final.EvictionsRequested)
	if err := rd.runner.Close(); err != nil {
		rd.failf("Runner.Close: %v", err)
	}
	if n := disk.Files(); n != 0 {
		rd.failf("after the round: the disk block manager still tracks %d files", n)
	}
	dirs := disk.LocalDirs()
	for _, f := range regularFiles(dirs) {
		rd.failf("after the round: file left on disk: %s", f)
	}
	if err := bm.Close(); err != nil {
		rd.failf("BlockManager.Close: %v", err)
	}
	if err := disk.Close(); err != nil {
		rd.failf("DiskBlockManager.Close: %v", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			rd.failf("after the round: local dir %s still exists (%v)", d, err)
		}
	}
	if leaked := waitGoroutines(goroutines); leaked != "" {
		rd.failf("after the round: goroutines left behind (%d at the start):\n%s", goroutines, leaked)
	}
	rd.count[cRounds].Add(1)
	total.add(&rd.count)
	return rd.failures
}

// regularFiles lists the regular files under dirs.
func regularFiles(dirs []string) []string {
	var files []string
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
	}
	return files
}

// waitGoroutines waits until no more than want goroutines run and returns "" or, when some
// remain, the stacks of all goroutines. Every goroutine of the round has signalled its end
// before this is called; the wait only covers the few instructions between such a signal and
// the goroutine's exit, and gives up (reporting a leak) only after a generous deadline.
func waitGoroutines(want int) string {
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 16<<20)
			return string(buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
	return ""
}

// describe names a value for failure messages.
func describe(vs []int64) string {
	if len(vs) > 8 {
		return fmt.Sprintf("%v... (%d values)", vs[:8], len(vs))
	}
	return fmt.Sprint(vs)
}
