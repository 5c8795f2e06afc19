package memory

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"strings"
	"time"

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
	// DefaultNonSpillwayBase is the fixed part of the default Config.NonSpillwayAllowance
	// (DefaultNonSpillwayBase + on-heap region / 4).
	DefaultNonSpillwayBase int64 = 32 << 20
	// MinGoMemoryLimit is the smallest Go memory limit Config.SetGoMemoryLimit sets: below it the
	// runtime's own memory (stacks, metadata, the binary's data) leaves the collector running
	// without pause.
	MinGoMemoryLimit int64 = 16 << 20
	// DefaultHeapFeedbackInterval is the polling interval of unmanaged memory when
	// Config.GoHeapFeedback is set and Config.UnmanagedPollInterval is 0.
	DefaultHeapFeedbackInterval = 10 * time.Millisecond
)

// Config sizes a UnifiedManager. It mirrors the spark.memory.* keys read by
// UnifiedMemoryManager.apply and MemoryManager; its zero value means Spark's defaults.
type Config struct {
	// Budget, when set, is the unified on-heap region itself: "this many bytes for Spillway"
	// (execution and storage together), with no reserved memory and a fraction of 1. It cannot be
	// combined with SystemMemory, ReservedMemory or Fraction, and must not exceed the memory the
	// process may use (see SystemMemory). 0 means the region is sized from the system memory.
	Budget int64
	// SystemMemory is the memory the process may use (Spark: spark.testing.memory, default the JVM
	// max heap). 0 means the first of these that is set: the Go runtime's memory limit
	// (GOMEMLIMIT or debug.SetMemoryLimit), the cgroup v2 memory limit (memory.max), the cgroup
	// v1 memory limit (memory.limit_in_bytes), the machine's physical memory.
	// UnifiedManager.Sizing reports which one was used.
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
	// SetGoMemoryLimit ties the Go runtime to the budget: NewUnifiedManager sets the Go memory
	// limit (debug.SetMemoryLimit) to the on-heap region plus NonSpillwayAllowance, so the
	// collector works harder before the process reaches its container's limit, and
	// UnifiedManager.Close restores the previous limit. The limit plus OffHeapSize must fit in the
	// cgroup memory limit (or physical memory), and the limit must be at least MinGoMemoryLimit.
	// The Go memory limit is process-wide: set this on one manager at a time.
	SetGoMemoryLimit bool
	// NonSpillwayAllowance is the Go memory the process uses besides Spillway's on-heap region:
	// the application's own heap, goroutine stacks, runtime metadata and Spillway's unaccounted
	// slack. SetGoMemoryLimit adds it to the region, and GoHeapFeedback counts the live heap
	// above region + allowance as unmanaged memory. 0 means the default:
	// DefaultNonSpillwayBase (32 MiB) + region/4 with Budget or SetGoMemoryLimit, otherwise the
	// system memory less the region (Spark's reserved memory and the 1 − Fraction share).
	NonSpillwayAllowance int64
	// UnmanagedPollInterval is how often the unmanaged consumers (RegisterUnmanaged) are polled
	// (spark.memory.unmanagedMemoryPollingInterval, SPARK-53001): at most once per interval, by
	// the acquisition that finds the last poll older than the interval (there is no polling
	// goroutine), and on PollUnmanaged. 0, the default, ignores unmanaged memory, as Spark does.
	UnmanagedPollInterval time.Duration
	// GoHeapFeedback counts the part of the live Go heap that Spillway did not grant as on-heap
	// unmanaged memory: /gc/heap/live:bytes of runtime/metrics (the heap marked live by the last
	// collection) less the on-heap memory granted, less NonSpillwayAllowance and Spillway's
	// slack (region/10 + 2 MiB). Execution and storage then get less when the application
	// holds more than its allowance. It polls at UnmanagedPollInterval, or every
	// DefaultHeapFeedbackInterval when that is 0. Off by default.
	GoHeapFeedback bool
	// Clock returns the time for the polling interval. nil means time.Now; tests use a fake.
	Clock func() time.Time
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
	if err := c.validateBudget(); err != nil {
		errs = append(errs, err)
	}
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
	if c.NonSpillwayAllowance < 0 {
		add("Config.NonSpillwayAllowance %d is negative", c.NonSpillwayAllowance)
	}
	if c.UnmanagedPollInterval < 0 {
		add("Config.UnmanagedPollInterval %v is negative (0 disables unmanaged memory)", c.UnmanagedPollInterval)
	}
	return errors.Join(errs...)
}

