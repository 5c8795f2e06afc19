package collection

import (
	"errors"
	"fmt"
	"iter"
	"math"

	"github.com/spillway/spillway/estimator"
)

// ErrBufferFull is returned, wrapped with the sizes involved, by the appending operations of a
// SizeTrackingVector or PartitionedPairBuffer that is at MaxBufferCapacity elements (Spark's
// PartitionedPairBuffer throws "Can't insert more than <max> elements").
var ErrBufferFull = errors.New("collection: buffer is full")

// MaxBufferCapacity is the most elements a SizeTrackingVector or PartitionedPairBuffer holds
// (Spark's PartitionedPairBuffer.MAXIMUM_CAPACITY, Int.MaxValue / 2).
const MaxBufferCapacity = math.MaxInt32 / 2

// DefaultVectorCapacity is the initial capacity of SizeTrackingVector and PartitionedPairBuffer
// (Spark's 64).
const DefaultVectorCapacity = 64

// SizeTrackingMap mirrors Spark's SizeTrackingAppendOnlyMap: an AppendOnlyMap whose size is
// tracked by an estimator.Tracker, so EstimateSize is cheap after every update. Update and
// ChangeValue count one update each; a table growth resets the samples (Spark's growTable
// override), and is followed by the update's own count, as in Spark.
//
// The measurement is an estimator.Estimator's Estimate of the underlying AppendOnlyMap (its
// struct, slot slice and what keys and values reference), which is O(1) for pointer-free keys and
// values and samples the slots otherwise.
//
// The embedded *AppendOnlyMap gives Get, Len, All, the destructive iterators and the hash
// accessors; calling its Update or ChangeValue directly bypasses the tracking.
type SizeTrackingMap[K comparable, V any] struct {
	*AppendOnlyMap[K, V]
	tracker *estimator.Tracker
}

// NewSizeTrackingMap returns an empty SizeTrackingMap with NewAppendOnlyMapWithHasher's
// capacity and hasher (a zero h means NewHasher), and panics as it does.
func NewSizeTrackingMap[K comparable, V any](initialCapacity int, h Hasher[K]) *SizeTrackingMap[K, V] {
	return newSizeTrackingMap[K, V](initialCapacity, h, new(estimator.Estimator))
}

// newSizeTrackingMap is NewSizeTrackingMap measuring with est, which caches the layouts of the
// map's types across samples. A spillable collection gives all its successive maps one
// Estimator, so the layouts are built once and the walker est keeps between samples is reused
// (and its scratch overwritten) by the next map rather than left holding the last one.
func newSizeTrackingMap[K comparable, V any](initialCapacity int, h Hasher[K], est *estimator.Estimator) *SizeTrackingMap[K, V] {
	m := &SizeTrackingMap[K, V]{AppendOnlyMap: NewAppendOnlyMapWithHasher[K, V](initialCapacity, h)}
	inner := m.AppendOnlyMap
	m.tracker = estimator.NewTracker(func() int64 { return est.Estimate(inner) })
	return m
}

// Update is AppendOnlyMap.Update followed by the tracker's update count.
func (m *SizeTrackingMap[K, V]) Update(k K, v V) error {
	capacity := m.Capacity()
	if err := m.AppendOnlyMap.Update(k, v); err != nil {
		return err
	}
	m.afterUpdate(capacity)
	return nil
}

// ChangeValue is AppendOnlyMap.ChangeValue followed by the tracker's update count.
func (m *SizeTrackingMap[K, V]) ChangeValue(k K, f func(had bool, old V) V) (V, error) {
	capacity := m.Capacity()
	v, err := m.AppendOnlyMap.ChangeValue(k, f)
	if err != nil {
		return v, err
	}
	m.afterUpdate(capacity)
	return v, nil
}

func (m *SizeTrackingMap[K, V]) afterUpdate(capacityBefore int) {
	if m.Capacity() != capacityBefore {
		m.tracker.ResetSamples()
	}
	m.tracker.AfterUpdate()
}

// growTo grows the table to capacity slots, a power of two above its capacity, and resets the
// samples as a growth does.
func (m *SizeTrackingMap[K, V]) growTo(capacity int) {
	m.AppendOnlyMap.growTo(capacity)
	m.tracker.ResetSamples()
}

// EstimateSize returns the tracker's estimate of the map's size in bytes (Spark's
// estimateSize).
func (m *SizeTrackingMap[K, V]) EstimateSize() int64 { return m.tracker.EstimateSize() }

// SizeTrackingVector mirrors Spark's SizeTrackingVector (PrimitiveVector + SizeTracker): a
// growable slice that starts at 64 elements and doubles when full, up to MaxBufferCapacity, with
// its size tracked by an estimator.Tracker (a resize resets the samples). Unlike Spark's
// PrimitiveVector it holds any element type.
//
// A SizeTrackingVector is not safe for concurrent use.
type SizeTrackingVector[T any] struct {
	data        []T // len = size, cap = capacity
	maxCapacity int // MaxBufferCapacity; lowered by tests
	tracker     *estimator.Tracker
}

// NewSizeTrackingVector returns an empty vector with room for DefaultVectorCapacity elements.
func NewSizeTrackingVector[T any]() *SizeTrackingVector[T] {
	v := &SizeTrackingVector[T]{
		data:        make([]T, 0, DefaultVectorCapacity),
		maxCapacity: MaxBufferCapacity,
	}
	var est estimator.Estimator // caches the layouts of T across samples
	v.tracker = estimator.NewTracker(func() int64 { return est.Estimate(v.data) })
	return v
}

// Append adds x at the end (Spark's +=). When the vector is full it first doubles its capacity
// (and resets the tracker's samples); at MaxBufferCapacity elements it returns an error wrapping
// ErrBufferFull and appends nothing.
func (v *SizeTrackingVector[T]) Append(x T) error {
	if len(v.data) == cap(v.data) {
		if err := v.grow(); err != nil {
			return err
		}
	}
	v.data = append(v.data, x)
	v.tracker.AfterUpdate()
	return nil
}

func (v *SizeTrackingVector[T]) grow() error {
	n := len(v.data)
	if n >= v.maxCapacity {
		return fmt.Errorf("%w: can't insert more than %d elements", ErrBufferFull, v.maxCapacity)
	}
	newCap := min(max(2*n, 1), v.maxCapacity)
	grown := make([]T, n, newCap)
	copy(grown, v.data)
	v.data = grown
	v.tracker.ResetSamples()
	return nil
}

// Len returns the number of elements.
func (v *SizeTrackingVector[T]) Len() int { return len(v.data) }

// Capacity returns the number of elements the vector holds before it grows again.
func (v *SizeTrackingVector[T]) Capacity() int { return cap(v.data) }

// At returns element i; it panics if i is out of range.
func (v *SizeTrackingVector[T]) At(i int) T {
	return v.data[i]
}

// All returns the index and value of every element in order (Spark's iterator).
func (v *SizeTrackingVector[T]) All() iter.Seq2[int, T] {
	return func(yield func(int, T) bool) {
		for i, x := range v.data {
			if !yield(i, x) {
				return
			}
		}
	}
}

// ToSlice returns a copy of the elements, trimmed to their number (Spark's toArray).
func (v *SizeTrackingVector[T]) ToSlice() []T {
	out := make([]T, len(v.data))
	copy(out, v.data)
	return out
}

// EstimateSize returns the tracker's estimate of the vector's size in bytes.
func (v *SizeTrackingVector[T]) EstimateSize() int64 { return v.tracker.EstimateSize() }
