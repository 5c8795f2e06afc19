package collection

import (
	"fmt"
	"unsafe"

	"github.com/spillway/spillway/estimator"
)

// PartitionedCollection mirrors Spark's WritablePartitionedPairCollection: what ExternalSorter
// needs from its in-memory collection — PartitionedAppendOnlyMap when it aggregates,
// PartitionedPairBuffer when it does not.
type PartitionedCollection[K, V any] interface {
	// Len returns the number of records (distinct (partition, key) pairs for the map).
	Len() int
	// EstimateSize returns the tracked estimate of the collection's size in bytes.
	EstimateSize() int64
	// PartitionedDestructiveSortedIterator sorts the records by partition and then by keyCmp
	// (by partition only if keyCmp is nil) and returns them in that order. The collection
	// becomes invalid (later calls panic) and hands its memory to the iterator.
	PartitionedDestructiveSortedIterator(keyCmp func(a, b K) int) Iterator[PartitionedPair[K, V]]
}

// PartitionedPairBuffer mirrors Spark's PartitionedPairBuffer: an append-only buffer of
// (partition, key, value) records with a tracked size, for ExternalSorter without aggregation. It
// starts with room for 64 records and doubles when full, up to MaxBufferCapacity (an insert beyond
// returns an error wrapping ErrBufferFull); each resize resets the size samples.
//
// Records are stored in two columns (Spark interleaves (partition, key) tuples and values in one
// Object array): a slice of key-value Pairs and, from the first record of a partition other than
// 0, a slice of their int32 partitions, so a buffer of one partition holds no partitions at all.
// Sorting groups the records by partition in place and then sorts each partition's run by key,
// calling keyCmp directly. Neither step is stable: records of one partition that keyCmp calls
// equal, or all of them when keyCmp is nil, come out in an unspecified order (Spark's TimSort
// keeps insertion order; no Spark contract relies on it).
//
// A PartitionedPairBuffer is not safe for concurrent use.
type PartitionedPairBuffer[K, V any] struct {
	vec     pairVector[K, V]
	tracker *estimator.Tracker
}

// pairVector is the storage of a PartitionedPairBuffer (Spark's PrimitiveVector under it).
type pairVector[K, V any] struct {
	data        pairColumns[K, V] // all the buffer holds on the heap
	maxCapacity int               // MaxBufferCapacity; lowered by tests
	destroyed   bool
}

// pairColumns are a PartitionedPairBuffer's records, column by column.
type pairColumns[K, V any] struct {
	pairs []Pair[K, V] // len = size, cap = capacity
	parts []int32      // pairs[i]'s partition, same len and cap; nil while every partition is 0
}

// NewPartitionedPairBuffer returns an empty buffer with room for DefaultVectorCapacity records.
func NewPartitionedPairBuffer[K, V any]() *PartitionedPairBuffer[K, V] {
	return newPartitionedPairBuffer[K, V](false)
}

// newPartitionedPairBuffer is NewPartitionedPairBuffer with the partition column allocated from
// the start if partitioned, so its memory is part of every size estimate and growth.
func newPartitionedPairBuffer[K, V any](partitioned bool) *PartitionedPairBuffer[K, V] {
	b := &PartitionedPairBuffer[K, V]{vec: pairVector[K, V]{
		data:        pairColumns[K, V]{pairs: make([]Pair[K, V], 0, DefaultVectorCapacity)},
		maxCapacity: MaxBufferCapacity,
	}}
	if partitioned {
		b.vec.data.parts = make([]int32, 0, DefaultVectorCapacity)
	}
	var est estimator.Estimator // caches the layouts across samples
	b.tracker = estimator.NewTracker(func() int64 { return est.Estimate(b.vec.data) })
	return b
}

func (b *PartitionedPairBuffer[K, V]) checkValid() {
	if b.vec.destroyed {
		panic("collection: buffer state is invalid from destructive sorting")
	}
}

// Insert appends a record (Spark's insert). It returns an error wrapping ErrBufferFull, and
// inserts nothing, when the buffer holds MaxBufferCapacity records. A negative partition panics.
func (b *PartitionedPairBuffer[K, V]) Insert(partition int32, key K, value V) error {
	b.checkValid()
	if partition < 0 {
		panic(fmt.Sprintf("collection: negative partition %d", partition))
	}
	d := &b.vec.data
	if len(d.pairs) == cap(d.pairs) {
		if err := b.grow(); err != nil {
			return err
		}
	}
	if partition != 0 && d.parts == nil {
		d.parts = make([]int32, len(d.pairs), cap(d.pairs))
		b.tracker.ResetSamples()
	}
	d.pairs = append(d.pairs, Pair[K, V]{Key: key, Value: value})
	if d.parts != nil {
		d.parts = append(d.parts, partition)
	}
	b.tracker.AfterUpdate()
	return nil
}

