package collection

import (
	"cmp"
	"slices"
)

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
	return &partitionedSlotIterator[K, V]{slotIterator[partKey[K], V]{slotStream[partKey[K], V]{data: data}}}
}

// PartitionedDestructiveSortedByHash is PartitionedDestructiveSortedIterator ordered by partition
// and then by HashOf(key) (Spark's partition-then-hash-comparator order when an aggregator is
// given without an ordering), sorting by the stored hashes without rehashing, by radix rather
// than Spark's comparator sort (see sortByPartitionAndHash). Keys of one partition sharing a hash
// come out in an unspecified order.
func (m *PartitionedAppendOnlyMap[K, V]) PartitionedDestructiveSortedByHash() Iterator[PartitionedPair[K, V]] {
	data := m.m.compact()
	sortByPartitionAndHash(data)
	return &partitionedSlotIterator[K, V]{slotIterator[partKey[K], V]{slotStream[partKey[K], V]{data: data}}}
}

// sortByPartitionAndHash sorts the slots of a partKey table by partition and then by hash, in
// place. One American flag pass (a counting pass, then cycles of swaps; nothing moves if the
// slots are in order already) groups them by a digit made of the partition and the top bits of
// the hash, as many bits as make buckets of about 8 slots (at most 4096 buckets, unless there
// are more partitions); then each bucket is sorted by hash: by insertion when small, else (hashes
// sharing their top bits) by sortByHash. Its extra memory is the bucket counts; when the largest
// partition id is far above the number of slots it sorts with a comparator instead.
func sortByPartitionAndHash[K comparable, V any](data []slot[partKey[K], V]) {
	if len(data) == 0 {
		return
	}
	top := data[0].key.partition
	for i := 1; i < len(data); i++ {
		top = max(top, data[i].key.partition)
	}
	parts := int(top) + 1
	if parts > 2*len(data)+256 {
		slices.SortFunc(data, func(x, y slot[partKey[K], V]) int {
			if c := cmp.Compare(x.key.partition, y.key.partition); c != 0 {
				return c
			}
			return cmp.Compare(x.hash, y.hash)
		})
		return
	}
	hashBits := 0
	for hashBits < 16 && parts<<(hashBits+1) <= min(len(data)/8, 4096) {
		hashBits++
	}
	shift := uint(64 - hashBits) // 64 when hashBits is 0: the digit is the partition alone
	digit := func(s *slot[partKey[K], V]) int { return int(s.key.partition)<<hashBits | int(s.hash>>shift) }
	ends := make([]int, parts<<hashBits)
	inOrder, prev := true, 0
	for i := range data {
		d := digit(&data[i])
		ends[d]++
		inOrder = inOrder && d >= prev
		prev = d
	}
	next := make([]int, len(ends)) // the next unsettled slot of each bucket
	runStarts(ends, next)
	if !inOrder {
		for b := range ends {
			for next[b] < ends[b] {
				i := next[b]
				d := digit(&data[i])
				if d == b {
					next[b]++
					continue
				}
				j := next[d]
				data[i], data[j] = data[j], data[i]
				next[d]++
			}
		}
	}
	start := 0
	for _, end := range ends {
		run := data[start:end]
		start = end
		if len(run) > 64 {
			sortByHash(run, 56)
			continue
		}
		for i := 1; i < len(run); i++ {
			x := run[i]
			j := i
			for ; j > 0 && x.hash < run[j-1].hash; j-- {
				run[j] = run[j-1]
			}
			run[j] = x
		}
	}
}

// partitionedSlotIterator turns the pairs of a partKey table into PartitionedPairs.
type partitionedSlotIterator[K comparable, V any] struct {
	slotIterator[partKey[K], V]
}

func (it *partitionedSlotIterator[K, V]) Value() PartitionedPair[K, V] {
	s := it.cur
	return PartitionedPair[K, V]{Partition: s.key.partition, Key: s.key.key, Value: s.val}
}
