package shuffle

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// ErrMemoryLeak is matched (errors.Is) by a *MemoryLeakError.
var ErrMemoryLeak = errors.New("shuffle: managed memory leak")

// MemoryLeakError reports execution memory a task still held when it ended (Spark's executor
// logs "Managed memory leak detected", or throws with spark.unsafe.exceptionOnMemoryLeak).
type MemoryLeakError struct {
	Task  memory.TaskID
	Bytes int64
}

// Error reads "managed memory leak detected; size = <n> bytes, task <t>".
func (e *MemoryLeakError) Error() string {
	return fmt.Sprintf("managed memory leak detected; size = %d bytes (%s), task %d", e.Bytes, humanize.IBytes(uint64(e.Bytes)), e.Task)
}

// Is makes errors.Is(err, ErrMemoryLeak) true.
func (e *MemoryLeakError) Is(target error) bool { return target == ErrMemoryLeak }

// RunnerConfig configures a Runner. Memory and Disk are required; the zero value of every other
// field means Spark's behaviour.
type RunnerConfig struct {
	// Memory is the executor's memory manager every task draws from. Task ids are unique per
	// Runner only, so a UnifiedManager should serve one Runner.
	Memory *memory.UnifiedManager
	// Disk holds the shuffle files and every task's spill files.
	Disk *storage.DiskBlockManager
	// Locks is the block lock table; tasks that read or write cached blocks take their locks
	// here, and whatever a task still holds when it ends is released. nil means Blocks' table
	// when Blocks is set, else a fresh one.
	Locks *storage.BlockInfoManager
	// Blocks is the executor's block manager, through which tasks cache blocks (RDD caching
	// with a storage level). When a task ends, the unroll memory it still holds is released
	// along with its block locks. nil means tasks have no block manager. Its lock table is the
	// runner's, so Locks must then be nil or that same table.
	Blocks *storage.BlockManager
	// Cores is the number of tasks run at once (spark.executor.cores). 0 means
	// runtime.GOMAXPROCS(0).
	Cores int
	// Task configures every task's memory.TaskManager.
	Task memory.TaskConfig
	// Shuffle configures the shuffle writers and readers of the runner's tasks.
	Shuffle Config
	// ExceptionOnMemoryLeak makes execution memory that a successful task did not release an
	// error of the task (a *MemoryLeakError) instead of a logged warning
	// (spark.unsafe.exceptionOnMemoryLeak, default false).
	ExceptionOnMemoryLeak bool
	// ExceptionOnPinLeak makes block locks that a successful task did not release an error of
	// the task (a *storage.LockLeakError) instead of a logged warning
	// (spark.storage.exceptionOnPinLeak, default false).
	ExceptionOnPinLeak bool
	// Logger receives task start, end and leak reports under the name "shuffle". nil means
	// zap.NewNop().
	Logger *zap.Logger
}

// Validate reports every invalid field (errors.Join), those of Shuffle included.
func (c RunnerConfig) Validate() error {
	var errs []error
	if c.Memory == nil {
		errs = append(errs, errors.New("shuffle: RunnerConfig.Memory is nil"))
	}
	if c.Disk == nil {
		errs = append(errs, errors.New("shuffle: RunnerConfig.Disk is nil"))
	}
	if c.Cores < 0 {
		errs = append(errs, fmt.Errorf("shuffle: RunnerConfig.Cores %d is negative", c.Cores))
	}
	if c.Blocks != nil && c.Locks != nil && c.Locks != c.Blocks.BlockInfo() {
		errs = append(errs, errors.New("shuffle: RunnerConfig.Locks differs from the lock table of RunnerConfig.Blocks"))
	}
	return errors.Join(append(errs, c.Shuffle.Validate())...)
}

// Runner is a local stand-in for Spark's executor and DAG scheduler: it runs the tasks of a stage
// as goroutines, at most Cores at a time, each with its own TaskContext (TaskManager, disk scope,
// block locks), and cleans up after every task however it ends. It also hands out shuffle ids
// and keeps the MapOutputRegistry of its shuffles. A Runner may run several stages at once; it
// is safe for concurrent use.
type Runner struct {
	cfg      RunnerConfig
	log      *zap.Logger
	locks    *storage.BlockInfoManager
	registry *MapOutputRegistry

	nextTask    atomic.Int64
	nextShuffle atomic.Int64
}

