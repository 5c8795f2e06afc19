package collection

import (
	"errors"
	"fmt"
	"math"
	"reflect"

	"github.com/spillway/spillway/storage"
)

// SorterConfig configures an ExternalSorter. Only the codecs are required; the zero value of
// every other field means Spark's default.
type SorterConfig[K comparable, V, C any] struct {
	// Aggregator combines the values of each key into a combiner (map-side combine). nil means
	// no aggregation: records are kept as inserted, and then C must be the same type as V
	// (NewExternalSorter reports an error otherwise).
	Aggregator *Aggregator[K, V, C]
	// Partitioner assigns each key its partition. nil means one partition (0); with one
	// partition the partitioner is not called, as in Spark.
	Partitioner interface {
		NumPartitions() int
		Partition(K) int
	}
	// Ordering orders keys within a partition (cmp.Compare's contract). nil means no key
	// ordering: records come out grouped by partition only.
	Ordering func(a, b K) int
	// KeyCodec and ValueCodec encode the keys and combiners of spill files and of
	// WritePartitionedFile's output. Decoded values must not alias the bytes they were decoded
	// from (string keys decoded by an aliasing codec are cloned).
	KeyCodec   storage.Codec[K]
	ValueCodec storage.Codec[C]
	// Spill is the spill policy and spill-file format (zero: Spark's defaults).
	Spill SpillConfig
	// Hasher hashes keys for the in-memory map and, when aggregating without an Ordering, orders
	// spills and their merge by key hash. The zero Hasher means NewHasher. Tests force
	// collisions with HasherFunc.
	Hasher Hasher[K]
	// Name names the sorter in logs and memory usage reports. "" means "ExternalSorter".
	Name string
	// Overlap is whether the sorter uses a second core: without an Aggregator, a background
	// goroutine sorts and writes each spill while the caller goes on inserting into a second
	// buffer (the two share the task's memory: each holds about half of it); and with records
	// free of pointers, the final merge decodes each spill file one block ahead in a goroutine
	// of its own. OverlapAuto (the zero value) turns it on when runtime.GOMAXPROCS(0) > 1 at
	// NewExternalSorter. Spark has no counterpart: its ExternalSorter spills and merges on the
	// task's thread, which is what OverlapOff does.
	Overlap Overlap
}

// Overlap says whether an ExternalSorter overlaps its spills and merges with the caller's work
// (see SorterConfig.Overlap).
type Overlap int8

const (
	// OverlapAuto overlaps when runtime.GOMAXPROCS(0) > 1.
	OverlapAuto Overlap = iota
	// OverlapOn always overlaps, even on one core (tests use it).
	OverlapOn
	// OverlapOff spills and merges on the caller's goroutine, as Spark does.
	OverlapOff
)

// on reports whether o means overlapping, given the GOMAXPROCS setting.
func (o Overlap) on(procs int) bool {
	return o == OverlapOn || o == OverlapAuto && procs > 1
}

// Validate reports every invalid field, naming it and its value.
func (c SorterConfig[K, V, C]) Validate() error {
	var errs []error
	if c.Aggregator != nil {
		errs = append(errs, c.Aggregator.Validate())
	} else if reflect.TypeFor[V]() != reflect.TypeFor[C]() {
		errs = append(errs, fmt.Errorf("collection: SorterConfig without an Aggregator keeps values as they are, so C (%v) must be V (%v)",
			reflect.TypeFor[C](), reflect.TypeFor[V]()))
	}
	if c.Partitioner != nil {
		if n := c.Partitioner.NumPartitions(); n < 1 || n > math.MaxInt32 {
			errs = append(errs, fmt.Errorf("collection: SorterConfig.Partitioner has %d partitions, outside [1, %d]", n, math.MaxInt32))
		}
	}
	if c.KeyCodec == nil {
		errs = append(errs, errors.New("collection: SorterConfig.KeyCodec is nil"))
	}
	if c.ValueCodec == nil {
		errs = append(errs, errors.New("collection: SorterConfig.ValueCodec is nil"))
	}
	if c.Overlap < OverlapAuto || c.Overlap > OverlapOff {
		errs = append(errs, fmt.Errorf("collection: SorterConfig.Overlap is %d, not one of OverlapAuto, OverlapOn, OverlapOff", c.Overlap))
	}
	return errors.Join(append(errs, c.Spill.Validate())...)
}
