package collection

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
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
	newCap := min(max(2*n, 1), b.vec.maxCapacity)
	d.pairs = append(make([]Pair[K, V], 0, newCap), d.pairs...)
	if d.parts != nil {
		d.parts = append(make([]int32, 0, newCap), d.parts...)
	}
	b.tracker.ResetSamples()
	return nil
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

// groupByPartition permutes pairs and parts alike so that the records are grouped by ascending
// partition, and returns the end offset of each partition's run (partition p's run ends at
// ends[p], the last run at len(pairs)). A nil parts means every record is in partition 0. Records
// already grouped are left in place; else an American flag sort moves them (one counting pass,
// then cycles of swaps): O(n) time and O(partitions) extra memory, leaving each run to be
// sorted by key alone.
func groupByPartition[K, V any](pairs []Pair[K, V], parts []int32) []int {
	if len(parts) == 0 {
		return []int{len(pairs)}
	}
	top, grouped := parts[0], true
	for i := 1; i < len(parts); i++ {
		grouped = grouped && parts[i] >= parts[i-1]
		top = max(top, parts[i])
	}
	ends := make([]int, top+1)
	for _, p := range parts {
		ends[p]++
	}
	next := make([]int, len(ends)) // the next unsettled slot of each partition's run
	runStarts(ends, next)
	if grouped {
		return ends
	}
	for p := range ends {
		for next[p] < ends[p] {
			i := next[p]
			q := parts[i]
			if int(q) == p {
				next[p]++
				continue
			}
			j := next[q]
			pairs[i], pairs[j] = pairs[j], pairs[i]
			parts[i], parts[j] = parts[j], parts[i]
			next[q]++
		}
	}
	return ends
}

// runStarts turns the record count of each bucket in ends into the end offset of its run, in
// place, and sets next to the start offset of each run (where an American flag sort places the
// next record of that bucket).
func runStarts(ends, next []int) {
	sum := 0
	for b, c := range ends {
		next[b] = sum
		sum += c
		ends[b] = sum
	}
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

// sortPairsByKey sorts pairs by key with keyCmp, which it calls directly: slices.SortFunc would
// need a closure around keyCmp, one more indirect call per comparison, and comparisons are most
// of a sort's cost when keys are cheap to compare. It is an introsort: quicksort with a median of
// three (or of three medians of three on long ranges) as pivot and a partition whose two scans
// both stop at keys equal to the pivot, so runs of equal keys split evenly; insertion sort on
// short ranges; heapsort once the recursion is deeper than 2·log2(n). So it takes O(n log n)
// time on every input and O(log n) stack. It is not stable. A keyCmp that is no strict weak
// order leaves pairs in some order, never panicking or losing a record.
func sortPairsByKey[K, V any](pairs []Pair[K, V], keyCmp func(a, b K) int) {
	quickSortPairs(pairs, keyCmp, 2*bits.Len(uint(len(pairs))))
}

// insertionSortMax is the longest range quickSortPairs sorts by insertion.
const insertionSortMax = 12

func quickSortPairs[K, V any](pairs []Pair[K, V], keyCmp func(a, b K) int, depth int) {
	for len(pairs) > insertionSortMax {
		if depth == 0 {
			heapSortPairs(pairs, keyCmp)
			return
		}
		depth--
		m := partitionPairs(pairs, keyCmp)
		// Recurse into the shorter side and loop on the longer, for O(log n) stack.
		if m < len(pairs)-m {
			quickSortPairs(pairs[:m], keyCmp, depth)
			pairs = pairs[m+1:]
		} else {
			quickSortPairs(pairs[m+1:], keyCmp, depth)
			pairs = pairs[:m]
		}
	}
	insertionSortPairs(pairs, keyCmp)
}

// partitionPairs picks a pivot, moves the pairs with smaller keys before it and those with
// greater keys after it (equal keys go either way), and returns its final index.
func partitionPairs[K, V any](pairs []Pair[K, V], keyCmp func(a, b K) int) int {
	n := len(pairs)
	a, b, c := n/4, n/2, 3*n/4
	if n >= 128 {
		s := n / 8
		a = medianOfThree(pairs, keyCmp, a-s, a, a+s)
		b = medianOfThree(pairs, keyCmp, b-s, b, b+s)
		c = medianOfThree(pairs, keyCmp, c-s, c, c+s)
	}
	m := medianOfThree(pairs, keyCmp, a, b, c)
	pairs[0], pairs[m] = pairs[m], pairs[0]
	pivot := pairs[0].Key
	i, j := 1, n-1
	for {
		for i <= j && keyCmp(pairs[i].Key, pivot) < 0 {
			i++
		}
		for i <= j && keyCmp(pairs[j].Key, pivot) > 0 {
			j--
		}
		if i >= j {
			break
		}
		pairs[i], pairs[j] = pairs[j], pairs[i]
		i++
		j--
	}
	pairs[0], pairs[j] = pairs[j], pairs[0]
	return j
}

// medianOfThree returns whichever of the indexes a, b and c holds the median key.
func medianOfThree[K, V any](pairs []Pair[K, V], keyCmp func(a, b K) int, a, b, c int) int {
	if keyCmp(pairs[b].Key, pairs[a].Key) < 0 {
		a, b = b, a
	}
	// pairs[a] ≤ pairs[b]
	if keyCmp(pairs[c].Key, pairs[b].Key) >= 0 {
		return b
	}
	if keyCmp(pairs[c].Key, pairs[a].Key) < 0 {
		return a
	}
	return c
}

func insertionSortPairs[K, V any](pairs []Pair[K, V], keyCmp func(a, b K) int) {
	for i := 1; i < len(pairs); i++ {
		x := pairs[i]
		j := i
		for ; j > 0 && keyCmp(x.Key, pairs[j-1].Key) < 0; j-- {
			pairs[j] = pairs[j-1]
		}
		pairs[j] = x
	}
}

func heapSortPairs[K, V any](pairs []Pair[K, V], keyCmp func(a, b K) int) {
	for root := len(pairs)/2 - 1; root >= 0; root-- {
		siftDownPairs(pairs, keyCmp, root)
	}
	for end := len(pairs) - 1; end > 0; end-- {
		pairs[0], pairs[end] = pairs[end], pairs[0]
		siftDownPairs(pairs[:end], keyCmp, 0)
	}
}

// siftDownPairs moves the pair at root down the max-heap pairs until its children are no greater.
func siftDownPairs[K, V any](pairs []Pair[K, V], keyCmp func(a, b K) int, root int) {
	for {
		child := 2*root + 1
		if child >= len(pairs) {
			return
		}
		if child+1 < len(pairs) && keyCmp(pairs[child].Key, pairs[child+1].Key) < 0 {
			child++
		}
		if keyCmp(pairs[root].Key, pairs[child].Key) >= 0 {
			return
		}
		pairs[root], pairs[child] = pairs[child], pairs[root]
		root = child
	}
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