// NewRunner returns a Runner, or cfg's validation error.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Cores == 0 {
		cfg.Cores = runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Shuffle.Logger == nil {
		cfg.Shuffle.Logger = cfg.Logger
	}
	if cfg.Shuffle.Spill.Logger == nil {
		cfg.Shuffle.Spill.Logger = cfg.Logger
	}
	cfg.Shuffle = cfg.Shuffle.withDefaults()
	locks := cfg.Locks
	switch {
	case locks != nil:
	case cfg.Blocks != nil:
		locks = cfg.Blocks.BlockInfo()
	default:
		locks = storage.NewBlockInfoManager()
	}
	return &Runner{
		cfg:      cfg,
		log:      cfg.Logger.Named("shuffle"),
		locks:    locks,
		registry: NewMapOutputRegistry(cfg.Disk, cfg.Logger),
	}, nil
}

// Config returns the runner's configuration (Cores and loggers filled in).
func (r *Runner) Config() RunnerConfig { return r.cfg }

// Registry returns the map output registry of the runner's shuffles.
func (r *Runner) Registry() *MapOutputRegistry { return r.registry }

// Locks returns the block lock table of the runner's tasks.
func (r *Runner) Locks() *storage.BlockInfoManager { return r.locks }

// NewShuffleID returns a shuffle id not used before by this runner (SparkContext.newShuffleId).
func (r *Runner) NewShuffleID() int { return int(r.nextShuffle.Add(1) - 1) }

// Close unregisters every shuffle, deleting all map outputs. It does not close Memory or Disk,
// which the caller owns.
func (r *Runner) Close() error { return r.registry.Close() }

// TaskFunc is the body of one task: partition is the task's index in its stage. It should
// return promptly once ctx is done.
// It mirrors Spark's Task.runTask, run by Executor.TaskRunner.
type TaskFunc func(ctx context.Context, tc *TaskContext, partition int) error

// Run runs one stage of numTasks tasks, at most Cores at once, and returns when all have ended.
// It returns the first error of a task (or its cleanup), after which tasks not yet started are
// skipped and running ones see ctx cancelled; when ctx ends first it returns ctx.Err() (wrapped
// errors of tasks that saw the cancellation are not reported). Every task's memory, block locks
// and temporary files are released when it ends, whatever the outcome.
func (r *Runner) Run(ctx context.Context, numTasks int, fn TaskFunc) error {
	if numTasks < 0 {
		panic(fmt.Sprintf("shuffle: Run with %d tasks", numTasks))
	}
	partitions := make([]int, numTasks)
	for i := range partitions {
		partitions[i] = i
	}
	return r.RunPartitions(ctx, partitions, fn)
}

// RunPartitions is Run for the tasks of the given partitions only (Spark's
// SparkContext.runJob with a list of partitions, which toLocalIterator runs one at a time).
func (r *Runner) RunPartitions(ctx context.Context, partitions []int, fn TaskFunc) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Cores)
	for _, p := range partitions {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return nil // the stage failed or was cancelled before this task started
			}
			return r.runTask(gctx, p, fn)
		})
	}
	err := g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// runTask runs one task and cleans up after it (Spark's Executor.TaskRunner.run finally block).
func (r *Runner) runTask(ctx context.Context, partition int, fn TaskFunc) (err error) {
	id := memory.TaskID(r.nextTask.Add(1))
	tc := &TaskContext{
		id:        id,
		partition: partition,
		runner:    r,
		tm:        memory.NewTaskManager(r.cfg.Memory, id, r.cfg.Task),
		disk:      r.cfg.Disk.NewScope(),
		log:       r.log.With(zap.Int64("task", int64(id)), zap.Int("partition", partition)),
	}
	defer func() { err = tc.finish(err) }()
	tc.log.Debug("task started")
	return fn(ctx, tc, partition)
}

// TaskContext is Spark's TaskContext: what a running task knows about itself and owns. Its
// TaskManager, disk scope and block locks are released by the Runner when the task ends.
// Methods are safe for concurrent use by the task's goroutines.
type TaskContext struct {
	id        memory.TaskID
	partition int
	runner    *Runner
	tm        *memory.TaskManager
	disk      *storage.Scope
	log       *zap.Logger

	mu        sync.Mutex
	listeners []func() error
	done      bool
}

