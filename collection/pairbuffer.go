package collection

import (
	"cmp"
	"slices"
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
// Records are stored in one slice of PartitionedPair (Spark interleaves (partition, key) tuples
// and values in one Object array). Sorting by partition only is not stable: records of one
// partition come out in an unspecified order (Spark's TimSort keeps insertion order; no Spark
// contract relies on it).
//
// A PartitionedPairBuffer is not safe for concurrent use.
type PartitionedPairBuffer[K, V any] struct {
	vec *SizeTrackingVector[PartitionedPair[K, V]]
}

// NewPartitionedPairBuffer returns an empty buffer with room for DefaultVectorCapacity records.
func NewPartitionedPairBuffer[K, V any]() *PartitionedPairBuffer[K, V] {
	return &PartitionedPairBuffer[K, V]{vec: NewSizeTrackingVector[PartitionedPair[K, V]]()}
}

// Insert appends a record (Spark's insert). It returns an error wrapping ErrBufferFull, and
// inserts nothing, when the buffer holds MaxBufferCapacity records.
func (b *PartitionedPairBuffer[K, V]) Insert(partition int32, key K, value V) error {
	return b.vec.Append(PartitionedPair[K, V]{Partition: partition, Key: key, Value: value})
}

// Len returns the number of records.
func (b *PartitionedPairBuffer[K, V]) Len() int { return b.vec.Len() }

// EstimateSize returns the tracked estimate of the buffer's size in bytes.
func (b *PartitionedPairBuffer[K, V]) EstimateSize() int64 { return b.vec.EstimateSize() }

// PartitionedDestructiveSortedIterator sorts the records in place by partition and then by keyCmp
// (partition only if keyCmp is nil) and returns them in that order, taking the buffer's memory:
// the buffer becomes invalid and no longer references the records, and the iterator clears each
// record it has passed.
func (b *PartitionedPairBuffer[K, V]) PartitionedDestructiveSortedIterator(keyCmp func(a, b K) int) Iterator[PartitionedPair[K, V]] {
	data := b.vec.take()
	ends := groupByPartition(data)
	if keyCmp != nil {
		byKey := func(x, y PartitionedPair[K, V]) int { return keyCmp(x.Key, y.Key) }
		start := 0
		for _, end := range ends {
			slices.SortFunc(data[start:end], byKey)
			start = end
		}
	}
	return &drainIterator[PartitionedPair[K, V]]{data: data}
}

// groupByPartition permutes data in place so that its records are grouped by ascending
// partition (an American flag sort: one counting pass, then cycles of swaps), and returns the
// end offset of each partition's run. It takes O(n) time and O(partitions) extra memory, and
// leaves each partition's records to be sorted by key alone, so the key sort does not compare
// partitions.
func groupByPartition[K, V any](data []PartitionedPair[K, V]) []int {
	if len(data) == 0 {
		return nil
	}
	var top int32
	for i := range data {
		top = max(top, data[i].Partition)
	}
	ends := make([]int, top+1)
	for i := range data {
		ends[data[i].Partition]++
	}
	next := make([]int, len(ends)) // the next unsettled slot of each partition's run
	sum := 0
	for p, c := range ends {
		next[p] = sum
		sum += c
		ends[p] = sum
	}
	for p := range ends {
		for next[p] < ends[p] {
			q := data[next[p]].Partition
			if int(q) == p {
				next[p]++
				continue
			}
			data[next[p]], data[next[q]] = data[next[q]], data[next[p]]
			next[q]++
		}
	}
	return ends
}

// drainIterator iterates a slice it owns and clears each element once passed, so what was read
// becomes collectable.
type drainIterator[T any] struct {
	data []T
	i    int
	cur  T
}

func (it *drainIterator[T]) Next() bool {
	var zero T
	if it.i >= len(it.data) {
		it.data, it.cur = nil, zero
		return false
	}
	it.cur = it.data[it.i]
	it.data[it.i] = zero
	it.i++
	return true
}

func (it *drainIterator[T]) Value() T   { return it.cur }
func (it *drainIterator[T]) Err() error { return nil }

func (it *drainIterator[T]) Close() error {
	var zero T
	it.data, it.cur = nil, zero
	return nil
}

// partKey is the key of a PartitionedAppendOnlyMap's table.
type partKey[K comparable] struct {
	partition int32
	key       K
}

// PartitionedAppendOnlyMap mirrors Spark's PartitionedAppendOnlyMap: a SizeTrackingMap keyed by
// (partition, key), for ExternalSorter with aggregation.
//
// Its table hashes only the key, with the Hasher given at construction: in ExternalSorter the
// partition is a function of the key, so this loses nothing, and it makes the stored hash the key
// hash that ExternalSorter's default key order (Spark's hash comparator) sorts by — see
// PartitionedDestructiveSortedByHash. The same key in several partitions is still correct, its
// entries just share a probe chain.
//
// A PartitionedAppendOnlyMap is not safe for concurrent use.
type PartitionedAppendOnlyMap[K comparable, V any] struct {
	m      *SizeTrackingMap[partKey[K], V]
	hasher Hasher[K]
}

// NewPartitionedAppendOnlyMap returns an empty map of DefaultInitialCapacity slots hashing keys
// with h (a zero h means NewHasher).
func NewPartitionedAppendOnlyMap[K comparable, V any](h Hasher[K]) *PartitionedAppendOnlyMap[K, V] {
	if h.IsZero() {
		h = NewHasher[K]()
	}
	ph := HasherFunc(func(pk partKey[K]) uint64 { return h.Hash(pk.key) })
	return &PartitionedAppendOnlyMap[K, V]{
		m:      NewSizeTrackingMap[partKey[K], V](DefaultInitialCapacity, ph),
		hasher: h,
	}
}

// Get returns the value of key in partition and whether it is present.
func (m *PartitionedAppendOnlyMap[K, V]) Get(partition int32, key K) (V, bool) {
	return m.m.Get(partKey[K]{partition, key})
}

// Update sets the value of key in partition (Spark's insert); see AppendOnlyMap.Update.
func (m *PartitionedAppendOnlyMap[K, V]) Update(partition int32, key K, value V) error {
	return m.m.Update(partKey[K]{partition, key}, value)
}

// ChangeValue updates the value of key in partition with f; see AppendOnlyMap.ChangeValue.
func (m *PartitionedAppendOnlyMap[K, V]) ChangeValue(partition int32, key K, f func(had bool, old V) V) (V, error) {
	return m.m.ChangeValue(partKey[K]{partition, key}, f)
}

// Len returns the number of distinct (partition, key) pairs.
func (m *PartitionedAppendOnlyMap[K, V]) Len() int { return m.m.Len() }

// EstimateSize returns the tracked estimate of the map's size in bytes.
func (m *PartitionedAppendOnlyMap[K, V]) EstimateSize() int64 { return m.m.EstimateSize() }

// Hasher returns the key Hasher; HashOf(k) is its hash of k.
func (m *PartitionedAppendOnlyMap[K, V]) Hasher() Hasher[K] { return m.hasher }

// HashOf returns the hash the map uses for key (never 0), in any partition.
func (m *PartitionedAppendOnlyMap[K, V]) HashOf(key K) uint64 { return m.hasher.Hash(key) }

// PartitionedDestructiveSortedIterator compacts and sorts the table in place by partition and
// then by keyCmp (partition only if keyCmp is nil) and returns the records in that order; the map
// becomes invalid as after AppendOnlyMap's destructive iterators.
func (m *PartitionedAppendOnlyMap[K, V]) PartitionedDestructiveSortedIterator(keyCmp func(a, b K) int) Iterator[PartitionedPair[K, V]] {
	data := m.m.compact()
	if keyCmp == nil {
		slices.SortFunc(data, func(x, y slot[partKey[K], V]) int { return cmp.Compare(x.key.partition, y.key.partition) })
	} else {
		slices.SortFunc(data, func(x, y slot[partKey[K], V]) int {
			if c := cmp.Compare(x.key.partition, y.key.partition); c != 0 {
				return c
			}
			return keyCmp(x.key.key, y.key.key)
		})
	}
	return &partitionedSlotIterator[K, V]{slotIterator[partKey[K], V]{data: data}}
}

// PartitionedDestructiveSortedByHash is PartitionedDestructiveSortedIterator ordered by partition
// and then by HashOf(key) (Spark's partition-then-hash-comparator order when an aggregator is
// given without an ordering), sorting by the stored hashes without rehashing. Keys of one
// partition sharing a hash come out in an unspecified order.
func (m *PartitionedAppendOnlyMap[K, V]) PartitionedDestructiveSortedByHash() Iterator[PartitionedPair[K, V]] {
	data := m.m.compact()
	slices.SortFunc(data, func(x, y slot[partKey[K], V]) int {
		if c := cmp.Compare(x.key.partition, y.key.partition); c != 0 {
			return c
		}
		return cmp.Compare(x.hash, y.hash)
	})
	return &partitionedSlotIterator[K, V]{slotIterator[partKey[K], V]{data: data}}
}

// partitionedSlotIterator turns the pairs of a partKey table into PartitionedPairs.
type partitionedSlotIterator[K comparable, V any] struct {
	slotIterator[partKey[K], V]
}

func (it *partitionedSlotIterator[K, V]) Value() PartitionedPair[K, V] {
	p := it.cur
	return PartitionedPair[K, V]{Partition: p.Key.partition, Key: p.Key.key, Value: p.Value}
}
