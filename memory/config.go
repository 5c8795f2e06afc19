package memory

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"runtime/debug"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"
)

// Sizes and constants of Spark's memory manager.
const (
	// DefaultReservedMemory is Spark's RESERVED_SYSTEM_MEMORY_BYTES: 300 MiB kept out of the
	// unified region for the runtime itself.
	DefaultReservedMemory int64 = 300 << 20
	// NoReservedMemory in Config.ReservedMemory reserves nothing (Spark with spark.testing set).
	NoReservedMemory int64 = -1
	// DefaultFraction is spark.memory.fraction.
	DefaultFraction = 0.6
	// DefaultStorageFraction is spark.memory.storageFraction.
	DefaultStorageFraction = 0.5
	// MinPageSize and MaxDefaultPageSize bound the computed default page size
	// (MemoryManager.defaultPageSizeBytes).
	MinPageSize        int64 = 1 << 20
	MaxDefaultPageSize int64 = 64 << 20
	// pageSizeSafetyFactor divides the per-core share of the Tungsten pool (Spark's safetyFactor).
	pageSizeSafetyFactor = 16
)

// Config sizes a UnifiedManager. It mirrors the spark.memory.* keys read by
// UnifiedMemoryManager.apply and MemoryManager; its zero value means Spark's defaults.
type Config struct {
	// SystemMemory is the memory the process may use (Spark: spark.testing.memory, default the JVM
	// max heap). 0 means the Go runtime's memory limit when one is set (debug.SetMemoryLimit below
	// math.MaxInt64), else the machine's physical memory.
	SystemMemory int64
	// ReservedMemory is kept out of the unified region (Spark: RESERVED_SYSTEM_MEMORY_BYTES /
	// spark.testing.reservedMemory). 0 means 300 MiB; NoReservedMemory means none (spark.testing).
	ReservedMemory int64
	// Fraction of (SystemMemory - ReservedMemory) shared by execution and storage
	// (spark.memory.fraction). 0 means 0.6; otherwise it must be in (0, 1].
	Fraction float64
	// StorageFraction of the unified region (and of OffHeapSize) protected from eviction by
	// execution (spark.memory.storageFraction). 0 means 0.5; otherwise it must be in (0, 1).
	StorageFraction float64
	// OffHeapEnabled makes OffHeap the Tungsten mode, so TaskManager pages live outside the Go heap
	// (spark.memory.offHeap.enabled, default false). It requires OffHeapSize > 0.
	OffHeapEnabled bool
	// OffHeapSize is the off-heap region (spark.memory.offHeap.size, default 0). Like Spark, the
	// off-heap pools have this size even when OffHeapEnabled is false.
	OffHeapSize int64
	// ExecutorMemory, when set, is the configured executor memory that must be at least 1.5 ×
	// ReservedMemory (spark.executor.memory validation). 0 means not checked. Setting it also
	// marks this manager as an executor's, so a too-small SystemMemory is reported against
	// ExecutorMemory (SPARK-58513).
	ExecutorMemory int64
	// NumCores divides the Tungsten pool for the default page size. 0 means runtime.GOMAXPROCS(0).
	NumCores int
	// PageSize is the Tungsten page size (spark.buffer.pageSize). 0 means Spark's default:
	// nextPowerOf2(tungstenPool / NumCores / 16) clamped to [1 MiB, 64 MiB]. Otherwise it must be
	// in [1, MaxPageSize].
	PageSize int64
	// Accounting says what the library charges to the budget. The zero value, Strict, charges
	// every byte it holds for data; SparkAllowances leaves out what Spark leaves out, for
	// comparisons with Spark only.
	Accounting Accounting
	// Logger receives the package's logs under the name "memory". nil means zap.NewNop().
	Logger *zap.Logger
}

// Accounting is the switch between Spillway's strict accounting and Spark's unaccounted
// allowances. Every consumer of the library reads it from its manager (UnifiedManager.Accounting).
type Accounting uint8

