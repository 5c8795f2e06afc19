package shuffle

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/spillway/spillway/collection"
)

// Defaults of Config, Spark's values.
const (
	// DefaultBypassMergeThreshold is spark.shuffle.sort.bypassMergeThreshold: shuffles without
	// map-side combine into at most this many partitions use the BypassMergeWriter.
	DefaultBypassMergeThreshold = 200
	// NoBypassMerge in Config.BypassMergeThreshold never selects the BypassMergeWriter.
	NoBypassMerge = -1
	// DefaultMaxBytesInFlight is spark.reducer.maxSizeInFlight (48 MiB).
	DefaultMaxBytesInFlight int64 = 48 << 20
	// DefaultMaxBlockSizeFetchToMem is spark.network.maxRemoteBlockSizeFetchToMem (200 MiB).
	DefaultMaxBlockSizeFetchToMem int64 = 200 << 20
	// bypassBatchBytes bounds the batch each of the BypassMergeWriter's partition writers
	// buffers, so its buffers stay near numPartitions × 110 KiB.
	bypassBatchBytes = 32 << 10
)

// Config configures the shuffle writers and readers of a Runner's tasks. Its zero value means
// Spark's defaults.
type Config struct {
	// BypassMergeThreshold: a shuffle without map-side combine into at most this many partitions
	// is written by the BypassMergeWriter (spark.shuffle.sort.bypassMergeThreshold). 0 means 200;
	// NoBypassMerge means never.
	BypassMergeThreshold int
	// MaxBytesInFlight bounds the bytes of fetched shuffle segments a reduce task holds at once
	// (spark.reducer.maxSizeInFlight). A single segment larger than the bound is fetched alone
	// under memory.SparkAllowances; under Strict accounting the fetched bytes are execution memory
	// of the task, the bound caps what it acquires (at most a quarter of a task's fair share), and
	// a larger segment is streamed from its file. 0 means 48 MiB.
	MaxBytesInFlight int64
	// MaxBlockSizeFetchToMem: a segment larger than this is read straight from its file while it
	// is consumed instead of being loaded into memory
	// (spark.network.maxRemoteBlockSizeFetchToMem). 0 means 200 MiB.
	MaxBlockSizeFetchToMem int64
	// Spill configures the spillable collections of writers and readers (ExternalSorter,
	// ExternalAppendOnlyMap) and the record format of shuffle data files: its Compression
	// (spark.shuffle.compress) and BatchSize apply to data files too.
	Spill collection.SpillConfig
	// Logger receives shuffle logs under the name "shuffle". nil means the Runner's logger.
	Logger *zap.Logger
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c Config) Validate() error {
	var errs []error
	if c.BypassMergeThreshold < 0 && c.BypassMergeThreshold != NoBypassMerge {
		errs = append(errs, fmt.Errorf("shuffle: Config.BypassMergeThreshold %d is negative (use NoBypassMerge for never)", c.BypassMergeThreshold))
	}
	if c.MaxBytesInFlight < 0 {
		errs = append(errs, fmt.Errorf("shuffle: Config.MaxBytesInFlight %d is negative", c.MaxBytesInFlight))
	}
	if c.MaxBlockSizeFetchToMem < 0 {
		errs = append(errs, fmt.Errorf("shuffle: Config.MaxBlockSizeFetchToMem %d is negative", c.MaxBlockSizeFetchToMem))
	}
	if err := c.Spill.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("shuffle: Config.Spill: %w", err))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.BypassMergeThreshold == 0 {
		c.BypassMergeThreshold = DefaultBypassMergeThreshold
	}
	if c.MaxBytesInFlight == 0 {
		c.MaxBytesInFlight = DefaultMaxBytesInFlight
	}
	if c.MaxBlockSizeFetchToMem == 0 {
		c.MaxBlockSizeFetchToMem = DefaultMaxBlockSizeFetchToMem
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}
