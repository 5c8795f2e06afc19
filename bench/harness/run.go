package harness

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"
)

// DefaultInterval is the sampling interval when Config.Interval is 0.
const DefaultInterval = 10 * time.Millisecond

// Config configures Run. Its zero value samples every 10 ms, keeps run directories under
// os.TempDir(), reports no progress and logs nothing.
type Config struct {
	// Interval between samples. 0 means DefaultInterval.
	Interval time.Duration
	// TempDir is where each run's directory (spill files, baseline run files) is created.
	// "" means os.TempDir().
	TempDir string
	// Progress, when set, is called about once a second during a run, from the sampler's
	// goroutine.
	Progress func(Progress)
	// Logger is handed to the library through Env.Logger. nil means zap.NewNop().
	Logger *zap.Logger
}

// Body runs one workload in env and returns how many input records it processed.
type Body func(ctx context.Context, env *Env) (records int64, err error)

// Spec is one run: a workload body with a strategy, or a plain-Go baseline.
type Spec struct {
	Workload string
	// Baseline names a plain-Go baseline ("map", "slices.SortFunc", …); empty for a library run.
	Baseline string
	Strategy Strategy
	Budget   int64
	// OwnMemory says the body runs on a memory manager of its own (an executor it builds with
	// Budget), which it hands to the sampler with Env.UseMemory; Env.Memory and Env.Disk are nil.
	OwnMemory bool
	Body      Body
}

// Run runs spec.Body while sampling memory, and returns its result row and timeline. Before the
// body it collects garbage twice so earlier runs in the process do not count against it.
// It fails when the body fails, or when the body left accounted memory or spill files behind
// (the library's accounting must return to zero); the result row then carries the error text.
// The sampler goroutine is stopped and waited for on every path, a panic in the body included.
func Run(ctx context.Context, cfg Config, spec Spec) (res Result, tl Timeline, err error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if spec.Budget <= 0 {
		return Result{}, Timeline{}, fmt.Errorf("harness: %s: budget must be positive, got %d", spec.Workload, spec.Budget)
	}
	if spec.Body == nil {
		return Result{}, Timeline{}, fmt.Errorf("harness: %s: no body", spec.Workload)
	}
	res = Result{Workload: spec.Workload, Budget: spec.Budget, Strategy: spec.Strategy.Label(), Baseline: spec.Baseline != ""}
	if res.Baseline {
		res.Strategy = "baseline: " + spec.Baseline
	}
	env, err := newEnv(cfg, spec.Budget, spec.Strategy, res.Baseline, spec.OwnMemory)
	if err != nil {
		res.Err = err.Error()
		return res, Timeline{}, err
	}
	defer func() {
		if cerr := env.close(); cerr != nil {
			err = errors.Join(err, cerr)
			res.Err = err.Error()
		}
	}()

	runtime.GC()
	runtime.GC()
	s := startSampler(env, cfg.Interval, cfg.Progress)
	start := time.Now()
	records, err := func() (n int64, err error) {
		defer func() {
			if p := recover(); p != nil {
				s.Stop()
				panic(p)
			}
		}()
		return spec.Body(ctx, env)
	}()
	wall := time.Since(start)
	tl, gcs := s.Stop()
	tl.Title = fmt.Sprintf("%s — %s — budget %s", spec.Workload, res.Strategy, humanize.IBytes(uint64(spec.Budget)))
	if err == nil {
		err = env.checkReleased()
	}

	res.Records = records
	res.Wall = wall
	if wall > 0 {
		res.RecordsPerSec = float64(records) / wall.Seconds()
	}
	res.GCCycles = gcs
	res.HeapStart = tl.Samples[0].LiveHeap
	for _, smp := range tl.Samples {
		res.PeakLiveHeap = max(res.PeakLiveHeap, smp.LiveHeap)
		res.PeakAccounted = max(res.PeakAccounted, smp.Accounted())
	}
	_, c := env.snapshot()
	res.Spills, res.SpillBytes, res.Evictions = c.Spills, c.SpillBytes, c.Evictions
	if err != nil {
		err = fmt.Errorf("%s (%s): %w", spec.Workload, res.Strategy, err)
		res.Err = err.Error()
	}
	return res, tl, err
}