const (
	// Strict (the default) charges to the budget every byte the library holds for data,
	// acquired before it is allocated: collections and their growth copies, the initial
	// threshold of spillable collections, spill and merge readers' and writers' buffers, the
	// reduce side's fetched shuffle bytes and the shuffle writers' buffers.
	Strict Accounting = iota
	// SparkAllowances keeps Spark's unaccounted allowances: the free initial threshold of every
	// spillable collection (spark.shuffle.spill.initialMemoryThreshold, 5 MiB), the reduce
	// side's in-flight fetches (spark.reducer.maxSizeInFlight, 48 MiB), file and record buffers
	// of spill readers and writers, the old array while a table grows. The live heap can then
	// exceed the budget by those amounts, as a Spark executor's does.
	SparkAllowances
)

// String returns "strict" or "spark-allowances".
func (a Accounting) String() string {
	switch a {
	case Strict:
		return "strict"
	case SparkAllowances:
		return "spark-allowances"
	}
	return fmt.Sprintf("Accounting(%d)", uint8(a))
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("memory: "+format, args...)) }
	if c.SystemMemory < 0 {
		add("Config.SystemMemory %d is negative", c.SystemMemory)
	}
	if c.ReservedMemory < 0 && c.ReservedMemory != NoReservedMemory {
		add("Config.ReservedMemory %d is negative (use NoReservedMemory for none)", c.ReservedMemory)
	}
	if math.IsNaN(c.Fraction) || c.Fraction < 0 || c.Fraction > 1 {
		add("Config.Fraction %v must be in (0, 1]", c.Fraction)
	}
	if math.IsNaN(c.StorageFraction) || c.StorageFraction < 0 || c.StorageFraction >= 1 {
		add("Config.StorageFraction %v must be in (0, 1)", c.StorageFraction)
	}
	if c.OffHeapSize < 0 {
		add("Config.OffHeapSize %d is negative", c.OffHeapSize)
	}
	if c.OffHeapEnabled && c.OffHeapSize == 0 {
		add("Config.OffHeapSize must be > 0 when Config.OffHeapEnabled is true")
	}
	if c.ExecutorMemory < 0 {
		add("Config.ExecutorMemory %d is negative", c.ExecutorMemory)
	}
	if c.NumCores < 0 {
		add("Config.NumCores %d is negative", c.NumCores)
	}
	if c.PageSize < 0 || c.PageSize > MaxPageSize {
		add("Config.PageSize %d must be in [1, %d]", c.PageSize, MaxPageSize)
	}
	if c.Accounting > SparkAllowances {
		add("Config.Accounting %d is unknown (Strict or SparkAllowances)", c.Accounting)
	}
	return errors.Join(errs...)
}

func (c Config) reserved() int64 {
	switch c.ReservedMemory {
	case 0:
		return DefaultReservedMemory
	case NoReservedMemory:
		return 0
	}
	return c.ReservedMemory
}

func (c Config) fraction() float64 {
	if c.Fraction == 0 {
		return DefaultFraction
	}
	return c.Fraction
}

func (c Config) storageFraction() float64 {
	if c.StorageFraction == 0 {
		return DefaultStorageFraction
	}
	return c.StorageFraction
}

func (c Config) numCores() int {
	if c.NumCores > 0 {
		return c.NumCores
	}
	return runtime.GOMAXPROCS(0)
}

func (c Config) systemMemory() (int64, error) {
	if c.SystemMemory > 0 {
		return c.SystemMemory, nil
	}
	if limit := debug.SetMemoryLimit(-1); limit < math.MaxInt64 {
		return limit, nil
	}
	return physicalMemory()
}

// ErrInsufficientMemory is matched (errors.Is) by every *InsufficientMemoryError.
var ErrInsufficientMemory = errors.New("memory: insufficient memory")

