package collection

import "errors"

// Aggregator is Spark's Aggregator (core/src/main/scala/org/apache/spark/Aggregator.scala): the
// three functions that combine the values of one key into a combiner of type C. K is the key
// type the aggregation runs over; the functions do not see it, as in Spark.
//
// The functions may modify and return their first argument (as Spark's append-to-buffer
// combiners do), run while the collection holds its lock, and must not use the collection.
type Aggregator[K, V, C any] struct {
	// CreateCombiner makes the combiner of a key from its first value.
	CreateCombiner func(v V) C
	// MergeValue adds a value to a combiner.
	MergeValue func(c C, v V) C
	// MergeCombiners merges two combiners of the same key (used when merging spills).
	MergeCombiners func(a, b C) C
}

// Validate reports every missing function (errors.Join).
func (a Aggregator[K, V, C]) Validate() error {
	var errs []error
	if a.CreateCombiner == nil {
		errs = append(errs, errors.New("collection: Aggregator.CreateCombiner is nil"))
	}
	if a.MergeValue == nil {
		errs = append(errs, errors.New("collection: Aggregator.MergeValue is nil"))
	}
	if a.MergeCombiners == nil {
		errs = append(errs, errors.New("collection: Aggregator.MergeCombiners is nil"))
	}
	return errors.Join(errs...)
}
