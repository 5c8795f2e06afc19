package spillbeam

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// registry holds the executors of this process, one per Config key, each reference-counted by
// the DoFn instances that acquired it.
type registry struct {
	mu        sync.Mutex
	executors map[string]*Executor
}

// workers is the process's executors. A Beam worker process runs many DoFn instances (one per
// bundle processor, several bundles at once) and hands them no shared object, while a Spark
// executor's memory manager must be shared by every task of the process to bound its memory:
// so, unlike the core library, this package keeps process-wide state, behind this one
// mutex-guarded registry (see Acquire).
var workers = registry{executors: make(map[string]*Executor)}

// Executor is one worker process's share of a Spark executor: a memory.UnifiedManager and a
// storage.DiskBlockManager that every bundle of the process draws on, as Spark's tasks share their
// executor's. Each element's processing is one task (Run): it gets its own memory.TaskManager
// and disk scope, and whatever it still holds when it ends — on success, error or panic — is
// released and deleted then, so a failed bundle leaks nothing even though portable runners never
// call Teardown.
//
// The spill directories exist only while tasks run: once the last running task ends, the disk
// block manager is closed (its directories removed) and a new one is made by the next task.
type Executor struct {
	cfg   Config
	key   string
	cores int
	mem   *memory.UnifiedManager
	spill collection.SpillConfig
	refs  int // guarded by workers.mu

	mu        sync.Mutex
	disk      *storage.DiskBlockManager // nil while idle
	active    int
	maxActive int
	released  bool

	nextTask           atomic.Int64
	tasks, failed      atomic.Int64
	spills             atomic.Int64
	memoryBytesSpilled atomic.Int64
	diskBytesSpilled   atomic.Int64
}

// Acquire returns the executor of this process for cfg, creating it on first use, and counts a
// reference to it; DoFns call it in Setup. DoFns whose Configs are equal share one executor, so
// its budget bounds them together. Release drops the reference; portable runners never call
// Teardown, so on them the executor lives as long as the worker process, which is harmless:
// between tasks it holds no memory and no files.
//
// It returns cfg's validation error (wrapping ErrInvalidConfig) or the memory manager's.
func Acquire(cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key := cfg.key()
	workers.mu.Lock()
	defer workers.mu.Unlock()
	if e, ok := workers.executors[key]; ok {
		e.refs++
		return e, nil
	}
	cores := cfg.Cores
	if cores == 0 {
		cores = runtime.GOMAXPROCS(0)
	}
	mm, err := memory.NewUnifiedManager(cfg.memoryConfig(cores))
	if err != nil {
		return nil, fmt.Errorf("spillbeam: %w", err)
	}
	e := &Executor{cfg: cfg.clone(), key: key, cores: cores, mem: mm, spill: cfg.spillConfig(cores), refs: 1}
	workers.executors[key] = e
	return e, nil
}

// Release drops a reference taken by Acquire (DoFns call it in Teardown). The last one removes
// the executor from the process's registry and deletes its spill directories once no task runs.
// Releasing more often than acquiring panics.
func (e *Executor) Release() error {
	workers.mu.Lock()
	defer workers.mu.Unlock()
	if e.refs <= 0 {
		panic("spillbeam: Executor.Release without a matching Acquire")
	}
	e.refs--
	if e.refs > 0 {
		return nil
	}
	delete(workers.executors, e.key)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.released = true
	if e.active == 0 {
		return e.closeDiskLocked()
	}
	return nil
}

// Config returns the configuration the executor was made from.
func (e *Executor) Config() Config { return e.cfg.clone() }

// Memory returns the executor's memory manager.
func (e *Executor) Memory() *memory.UnifiedManager { return e.mem }

// SpillConfig returns the spill configuration every collection of the executor's tasks uses:
// Spark's defaults when Config.Budget is 0; otherwise the allowances the memory manager does
// not account are scaled down so that, all bundles together, they stay a small part of the
// budget: each collection's free allowance (spark.shuffle.spill.initialMemoryThreshold, 5 MiB)
// becomes Budget/(32 × cores), at least 64 KiB, and spill-file batches (which each spill reader
// buffers) are at most Budget/(64 × cores), at least 16 KiB.
func (e *Executor) SpillConfig() collection.SpillConfig { return e.spill }

// Task is what one element's processing gets from the executor (Spark's TaskContext reduced to
// memory and disk): its memory manager, its disk scope and the spill configuration its
// collections should use. It is valid until the function given to Run returns.
type Task struct {
	Memory *memory.TaskManager
	Disk   *storage.Scope
	Spill  collection.SpillConfig
}