// validateBudget rejects a negative Budget and a Budget combined with the fields it replaces.
func (c Config) validateBudget() error {
	switch {
	case c.Budget < 0:
		return fmt.Errorf("memory: Config.Budget %d is negative", c.Budget)
	case c.Budget == 0:
		return nil
	}
	var set []string
	if c.SystemMemory != 0 {
		set = append(set, fmt.Sprintf("Config.SystemMemory (%s)", ibytes(c.SystemMemory)))
	}
	if c.ReservedMemory != 0 {
		set = append(set, fmt.Sprintf("Config.ReservedMemory (%s)", ibytes(c.ReservedMemory)))
	}
	if c.Fraction != 0 {
		set = append(set, fmt.Sprintf("Config.Fraction (%v)", c.Fraction))
	}
	if len(set) > 0 {
		return fmt.Errorf("memory: Config.Budget (%s) is the unified region itself and cannot be combined with %s: set either Budget alone or SystemMemory, ReservedMemory and Fraction",
			ibytes(c.Budget), strings.Join(set, ", "))
	}
	return nil
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

// ErrInsufficientMemory is matched (errors.Is) by every *InsufficientMemoryError.
var ErrInsufficientMemory = errors.New("memory: insufficient memory")

// InsufficientMemoryError is UnifiedMemoryManager.apply's small-heap check failing: Memory (the
// system memory, or the configured executor memory) is below Minimum = ceil(1.5 × Reserved).
// It mirrors Spark's INVALID_DRIVER_MEMORY / INVALID_EXECUTOR_MEMORY errors
// (UnifiedMemoryManager.getMaxMemory).
type InsufficientMemoryError struct {
	// Class is Spark's error class: "INVALID_DRIVER_MEMORY.SYSTEM_MEMORY",
	// "INVALID_EXECUTOR_MEMORY.SYSTEM_MEMORY" or "INVALID_EXECUTOR_MEMORY.CONFIG_MEMORY".
	Class string
	// Field is the Config field to increase: "SystemMemory" or "ExecutorMemory".
	Field string
	// Source is where Memory came from (for Field "SystemMemory": Config.SystemMemory, the Go
	// memory limit, a cgroup limit or physical memory).
	Source   SizingSource
	Memory   int64
	Minimum  int64
	Reserved int64
}

func (e *InsufficientMemoryError) Error() string {
	what := "Config." + e.Field
	if e.Field == "SystemMemory" && e.Source != SourceSystemMemory {
		what = fmt.Sprintf("Config.SystemMemory (unset, so %s)", e.Source)
	}
	return fmt.Sprintf("memory: %s: %s %s (%d bytes) must be at least %s (%d bytes, 1.5 × Config.ReservedMemory %s); for a plain budget set Config.Budget alone, or set Config.ReservedMemory to NoReservedMemory",
		e.Class, what, ibytes(e.Memory), e.Memory, ibytes(e.Minimum), e.Minimum, ibytes(e.Reserved))
}

// Is makes errors.Is(err, ErrInsufficientMemory) true.
func (e *InsufficientMemoryError) Is(target error) bool { return target == ErrInsufficientMemory }

// sizing is the outcome of UnifiedMemoryManager.apply: the on-heap region and its protected part,
// where the system memory came from, and the Go memory limit to set (SetGoMemoryLimit).
type sizing struct {
	maxHeap, heapRegion       int64
	maxOffHeap, offHeapRegion int64
	source                    SizingSource
	system                    int64 // the memory the region was sized from (Budget itself for SourceBudget)
	allowance                 int64 // NonSpillwayAllowance or its default
	goLimit                   int64 // 0 unless SetGoMemoryLimit
}

// size applies UnifiedMemoryManager.apply (with Config.Budget's shortcut) to a validated Config,
// reading the system memory and machine limit from env.
func (c Config) size(env environment) (sizing, error) {
	var s sizing
	if c.Budget > 0 {
		s.source, s.system, s.maxHeap = SourceBudget, c.Budget, c.Budget
	} else {
		s.source, s.system = SourceSystemMemory, c.SystemMemory
		if s.system == 0 {
			var err error
			if s.system, s.source, err = env.systemMemory(); err != nil {
				return sizing{}, err
			}
		}
		reserved := c.reserved()
		minSystem := int64(math.Ceil(float64(reserved) * 1.5))
		if s.system < minSystem {
			e := &InsufficientMemoryError{Class: "INVALID_DRIVER_MEMORY.SYSTEM_MEMORY", Field: "SystemMemory",
				Source: s.source, Memory: s.system, Minimum: minSystem, Reserved: reserved}
			if c.ExecutorMemory > 0 {
				e.Class = "INVALID_EXECUTOR_MEMORY.SYSTEM_MEMORY"
			}
			return sizing{}, e
		}
		if c.ExecutorMemory > 0 && c.ExecutorMemory < minSystem {
			return sizing{}, &InsufficientMemoryError{Class: "INVALID_EXECUTOR_MEMORY.CONFIG_MEMORY", Field: "ExecutorMemory",
				Source: SourceSystemMemory, Memory: c.ExecutorMemory, Minimum: minSystem, Reserved: reserved}
		}
		s.maxHeap = scale(s.system-reserved, c.fraction())
	}
	s.heapRegion = scale(s.maxHeap, c.storageFraction())
	s.maxOffHeap = c.OffHeapSize
	s.offHeapRegion = scale(s.maxOffHeap, c.storageFraction())
	s.allowance = c.NonSpillwayAllowance
	if s.allowance == 0 {
		if c.Budget > 0 || c.SetGoMemoryLimit {
			s.allowance = satAdd(DefaultNonSpillwayBase, s.maxHeap/4)
		} else {
			s.allowance = max(0, s.system-s.maxHeap)
		}
	}
	return s, c.checkLimits(env, &s)
}

// checkLimits checks a Budget against the memory the process may use and derives the Go memory
// limit of SetGoMemoryLimit, checking it against the machine limit.
func (c Config) checkLimits(env environment, s *sizing) error {
	if !c.SetGoMemoryLimit {
		if c.Budget == 0 {
			return nil
		}
		limit, source, err := env.systemMemory()
		if err != nil {
			return err
		}
		if c.Budget > limit {
			return fmt.Errorf("memory: Config.Budget %s (%d bytes) exceeds %s, %s (%d bytes)",
				ibytes(c.Budget), c.Budget, source, ibytes(limit), limit)
		}
		return nil
	}
	region := "Config.Budget"
	if c.Budget == 0 {
		region = fmt.Sprintf("the unified region sized from %s", s.source)
	}
	s.goLimit = satAdd(s.maxHeap, s.allowance)
	if s.goLimit < MinGoMemoryLimit {
		return fmt.Errorf("memory: Config.SetGoMemoryLimit: the Go memory limit %s (%s %s + Config.NonSpillwayAllowance %s) is below the minimum %s (MinGoMemoryLimit); raise Config.NonSpillwayAllowance",
			ibytes(s.goLimit), region, ibytes(s.maxHeap), ibytes(s.allowance), ibytes(MinGoMemoryLimit))
	}
	machine, source, err := env.machineLimit()
	if err != nil {
		return err
	}
	if need := satAdd(s.goLimit, s.maxOffHeap); need > machine {
		return fmt.Errorf("memory: Config.SetGoMemoryLimit: %s %s + Config.NonSpillwayAllowance %s + Config.OffHeapSize %s = %s exceeds %s, %s (%d bytes)",
			region, ibytes(s.maxHeap), ibytes(s.allowance), ibytes(s.maxOffHeap), ibytes(need), source, ibytes(machine), machine)
	}
	return nil
}

// satAdd adds two non-negative sizes, saturating at math.MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
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