// grow doubles the capacity of both columns and resets the size samples.
func (b *PartitionedPairBuffer[K, V]) grow() error {
	d := &b.vec.data
	n := len(d.pairs)
	if n >= b.vec.maxCapacity {
		return fmt.Errorf("%w: can't insert more than %d elements", ErrBufferFull, b.vec.maxCapacity)
	}
	b.growTo(min(max(2*n, 1), b.vec.maxCapacity))
	return nil
}

// growTo makes room for n records in both columns (n above the capacity, at most the maximum)
// and resets the size samples.
func (b *PartitionedPairBuffer[K, V]) growTo(n int) {
	d := &b.vec.data
	d.pairs = append(make([]Pair[K, V], 0, n), d.pairs...)
	if d.parts != nil {
		d.parts = append(make([]int32, 0, n), d.parts...)
	}
	b.tracker.ResetSamples()
}

// Len returns the number of records.
func (b *PartitionedPairBuffer[K, V]) Len() int { return len(b.vec.data.pairs) }

// capacity returns the number of records the buffer holds before it grows again.
func (b *PartitionedPairBuffer[K, V]) capacity() int { return cap(b.vec.data.pairs) }

// recordSize returns the bytes each record's slot takes in the buffer's columns.
func (b *PartitionedPairBuffer[K, V]) recordSize() int64 {
	size := int64(unsafe.Sizeof(Pair[K, V]{}))
	if b.vec.data.parts != nil {
		size += int64(unsafe.Sizeof(int32(0)))
	}
	return size
}

// EstimateSize returns the tracked estimate of the buffer's size in bytes.
func (b *PartitionedPairBuffer[K, V]) EstimateSize() int64 { return b.tracker.EstimateSize() }

// PartitionedDestructiveSortedIterator sorts the records in place by partition and then by keyCmp
// (partition only if keyCmp is nil) and returns them in that order, taking the buffer's memory:
// the buffer becomes invalid and no longer references the records, and the iterator clears each
// record it has passed.
func (b *PartitionedPairBuffer[K, V]) PartitionedDestructiveSortedIterator(keyCmp func(a, b K) int) Iterator[PartitionedPair[K, V]] {
	b.checkValid()
	d := b.vec.data
	b.vec.data, b.vec.destroyed = pairColumns[K, V]{}, true
	ends := groupByPartition(d.pairs, d.parts)
	if keyCmp != nil {
		start := 0
		for _, end := range ends {
			sortPairsByKey(d.pairs[start:end], keyCmp)
			start = end
		}
	}
	return &bufferIterator[K, V]{pairs: d.pairs, ends: ends}
}

// bufferIterator is the destructive sorted iterator of a PartitionedPairBuffer: it reads the
// grouped and sorted pairs, taking each record's partition from the runs, and clears each pair
// once passed, so what was read becomes collectable.
type bufferIterator[K, V any] struct {
	pairs []Pair[K, V]
	ends  []int // end of each partition's run
	i     int
	part  int32
	cur   PartitionedPair[K, V]
}

func (it *bufferIterator[K, V]) Next() bool {
	if it.i >= len(it.pairs) {
		_ = it.Close()
		return false
	}
	for it.i >= it.ends[it.part] {
		it.part++
	}
	p := &it.pairs[it.i]
	it.cur = PartitionedPair[K, V]{Partition: it.part, Key: p.Key, Value: p.Value}
	*p = Pair[K, V]{}
	it.i++
	return true
}

func (it *bufferIterator[K, V]) fill(dst []PartitionedPair[K, V]) int {
	it.cur = PartitionedPair[K, V]{}
	n := 0
	for n < len(dst) && it.i < len(it.pairs) {
		for it.i >= it.ends[it.part] {
			it.part++
		}
		run := it.pairs[it.i:min(it.ends[it.part], it.i+len(dst)-n)]
		for j, p := range run {
			dst[n+j] = PartitionedPair[K, V]{Partition: it.part, Key: p.Key, Value: p.Value}
		}
		clear(run)
		n += len(run)
		it.i += len(run)
	}
	if n == 0 {
		_ = it.Close()
	}
	return n
}

func (it *bufferIterator[K, V]) Value() PartitionedPair[K, V] { return it.cur }
func (it *bufferIterator[K, V]) Err() error                   { return nil }

func (it *bufferIterator[K, V]) Close() error {
	it.pairs, it.ends, it.cur = nil, nil, PartitionedPair[K, V]{}
	return nil
}
