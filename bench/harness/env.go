package harness

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
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
// plain-Go baselines and for bodies that bring their own, Spec.OwnMemory), a disk block manager
// for spills, a private directory for files, the strategy, and hooks the sampler reads while the
// body runs.
type Env struct {
	// Budget is the run's memory budget in bytes: the unified region of Memory, and the memory a
	// hand-written baseline allows itself.
	Budget int64
	// Strategy is the strategy of a library run (the zero Strategy for baselines).
	Strategy Strategy
	// Memory is a UnifiedManager whose unified region is exactly Budget (no reserved memory,
	// fraction 1, Spark's storage fraction 0.5), with an off-heap region of Budget too when the
	// strategy's storage level is off-heap. It is nil in baseline runs and in Spec.OwnMemory
	// runs.
	Memory *memory.UnifiedManager
	// Disk holds spill and block files in a directory of its own; it is nil when Memory is.
	Disk *storage.DiskBlockManager
	// Dir is an empty directory for the run's own files (baselines' run files, an executor's
	// local directory); it is removed after the run.
	Dir string
	// Logger is the run's logger (zap.NewNop() unless Config.Logger is set).
	Logger *zap.Logger

	order    memory.VictimOrder
	records  atomic.Int64
	sampled  atomic.Pointer[memory.UnifiedManager] // Memory, or what UseMemory set
	mu       sync.Mutex
	tasks    []*memory.TaskManager
	counters []func() Counters
}

func newEnv(cfg Config, budget int64, s Strategy, baseline, ownMemory bool) (_ *Env, err error) {
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
	if err := s.Validate(); err != nil {
		return e, err
	}
	e.order, _ = s.Victim.Order()
	if ownMemory {
		return e, nil
	}
	mcfg := memory.Config{
		SystemMemory: budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1,
		NumCores: runtime.GOMAXPROCS(0), Accounting: s.Accounting(), Logger: cfg.Logger,
	}
	if level, _ := s.StorageLevel(); level.UseOffHeap() {
		mcfg.OffHeapSize = budget // for off-heap blocks only: execution stays on-heap
	}
	e.Memory, err = memory.NewUnifiedManager(mcfg)
	if err != nil {
		return e, fmt.Errorf("harness: memory manager for a budget of %s: %w", humanize.IBytes(uint64(budget)), err)
	}
	if e.Disk, err = storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{dir}, Logger: cfg.Logger}); err != nil {
		return e, fmt.Errorf("harness: disk block manager: %w", err)
	}
	e.sampled.Store(e.Memory)
	return e, nil
}

// UseMemory makes the sampler read m, the memory manager of a body that runs on one of its own
// (Spec.OwnMemory: an executor sized from Budget), and makes the run check after the body that
// m accounts nothing any more. Call it right after creating m.
func (e *Env) UseMemory(m *memory.UnifiedManager) {
	if e.Memory != nil {
		panic("harness: UseMemory in a run that has Env.Memory")
	}
	e.sampled.Store(m)
}

// AddTask shows the consumers of tm, a task the body did not create with NewTask (a stage
// runner's), in the run's timeline. Adding a task twice adds it once. It is safe for concurrent
// use.
func (e *Env) AddTask(tm *memory.TaskManager) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !slices.Contains(e.tasks, tm) {
		e.tasks = append(e.tasks, tm)
	}
}

// NewTask returns a TaskManager of Memory with the strategy's victim order, and shows its
// consumers in the run's timeline. The caller closes it.
func (e *Env) NewTask(id memory.TaskID) *memory.TaskManager {
	if e.Memory == nil {
		panic("harness: NewTask without Env.Memory (a baseline or Spec.OwnMemory run)")
	}
	tm := memory.NewTaskManager(e.Memory, id, memory.TaskConfig{VictimOrder: e.order, Logger: e.Logger})
	e.AddTask(tm)
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

// checkReleased reports memory or files a finished run left behind: after a run every byte of
// execution and storage memory must be released and every spill and block file deleted (a body
// on its own memory manager checks its own files).
func (e *Env) checkReleased() error {
	m := e.sampled.Load()
	if m == nil {
		return nil
	}
	var errs []error
	if used := m.ExecutionUsed(); used != 0 {
		errs = append(errs, fmt.Errorf("harness: %s of execution memory still accounted after the run", humanize.IBytes(uint64(used))))
	}
	if used := m.StorageUsed(); used != 0 {
		errs = append(errs, fmt.Errorf("harness: %s of storage memory still accounted after the run", humanize.IBytes(uint64(used))))
	}
	if e.Disk != nil {
		if n := e.Disk.Files(); n != 0 {
			errs = append(errs, fmt.Errorf("harness: %d spill or block files left after the run", n))
		}
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
