package shuffle

import (
	"errors"
	"fmt"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// Aggregator is collection.Aggregator, Spark's Aggregator: how the values of a key are combined
// (createCombiner, mergeValue, mergeCombiners).
type Aggregator[K, V, C any] = collection.Aggregator[K, V, C]

// Dependency mirrors Spark's ShuffleDependency: everything map and reduce tasks must agree on to
// exchange the records of one shuffle. Map tasks read records of type (K, V); with an Aggregator
// reduce tasks produce (K, C), without one C must be V.
type Dependency[K comparable, V, C any] struct {
	// ShuffleID identifies the shuffle (Runner.NewShuffleID gives a fresh one).
	ShuffleID int
	// Partitioner assigns keys to reduce partitions.
	Partitioner Partitioner[K]
	// Aggregator, if set, combines the values of each key (Spark's aggregator: reduceByKey,
	// combineByKey, groupByKey).
	Aggregator *Aggregator[K, V, C]
	// MapSideCombine combines values on the map side before writing (Spark's mapSideCombine);
	// it needs an Aggregator.
	MapSideCombine bool
	// KeyOrdering, if set, sorts each reduce partition by key (Spark's keyOrdering: sortByKey).
	KeyOrdering func(a, b K) int
	// KeyCodec, ValueCodec and CombinerCodec encode keys, values and combiners in shuffle and
	// spill files (Spark's serializer). CombinerCodec is needed with an Aggregator; without one it
	// is unused (ValueCodec encodes everything).
	KeyCodec      storage.Codec[K]
	ValueCodec    storage.Codec[V]
	CombinerCodec storage.Codec[C]
}

// Validate reports everything missing or inconsistent (Spark's ShuffleDependency requires, and
// "Map-side combine without Aggregator specified!"), each naming the field (errors.Join).
func (d *Dependency[K, V, C]) Validate() error {
	var errs []error
	if d.ShuffleID < 0 {
		errs = append(errs, fmt.Errorf("shuffle: Dependency.ShuffleID %d is negative", d.ShuffleID))
	}
	if d.Partitioner == nil {
		errs = append(errs, errors.New("shuffle: Dependency.Partitioner is nil"))
	} else if n := d.Partitioner.NumPartitions(); n < 1 {
		errs = append(errs, fmt.Errorf("shuffle: Dependency.Partitioner has %d partitions", n))
	}
	if d.KeyCodec == nil {
		errs = append(errs, errors.New("shuffle: Dependency.KeyCodec is nil"))
	}
	if d.ValueCodec == nil {
		errs = append(errs, errors.New("shuffle: Dependency.ValueCodec is nil"))
	}
	switch {
	case d.MapSideCombine && d.Aggregator == nil:
		errs = append(errs, errors.New("shuffle: map-side combine without Aggregator specified"))
	case d.Aggregator != nil:
		if err := d.Aggregator.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("shuffle: Dependency.Aggregator: %w", err))
		}
		if d.CombinerCodec == nil {
			errs = append(errs, errors.New("shuffle: Dependency.CombinerCodec is nil but an Aggregator is set"))
		}
	}
	if d.Aggregator == nil && d.ValueCodec != nil {
		if _, ok := any(d.ValueCodec).(storage.Codec[C]); !ok {
			errs = append(errs, fmt.Errorf("shuffle: without an Aggregator the combiner type must be the value type, got value codec %T", d.ValueCodec))
		}
	}
	return errors.Join(errs...)
}

// outputCodec is the codec of the values reduce tasks produce: CombinerCodec with an
// Aggregator, else ValueCodec (V is C then).
func (d *Dependency[K, V, C]) outputCodec() storage.Codec[C] {
	if d.Aggregator != nil {
		return d.CombinerCodec
	}
	return any(d.ValueCodec).(storage.Codec[C])
}
