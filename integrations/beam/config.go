package spillbeam

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
)

// MinBudget is the smallest memory budget a worker accepts (4 MiB): below it the fixed buffers
// of each task (spill-file batches, the record writer) dominate anything the budget could bound.
const MinBudget int64 = 4 << 20

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("spillbeam: invalid config")

// Config sizes the per-worker executor that the DoFns of this package share. It is a plain value
// so that Beam can serialize it with the DoFn that carries it. Its zero value is a worker sized
// like a Spark executor on this process: memory.Config's defaults (60% of the Go memory limit,
// or of the machine's memory when no limit is set, above 300 MiB), one task slot per core and
// spill files under os.TempDir().
//
// DoFns whose Configs are equal share one executor per worker process (see Acquire).
type Config struct {
	// Budget is the execution and storage memory of the whole worker process, shared by every
	// bundle that runs in it (Spark's unified region, with nothing reserved). 0 means the
	// memory.Config defaults, which follow the Go memory limit (debug.SetMemoryLimit,
	// GOMEMLIMIT). Otherwise it must be at least MinBudget.
	Budget int64
	// Cores is the number of bundles the worker is expected to run at once; it only scales the
	// per-collection allowances the memory manager does not account (see Executor.SpillConfig).
	// 0 means runtime.GOMAXPROCS(0).
	Cores int
	// Dirs are the roots of the spill directories (Spark's spark.local.dir). nil means
	// os.TempDir().
	Dirs []string
}

// Validate reports every invalid field, naming it and its value; the error wraps
// ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Budget < 0:
		errs = append(errs, fmt.Errorf("Config.Budget %d is negative", c.Budget))
	case c.Budget != 0 && c.Budget < MinBudget:
		errs = append(errs, fmt.Errorf("Config.Budget %s (%d bytes) is below the minimum %s",
			humanize.IBytes(uint64(c.Budget)), c.Budget, humanize.IBytes(uint64(MinBudget))))
	}
	if c.Cores < 0 {
		errs = append(errs, fmt.Errorf("Config.Cores %d is negative", c.Cores))
	}
	for i, d := range c.Dirs {
		if d == "" {
			errs = append(errs, fmt.Errorf("Config.Dirs[%d] is empty", i))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// key identifies the executor a Config maps to.
func (c Config) key() string {
	var b strings.Builder
	b.WriteString(strconv.FormatInt(c.Budget, 10))
	b.WriteByte('/')
	b.WriteString(strconv.Itoa(c.Cores))
	for _, d := range c.Dirs {
		b.WriteByte('/')
		b.WriteString(strconv.Quote(d))
	}
	return b.String()
}

func (c Config) memoryConfig(cores int) memory.Config {
	mc := memory.Config{NumCores: cores}
	if c.Budget != 0 {
		mc.SystemMemory, mc.ReservedMemory, mc.Fraction = c.Budget, memory.NoReservedMemory, 1
	}
	return mc
}

// spillConfig is Executor.SpillConfig for cores task slots.
func (c Config) spillConfig(cores int) collection.SpillConfig {
	if c.Budget == 0 {
		return collection.SpillConfig{}
	}
	n := int64(max(cores, 1))
	return collection.SpillConfig{
		InitialThreshold: min(collection.DefaultInitialThreshold, max(64<<10, c.Budget/(32*n))),
		BatchBytes:       int(min(collection.DefaultSpillBatchBytes, max(16<<10, c.Budget/(64*n)))),
	}
}

// clone returns c with its own Dirs, so a registered executor does not share the caller's slice.
func (c Config) clone() Config {
	c.Dirs = slices.Clone(c.Dirs)
	return c
}