// InsufficientMemoryError is UnifiedMemoryManager.apply's small-heap check failing: Memory (the
// system memory, or the configured executor memory) is below Minimum = ceil(1.5 × reserved).
// It mirrors Spark's INVALID_DRIVER_MEMORY / INVALID_EXECUTOR_MEMORY errors
// (UnifiedMemoryManager.getMaxMemory).
type InsufficientMemoryError struct {
	// Class is Spark's error class: "INVALID_DRIVER_MEMORY.SYSTEM_MEMORY",
	// "INVALID_EXECUTOR_MEMORY.SYSTEM_MEMORY" or "INVALID_EXECUTOR_MEMORY.CONFIG_MEMORY".
	Class string
	// Field is the Config field to increase: "SystemMemory" or "ExecutorMemory".
	Field   string
	Memory  int64
	Minimum int64
}

func (e *InsufficientMemoryError) Error() string {
	return fmt.Sprintf("memory: %s: Config.%s %s (%d bytes) must be at least %s (%d bytes, 1.5 × reserved memory); increase it or the Go memory limit",
		e.Class, e.Field, humanize.IBytes(uint64(e.Memory)), e.Memory, humanize.IBytes(uint64(e.Minimum)), e.Minimum)
}

// Is makes errors.Is(err, ErrInsufficientMemory) true.
func (e *InsufficientMemoryError) Is(target error) bool { return target == ErrInsufficientMemory }

// sizing is the outcome of UnifiedMemoryManager.apply: the on-heap region and its protected part.
type sizing struct {
	maxHeap, heapRegion       int64
	maxOffHeap, offHeapRegion int64
}

// size applies Spark's sizing (UnifiedMemoryManager.getMaxMemory, MemoryManager's page size) to
// a validated Config.
func (c Config) size() (sizing, error) {
	system, err := c.systemMemory()
	if err != nil {
		return sizing{}, err
	}
	reserved := c.reserved()
	minSystem := int64(math.Ceil(float64(reserved) * 1.5))
	if system < minSystem {
		e := &InsufficientMemoryError{Class: "INVALID_DRIVER_MEMORY.SYSTEM_MEMORY", Field: "SystemMemory", Memory: system, Minimum: minSystem}
		if c.ExecutorMemory > 0 {
			e.Class = "INVALID_EXECUTOR_MEMORY.SYSTEM_MEMORY"
		}
		return sizing{}, e
	}
	if c.ExecutorMemory > 0 && c.ExecutorMemory < minSystem {
		return sizing{}, &InsufficientMemoryError{Class: "INVALID_EXECUTOR_MEMORY.CONFIG_MEMORY", Field: "ExecutorMemory", Memory: c.ExecutorMemory, Minimum: minSystem}
	}
	var s sizing
	s.maxHeap = scale(system-reserved, c.fraction())
	s.heapRegion = scale(s.maxHeap, c.storageFraction())
	s.maxOffHeap = c.OffHeapSize
	s.offHeapRegion = scale(s.maxOffHeap, c.storageFraction())
	return s, nil
}

// scale is Scala's (x * f).toLong for f in [0, 1]: truncation, saturating at math.MaxInt64
// (float64(math.MaxInt64) rounds up to 2^63, which int64 cannot hold).
func scale(x int64, f float64) int64 {
	if r := float64(x) * f; r < math.MaxInt64 {
		return int64(r)
	}
	return math.MaxInt64
}

// defaultPageSize is MemoryManager.defaultPageSizeBytes for a Tungsten pool of the given size.
func defaultPageSize(tungstenPool int64, cores int) int64 {
	size := nextPowerOf2(tungstenPool / int64(cores) / pageSizeSafetyFactor)
	return min(MaxDefaultPageSize, max(MinPageSize, size))
}

// nextPowerOf2 is ByteArrayMethods.nextPowerOf2: n itself when it is 0 or a power of two, else the
// next power of two above it.
func nextPowerOf2(n int64) int64 {
	if n <= 0 || n&(n-1) == 0 {
		return n
	}
	high := int64(1) << (63 - bits.LeadingZeros64(uint64(n)))
	return high << 1
}
