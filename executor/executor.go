package executor

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

// Unlimited in Config.Budget sizes memory as Spark would on this machine (memory.Config's
// defaults: 60% of the system memory above 300 MiB), which for the example jobs means no spills.
const Unlimited int64 = 0

// Config describes an executor. Its zero value is an unlimited executor with one task per core
// and files under os.TempDir().
type Config struct {
	// Budget is the memory of the whole run: execution and storage together (Spark's unified
	// region), with nothing reserved. Unlimited (0) means memory.Config's defaults. Otherwise it
	// must be at least MinBudget, and the spill settings of every collection scale down with it
	// (see SpillConfig).
	Budget int64
	// OffHeap is the off-heap region for blocks cached at an OFF_HEAP level
	// (spark.memory.offHeap.size, default 0: none). Execution stays on-heap.
	OffHeap int64
	// Cores is the number of tasks run at once. 0 means runtime.GOMAXPROCS(0).
	Cores int
	// Dirs are the roots of the disk block manager's local directories. nil means os.TempDir().
	Dirs []string
	// Task configures every task's memory.TaskManager (the spill victim order).
	Task memory.TaskConfig
	// Accounting is the memory manager's memory.Config.Accounting: Strict (the default) or
	// Spark's unaccounted allowances.
	Accounting memory.Accounting
	// MaxResultSize bounds what Collect hands back to its caller, and what Partitions holds of
	// one partition (spark.driver.maxResultSize, default 1 GiB). NoLimit turns the bound off.
	MaxResultSize int64
	// BroadcastThreshold is the largest side Join builds into an in-memory table shared by
	// every task instead of shuffling both sides (spark.sql.autoBroadcastJoinThreshold, 10 MiB).
	// 0 means 10 MiB, or a quarter of the budget when that is smaller; NoLimit turns broadcast
	// joins off.
	BroadcastThreshold int64
	// Logger receives every component's logs. nil means zap.NewNop().
	Logger *zap.Logger
	// Memory, when set, adjusts the memory manager's config before it is built
	// (SetGoMemoryLimit, GoHeapFeedback).
	Memory func(*memory.Config)
}

// NoLimit in Config.MaxResultSize or Config.BroadcastThreshold turns the bound (or broadcast
// joins) off, as -1 does in Spark's settings.
const NoLimit int64 = -1

// Defaults of Config.
const (
	DefaultMaxResultSize      int64 = 1 << 30
	DefaultBroadcastThreshold int64 = 10 << 20
)

// MinBudget is the smallest memory budget an executor accepts (4 MiB): below it fixed per-task
// buffers dominate anything the budget could bound.
const MinBudget int64 = 4 << 20

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c Config) Validate() error {
	var errs []error
	if c.Budget < 0 {
		errs = append(errs, fmt.Errorf("executor: Config.Budget %d is negative", c.Budget))
	} else if c.Budget != Unlimited && c.Budget < MinBudget {
		errs = append(errs, fmt.Errorf("executor: Config.Budget %s is below the minimum %s",
			humanize.IBytes(uint64(c.Budget)), humanize.IBytes(uint64(MinBudget))))
	}
	if c.OffHeap < 0 {
		errs = append(errs, fmt.Errorf("executor: Config.OffHeap %d is negative", c.OffHeap))
	}
	if c.Cores < 0 {
		errs = append(errs, fmt.Errorf("executor: Config.Cores %d is negative", c.Cores))
	}
	if c.MaxResultSize < NoLimit {
		errs = append(errs, fmt.Errorf("executor: Config.MaxResultSize %d is negative (NoLimit is %d)", c.MaxResultSize, NoLimit))
	}
	if c.BroadcastThreshold < NoLimit {
		errs = append(errs, fmt.Errorf("executor: Config.BroadcastThreshold %d is negative (NoLimit is %d)", c.BroadcastThreshold, NoLimit))
	}
	return errors.Join(errs...)
}

// Executor is one process's share of a Spark executor: its memory manager, disk block manager,
// block manager (whose MemoryStore is the memory manager's Evictor, and which the runner's tasks
// reach through TaskContext.Blocks; the runner releases a task's unroll memory and block locks
// when it ends) and stage runner, closed together.
type Executor struct {
	cfg    Config
	log    *zap.Logger
	Memory *memory.UnifiedManager
	Disk   *storage.DiskBlockManager
	Blocks *storage.BlockManager
	Runner *shuffle.Runner
}