// Run runs fn as one task of the executor. When fn returns (or panics) the task's files are
// deleted and its memory released; memory fn still held after returning nil is reported as an
// error (a collection that was not closed), after an error it is released silently.
func (e *Executor) Run(ctx context.Context, fn func(ctx context.Context, t *Task) error) (err error) {
	disk, err := e.begin()
	if err != nil {
		return err
	}
	id := memory.TaskID(e.nextTask.Add(1))
	tm := memory.NewTaskManager(e.mem, id, memory.TaskConfig{})
	scope := disk.NewScope()
	ok := false
	defer func() {
		err = errors.Join(err, scope.Close())
		if leaked := tm.Close(); leaked > 0 && err == nil && ok {
			err = fmt.Errorf("spillbeam: task %d ended holding %s of execution memory", id, humanize.IBytes(uint64(leaked)))
		}
		if err != nil || !ok {
			e.failed.Add(1)
		}
		err = errors.Join(err, e.end())
	}()
	err = fn(ctx, &Task{Memory: tm, Disk: scope, Spill: e.spill})
	ok = true
	return err
}

// begin counts a running task and returns the disk block manager, creating it if idle.
func (e *Executor) begin() (*storage.DiskBlockManager, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.disk == nil {
		d, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: e.cfg.Dirs})
		if err != nil {
			return nil, fmt.Errorf("spillbeam: spill directories: %w", err)
		}
		e.disk = d
	}
	e.active++
	e.maxActive = max(e.maxActive, e.active)
	e.tasks.Add(1)
	return e.disk, nil
}

// end uncounts a running task; the last one deletes the spill directories, so an idle worker
// keeps nothing on disk (a directory kept for the next task would outlive the pipeline, since
// portable runners never call Teardown).
func (e *Executor) end() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.active--
	if e.active == 0 {
		return e.closeDiskLocked()
	}
	return nil
}

func (e *Executor) closeDiskLocked() error {
	if e.disk == nil {
		return nil
	}
	err := e.disk.Close()
	e.disk = nil
	if err != nil {
		return fmt.Errorf("spillbeam: deleting spill directories: %w", err)
	}
	return nil
}

// record adds a collection's spill counters to a group's Stats and to the executor's.
func (e *Executor) record(st *Stats, m collection.SpillMetrics) {
	st.add(m)
	e.addSpills(m)
}

// addSpills adds a collection's spill counters to the executor's.
func (e *Executor) addSpills(m collection.SpillMetrics) {
	e.spills.Add(m.Spills + m.ForcedSpills)
	e.memoryBytesSpilled.Add(m.MemoryBytesSpilled)
	e.diskBytesSpilled.Add(m.DiskBytesSpilled)
}

// Metrics is a snapshot of an executor's counters.
type Metrics struct {
	// Tasks and FailedTasks count the tasks run so far, and those whose function failed.
	Tasks, FailedTasks int64
	// ActiveTasks is the number of tasks running now; MaxActiveTasks the largest number that ran
	// at once.
	ActiveTasks, MaxActiveTasks int
	// Spills, MemoryBytesSpilled and DiskBytesSpilled add up the spill counters of the
	// collections this package ran (Spark's task metrics of the same names).
	Spills, MemoryBytesSpilled, DiskBytesSpilled int64
	// ExecutionUsed is the execution memory held now (0 when no task runs).
	ExecutionUsed int64
	// Files is the number of spill files that exist now (0 when no task runs).
	Files int
	// Dirs are the spill directories that exist now (none while idle after a spill).
	Dirs []string
}

// Metrics returns a snapshot of the executor's counters.
func (e *Executor) Metrics() Metrics {
	e.mu.Lock()
	m := Metrics{ActiveTasks: e.active, MaxActiveTasks: e.maxActive}
	if e.disk != nil {
		m.Files = e.disk.Files()
		m.Dirs = e.disk.LocalDirs()
	}
	e.mu.Unlock()
	m.Tasks, m.FailedTasks = e.tasks.Load(), e.failed.Load()
	m.Spills, m.MemoryBytesSpilled, m.DiskBytesSpilled = e.spills.Load(), e.memoryBytesSpilled.Load(), e.diskBytesSpilled.Load()
	m.ExecutionUsed = e.mem.ExecutionUsed()
	return m
}
