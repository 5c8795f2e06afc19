package harness

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// Victim names a memory.VictimOrder: which consumer of a task is asked to spill first when the
// task is short of execution memory.
type Victim string

// The victim orders a run can select.
const (
	// VictimSpark is memory.SparkOrder, Spark's TaskMemoryManager policy (the default).
	VictimSpark Victim = "spark"
	// VictimLargest is memory.LargestFirstOrder.
	VictimLargest Victim = "largest"
	// VictimRequester is memory.RequesterFirstOrder.
	VictimRequester Victim = "requester"
)

// Order returns the memory.VictimOrder v names; "" means Spark's.
func (v Victim) Order() (memory.VictimOrder, error) {
	switch v {
	case "", VictimSpark:
		return memory.SparkOrder{}, nil
	case VictimLargest:
		return memory.LargestFirstOrder{}, nil
	case VictimRequester:
		return memory.RequesterFirstOrder{}, nil
	}
	return nil, fmt.Errorf("harness: unknown victim order %q (want spark, largest or requester)", string(v))
}

// Unroll names how a block of unknown size is put in memory (see the cache workload).
type Unroll string

// The unroll strategies a run can select.
const (
	// UnrollSpark is Spark's incremental unrolling (MemoryStore.putIterator since SPARK-1777):
	// reserve 1 MiB of unroll memory, check the size every 16 records, grow the reservation to
	// 1.5 × the size when it is reached, give up when a reservation is refused (the default).
	UnrollSpark Unroll = "spark"
	// UnrollMaterialise is what Spark did before SPARK-1777: compute the whole partition into a
	// slice, estimate its size, and only then try to store it.
	UnrollMaterialise Unroll = "materialise"
	// UnrollPresize reserves the block's estimated size at once: the size of its first records,
	// extrapolated to its record count, as the initial unroll reservation.
	UnrollPresize Unroll = "presize"
)

// Validate reports an unknown unroll strategy ("" means Spark's).
func (u Unroll) Validate() error {
	switch u {
	case "", UnrollSpark, UnrollMaterialise, UnrollPresize:
		return nil
	}
	return fmt.Errorf("harness: unknown unroll strategy %q (want spark, materialise or presize)", string(u))
}

// Strategy is one choice of the knobs a benchmark compares. Each workload uses the knobs that
// matter to it (the victim order needs several consumers in one task; compression needs
// spills; the storage level and unroll strategy need cached blocks) and ignores the others,
// and Label names only the knobs that were set.
type Strategy struct {
	// Level is the storage level of cached blocks, a storage.ParseLevel name such as
	// "MEMORY_AND_DISK_SER". "" means MEMORY_ONLY (Spark's cache()).
	Level string `json:"level,omitempty"`
	// Unroll is how cached blocks are put in memory. "" means Spark's.
	Unroll Unroll `json:"unroll,omitempty"`
	// Victim is the spill victim order (memory.TaskConfig.VictimOrder). "" means Spark's.
	Victim Victim `json:"victim,omitempty"`
	// NoCompress turns spill compression off (collection.SpillConfig.Compression =
	// storage.CompressionNone); the default compresses spills with S2, as Spark compresses them
	// with its default codec.
	NoCompress bool `json:"no_compress,omitempty"`
	// SparkAllowances runs the library with memory.SparkAllowances instead of memory.Strict
	// (memory.Config.Accounting): Spark's unaccounted allowances, for comparisons with Spark.
	SparkAllowances bool `json:"spark_allowances,omitempty"`
}

// Accounting is the memory.Accounting the strategy selects.
func (s Strategy) Accounting() memory.Accounting {
	if s.SparkAllowances {
		return memory.SparkAllowances
	}
	return memory.Strict
}

// Compression is the spill compression the strategy selects.
func (s Strategy) Compression() storage.Compression {
	if s.NoCompress {
		return storage.CompressionNone
	}
	return storage.CompressionDefault
}

// StorageLevel is the storage.Level that Level names; MEMORY_ONLY when Level is "".
func (s Strategy) StorageLevel() (storage.Level, error) {
	if s.Level == "" {
		return storage.MemoryOnly, nil
	}
	l, err := storage.ParseLevel(s.Level)
	if err != nil {
		return 0, fmt.Errorf("harness: strategy level: %w", err)
	}
	return l, nil
}

// Validate reports an unknown victim order, storage level or unroll strategy.
func (s Strategy) Validate() error {
	_, err := s.Victim.Order()
	_, lerr := s.StorageLevel()
	return errors.Join(err, lerr, s.Unroll.Validate())
}

// Label is a short name of the strategy such as "victim=largest,nocompress", or "default" when
// every knob has Spark's setting.
func (s Strategy) Label() string {
	var parts []string
	if s.Level != "" {
		parts = append(parts, "level="+s.Level)
	}
	if s.Unroll != "" {
		parts = append(parts, "unroll="+string(s.Unroll))
	}
	if s.Victim != "" {
		parts = append(parts, "victim="+string(s.Victim))
	}
	if s.NoCompress {
		parts = append(parts, "nocompress")
	}
	if s.SparkAllowances {
		parts = append(parts, "accounting=spark")
	}
	if len(parts) == 0 {
		return "default"
	}
	return strings.Join(parts, ",")
}

// ParseStrategy parses a Label back ("default" or comma-separated level=…, unroll=…,
// victim=…, nocompress, compress, accounting=spark or accounting=strict).
func ParseStrategy(label string) (Strategy, error) {
	var s Strategy
	label = strings.TrimSpace(label)
	if label == "" || label == "default" {
		return s, nil
	}
	for part := range strings.SplitSeq(label, ",") {
		k, v, hasValue := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case k == "level" && hasValue:
			s.Level = v
		case k == "unroll" && hasValue:
			s.Unroll = Unroll(v)
		case k == "victim" && hasValue:
			s.Victim = Victim(v)
		case k == "nocompress" && !hasValue:
			s.NoCompress = true
		case k == "compress" && !hasValue:
			s.NoCompress = false
		case k == "accounting" && (v == "spark" || v == "strict"):
			s.SparkAllowances = v == "spark"
		default:
			return Strategy{}, fmt.Errorf("harness: bad strategy part %q in %q (want level=…, unroll=…, victim=…, nocompress, compress or accounting=spark|strict)", part, label)
		}
	}
	return s, s.Validate()
}