// New builds an executor, or returns cfg's validation error or the first component's error.
func New(cfg Config) (_ *Executor, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Cores == 0 {
		cfg.Cores = runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.MaxResultSize == 0 {
		cfg.MaxResultSize = DefaultMaxResultSize
	}
	if cfg.BroadcastThreshold == 0 {
		cfg.BroadcastThreshold = DefaultBroadcastThreshold
		if cfg.Budget != Unlimited {
			cfg.BroadcastThreshold = min(cfg.BroadcastThreshold, cfg.Budget/4)
		}
	}
	mcfg := memory.Config{NumCores: cfg.Cores, OffHeapSize: cfg.OffHeap, Accounting: cfg.Accounting, Logger: cfg.Logger}
	if cfg.Budget != Unlimited {
		mcfg.SystemMemory, mcfg.ReservedMemory, mcfg.Fraction = cfg.Budget, memory.NoReservedMemory, 1
	}
	if cfg.Memory != nil {
		cfg.Memory(&mcfg)
	}
	mm, err := memory.NewUnifiedManager(mcfg)
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, mm.Close())
		}
	}()
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: cfg.Dirs, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, disk.Close())
		}
	}()
	blocks, err := storage.NewBlockManager(storage.Config{Memory: mm, Disk: disk, MemoryStore: MemoryStoreConfig(cfg.Budget, cfg.Cores), Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, blocks.Close())
		}
	}()
	runner, err := shuffle.NewRunner(shuffle.RunnerConfig{
		Memory:                mm,
		Disk:                  disk,
		Blocks:                blocks,
		Cores:                 cfg.Cores,
		Task:                  cfg.Task,
		Shuffle:               ShuffleConfig(cfg.Budget, cfg.Cores),
		ExceptionOnMemoryLeak: true,
		ExceptionOnPinLeak:    true,
		Logger:                cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	return &Executor{cfg: cfg, log: cfg.Logger.Named("executor"), Memory: mm, Disk: disk, Blocks: blocks, Runner: runner}, nil
}

// Config returns the executor's configuration, with the defaults of Cores, Logger,
// MaxResultSize and BroadcastThreshold filled in.
func (e *Executor) Config() Config { return e.cfg }

// Close deletes every shuffle output, cached block and local directory. The memory manager
// needs no closing; what it still accounts is the caller's to check (Executor.Leaks).
func (e *Executor) Close() error {
	return errors.Join(e.Runner.Close(), e.Blocks.Close(), e.Disk.Close(), e.Memory.Close())
}

// ShuffleConfig is the shuffle configuration an executor with budget and cores gives its tasks:
// Spark's defaults when the budget is Unlimited; otherwise every per-collection and per-reader
// allowance that the memory manager does not account is scaled down so that, all tasks
// together, they stay a small part of the budget:
//
//   - each spillable collection's free allowance (spark.shuffle.spill.initialMemoryThreshold,
//     5 MiB) becomes budget/(32 × cores), at least 64 KiB;
//   - spill-file batches (which each spill reader buffers) are at most budget/(64 × cores), at
//     least 16 KiB;
//   - fetched shuffle segments in flight per reader (spark.reducer.maxSizeInFlight, 48 MiB)
//     are at most budget/(16 × cores), at least 64 KiB, and larger segments are streamed from
//     their files.
func ShuffleConfig(budget int64, cores int) shuffle.Config {
	if budget == Unlimited {
		return shuffle.Config{}
	}
	if cores < 1 {
		cores = 1
	}
	c := int64(cores)
	inFlight := min(shuffle.DefaultMaxBytesInFlight, max(64<<10, budget/(16*c)))
	return shuffle.Config{
		MaxBytesInFlight:       inFlight,
		MaxBlockSizeFetchToMem: inFlight,
		Spill: collection.SpillConfig{
			InitialThreshold: min(collection.DefaultInitialThreshold, max(64<<10, budget/(32*c))),
			BatchBytes:       int(min(collection.DefaultSpillBatchBytes, max(16<<10, budget/(64*c)))),
		},
	}
}

// MemoryStoreConfig is the memory store configuration an executor with budget and cores gives
// its block manager: Spark's defaults when the budget is Unlimited; otherwise the unroll memory
// first reserved for a block (spark.storage.unrollMemoryThreshold, 1 MiB), and with it the chunk
// size and the record batches of serialized blocks, becomes budget/(32 × cores), at least
// 16 KiB. A reader of a serialized block holds one batch (twice that when compressed) outside
// the budget, as Spark's does, so batches of 1 MiB in a budget of a few MiB would be a large part
// of the heap beside it.
func MemoryStoreConfig(budget int64, cores int) storage.MemoryStoreConfig {
	if budget == Unlimited {
		return storage.MemoryStoreConfig{}
	}
	return storage.MemoryStoreConfig{
		UnrollMemoryThreshold: min(storage.DefaultUnrollMemoryThreshold, max(16<<10, budget/(32*int64(max(cores, 1))))),
	}
}

// Leaks reports memory still accounted (execution, or storage: cached blocks and unroll
// memory) and files still present: after a job's Run returned, every one of them is a leak. It
// returns nil when there is none.
func (e *Executor) Leaks() error {
	var errs []error
	if n := e.Memory.ExecutionUsed(); n != 0 {
		errs = append(errs, fmt.Errorf("executor: %s of execution memory still accounted", humanize.IBytes(uint64(n))))
	}
	if n := e.Memory.StorageUsed(); n != 0 {
		errs = append(errs, fmt.Errorf("executor: %s of storage memory still accounted", humanize.IBytes(uint64(n))))
	}
	if n := e.Disk.Files(); n != 0 {
		errs = append(errs, fmt.Errorf("executor: %d files still on disk", n))
	}
	return errors.Join(errs...)
}