// ID is the task's id, unique in its Runner (Spark's taskAttemptId).
func (tc *TaskContext) ID() memory.TaskID { return tc.id }

// Partition is the task's index in its stage (Spark's partitionId).
func (tc *TaskContext) Partition() int { return tc.partition }

// TaskManager is the task's memory manager (Spark's taskMemoryManager).
func (tc *TaskContext) TaskManager() *memory.TaskManager { return tc.tm }

// Disk is the task's disk scope: files created through it are deleted when the task ends.
func (tc *TaskContext) Disk() *storage.Scope { return tc.disk }

// Locks is the block lock table; take locks with tc.ID() as the task.
func (tc *TaskContext) Locks() *storage.BlockInfoManager { return tc.runner.locks }

// Blocks is the executor's block manager (RunnerConfig.Blocks), or nil; cache blocks with
// tc.ID() as the task.
func (tc *TaskContext) Blocks() *storage.BlockManager { return tc.runner.cfg.Blocks }

// Runner is the runner running the task.
func (tc *TaskContext) Runner() *Runner { return tc.runner }

// Logger is a logger with the task's id and partition.
func (tc *TaskContext) Logger() *zap.Logger { return tc.log }

// AddCompletionListener registers f to run when the task ends, successfully or not, before its
// memory and locks are released (Spark's addTaskCompletionListener). Listeners run in reverse
// order of registration; an error of one is an error of the task. Registering after the task
// ended runs f at once.
func (tc *TaskContext) AddCompletionListener(f func() error) {
	tc.mu.Lock()
	if !tc.done {
		tc.listeners = append(tc.listeners, f)
		tc.mu.Unlock()
		return
	}
	tc.mu.Unlock()
	if err := f(); err != nil {
		tc.log.Warn("completion listener of an ended task failed", zap.Error(err))
	}
}

// finish runs the completion listeners, deletes the task's files, releases its block locks and
// memory, and returns the task's result: taskErr, joined with cleanup errors, and with leaks when
// the task succeeded and the configuration asks for errors. It runs once; later calls return
// taskErr.
func (tc *TaskContext) finish(taskErr error) error {
	tc.mu.Lock()
	if tc.done {
		tc.mu.Unlock()
		return taskErr
	}
	tc.done = true
	listeners := tc.listeners
	tc.listeners = nil
	tc.mu.Unlock()

	var errs []error
	for i := len(listeners) - 1; i >= 0; i-- {
		errs = append(errs, listeners[i]())
	}
	if err := tc.disk.Close(); err != nil {
		errs = append(errs, fmt.Errorf("shuffle: deleting files of task %d: %w", tc.id, err))
	}
	failed := taskErr != nil
	if bm := tc.runner.cfg.Blocks; bm != nil {
		// Unroll memory of an abandoned partially unrolled block (Spark releases it in the
		// task's finally block too).
		bm.MemoryStore().ReleaseAllUnrollMemoryForTask(tc.id)
	}
	if leak := storage.LockLeakReport(tc.id, tc.runner.locks.ReleaseAllLocksForTask(tc.id)); leak != nil && !failed {
		if tc.runner.cfg.ExceptionOnPinLeak {
			errs = append(errs, leak)
		} else {
			tc.log.Warn(leak.Error())
		}
	}
	if leaked := tc.tm.Close(); leaked > 0 && !failed {
		leak := &MemoryLeakError{Task: tc.id, Bytes: leaked}
		if tc.runner.cfg.ExceptionOnMemoryLeak {
			errs = append(errs, leak)
		} else {
			tc.log.Warn(leak.Error(), zap.String("bytes", humanize.IBytes(uint64(leaked))))
		}
	}
	err := taskErr
	if cleanupErr := errors.Join(errs...); cleanupErr != nil {
		err = errors.Join(taskErr, cleanupErr)
	}
	if err != nil {
		tc.log.Debug("task failed", zap.Error(err))
	} else {
		tc.log.Debug("task finished", zap.String("peak", humanize.IBytes(uint64(tc.tm.PeakExecution(memory.OnHeap)))))
	}
	return err
}
