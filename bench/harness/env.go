package harness

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// Counters are the spill and eviction counts of the structures a run created, as reported by
// the library's own metrics (collection.SpillMetrics, the block store's counters). A run sums
// every function registered with Env.AddCounters.
type Counters struct {
	// Spills counts spill files written (self-decided and forced).
	Spills int64 `json:"spills"`
	// SpillBytes is the bytes written to spill files (DiskBytesSpilled), or blocks dropped from
	// memory to disk.
	SpillBytes int64 `json:"spill_bytes"`
	// Evictions counts cached blocks dropped from memory.
	Evictions int64 `json:"evictions"`
}

func (c Counters) add(d Counters) Counters {
	return Counters{Spills: c.Spills + d.Spills, SpillBytes: c.SpillBytes + d.SpillBytes, Evictions: c.Evictions + d.Evictions}
}

// Env is what a workload body gets for one run: the memory manager sized to the budget (nil for
// plain-Go baselines), a disk block manager for spills, a private directory for baselines that
// write plain files, the strategy, and hooks the sampler reads while the body runs.
type Env struct {
	// Budget is the run's memory budget in bytes: the unified region of Memory, and the memory a
	// hand-written baseline allows itself.
	Budget int64
	// Strategy is the strategy of a library run (the zero Strategy for baselines).
	Strategy Strategy
	// Memory is a UnifiedManager whose unified region is exactly Budget (no reserved memory,
	// fraction 1, Spark's storage fraction 0.5). It is nil in baseline runs.
	Memory *memory.UnifiedManager
	// Disk holds spill files in a directory of its own; it is nil in baseline runs.
	Disk *storage.DiskBlockManager
	// Dir is an empty directory for the run's own files (baselines' run files); it is removed
	// after the run.
	Dir string
	// Logger is the run's logger (zap.NewNop() unless Config.Logger is set).
	Logger *zap.Logger

	order    memory.VictimOrder
	records  atomic.Int64
	mu       sync.Mutex
	tasks    []*memory.TaskManager
	counters []func() Counters
}

func newEnv(cfg Config, budget int64, s Strategy, baseline bool) (_ *Env, err error) {
	dir, err := os.MkdirTemp(cfg.TempDir, "spillbench-")
	if err != nil {
		return nil, fmt.Errorf("harness: run directory: %w", err)
	}
	e := &Env{Budget: budget, Strategy: s, Dir: dir, Logger: cfg.Logger}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.close())
		}
	}()
	if baseline {
		return e, nil
	}
	if e.order, err = s.Victim.Order(); err != nil {
		return e, err
	}
	e.Memory, err = memory.NewUnifiedManager(memory.Config{
		SystemMemory: budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1,
		NumCores: runtime.GOMAXPROCS(0), Logger: cfg.Logger,
	})
	if err != nil {
		return e, fmt.Errorf("harness: memory manager for a budget of %s: %w", humanize.IBytes(uint64(budget)), err)
	}
	if e.Disk, err = storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{dir}, Logger: cfg.Logger}); err != nil {
		return e, fmt.Errorf("harness: disk block manager: %w", err)
	}
	return e, nil
}

// NewTask returns a TaskManager of Memory with the strategy's victim order, and shows its
// consumers in the run's timeline. The caller closes it.
func (e *Env) NewTask(id memory.TaskID) *memory.TaskManager {
	if e.Memory == nil {
		panic("harness: NewTask in a baseline run")
	}
	tm := memory.NewTaskManager(e.Memory, id, memory.TaskConfig{VictimOrder: e.order, Logger: e.Logger})
	e.mu.Lock()
	e.tasks = append(e.tasks, tm)
	e.mu.Unlock()
	return tm
}

// AddCounters registers a function the sampler calls (from its own goroutine, so f must be safe
// for concurrent use) to read spill and eviction counts; the run reports the sum over every
// registered function at its end. Register each structure once, right after creating it; its
// counts must stay readable after it is closed.
func (e *Env) AddCounters(f func() Counters) {
	e.mu.Lock()
	e.counters = append(e.counters, f)
	e.mu.Unlock()
}

// AddRecords adds n to the records processed so far, which progress reports show. Call it per
// batch of records, not per record.
func (e *Env) AddRecords(n int64) { e.records.Add(n) }

func (e *Env) snapshot() (tasks []*memory.TaskManager, c Counters) {
	e.mu.Lock()
	tasks = append(tasks, e.tasks...)
	counters := append([]func() Counters(nil), e.counters...)
	e.mu.Unlock()
	for _, f := range counters {
		c = c.add(f())
	}
	return tasks, c
}

// checkReleased reports memory or spill files a finished run left behind: after a run every
// byte of execution and storage memory must be released and every spill file deleted.
func (e *Env) checkReleased() error {
	if e.Memory == nil {
		return nil
	}
	var errs []error
	if used := e.Memory.ExecutionUsed(); used != 0 {
		errs = append(errs, fmt.Errorf("harness: %s of execution memory still accounted after the run", humanize.IBytes(uint64(used))))
	}
	if used := e.Memory.StorageUsed(); used != 0 {
		errs = append(errs, fmt.Errorf("harness: %s of storage memory still accounted after the run", humanize.IBytes(uint64(used))))
	}
	if n := e.Disk.Files(); n != 0 {
		errs = append(errs, fmt.Errorf("harness: %d spill or block files left after the run", n))
	}
	return errors.Join(errs...)
}

func (e *Env) close() error {
	var errs []error
	if e.Disk != nil {
		errs = append(errs, e.Disk.Close())
	}
	if e.Dir != "" {
		errs = append(errs, os.RemoveAll(e.Dir))
	}
	return errors.Join(errs...)
}
