package collection

import (
	"errors"
	"fmt"
	"iter"
	"math/bits"
	"slices"
)

const (
	// DefaultInitialCapacity is AppendOnlyMap's default initial capacity (Spark's 64).
	DefaultInitialCapacity = 64
	// MaxMapCapacity is the largest table an AppendOnlyMap grows to (Spark's MAXIMUM_CAPACITY,
	// 2^29 slots), so a map holds at most int(0.7 × 2^29) = 375,809,638 keys.
	MaxMapCapacity = 1 << 29
	// loadFactor is Spark's LOAD_FACTOR: the table doubles once it holds more than
	// int(loadFactor × capacity) keys.
	loadFactor = 0.7
)

// ErrMapFull is returned, wrapped with the sizes involved, by the inserting operations of an
// AppendOnlyMap that would have to grow its table beyond MaxMapCapacity (Spark throws
// IllegalStateException "Can't contain more than <growThreshold> elements").
var ErrMapFull = errors.New("collection: append-only map is full")

const destroyedMsg = "collection: map state is invalid from destructive sorting"

// slot is one entry of the table. hash is the key's Hasher hash, which is never 0, so 0 marks an
// empty slot; keeping it in the slot makes growth rehash-free, lets probes skip most key
// comparisons, and lets DestructiveSortedByHash sort without hashing.
type slot[K comparable, V any] struct {
	hash uint64
	key  K
	val  V
}

// AppendOnlyMap mirrors Spark's AppendOnlyMap (core/src/main/scala/org/apache/spark/util/
// collection/AppendOnlyMap.scala): an open-addressing hash table for the append-only case —
// keys are inserted and their values changed, never removed. It is the in-memory part of
// ExternalAppendOnlyMap and ExternalSorter.
//
// The table has a power-of-two capacity and is probed triangularly (pos, pos+1, pos+3, pos+6, …,
// which visits every slot). It doubles when it holds more than int(0.7 × capacity) keys, up to
// MaxMapCapacity slots; an insert beyond that returns ErrMapFull and leaves the map unchanged.
// Keys, values and hashes live together in one slice of slots (Spark interleaves keys and values
// in one Object array).
//
// Differences from Spark, all deliberate:
//   - Go keys have no null: there is no out-of-band null-key slot. A nullable key type (a pointer,
//     or a struct such as struct{Valid bool; V string}) is an ordinary comparable key whose nil or
//     invalid value is stored in the table like any other; the destructive sorted iterators put
//     it where the comparator says (a comparator ranking nil first reproduces Spark's
//     "null key first").
//   - Absence is explicit: Get returns (value, found), so a stored zero value is distinguishable
//     from a missing key (Spark's apply returns null for both).
//   - Hashing uses a per-map random seed (see Hasher) instead of Murmur3 of hashCode, and the
//     hash is exposed (HashOf, Hasher) for merges by hash.
//   - With a NewHasher Hasher a key's probe starts at the top bits of its hash, not the low bits
//     (Spark's `pos = hash & mask`), so the table is nearly in hash order and
//     DestructiveSortedByHash (what every spill of ExternalAppendOnlyMap does) moves through
//     memory almost sequentially: about twice as fast on a table of 1M keys. A HasherFunc
//     Hasher keeps the low bits (its results may vary only there).
//   - Exceeding the maximum capacity is an error value from Update and ChangeValue, not an
//     exception, and nothing is inserted.
//   - The destructive iterators hand the table to the iterator and drop the map's reference,
//     and the iterator clears each slot it has passed, so the memory becomes collectable as it
//     is read (what SPARK-22713's fix needs).
//
// The map keeps keys and values as given, like a Go map: a key that aliases a reused buffer (a
// string decoded without copying) must be cloned by the caller before it is inserted.
// Keys compare with ==, as in a Go map: a NaN float key never finds itself, so each insert of NaN
// adds an entry. Using the map after a destructive iterator panics, as Spark's assertions fail. An AppendOnlyMap
// is not safe for concurrent use.
type AppendOnlyMap[K comparable, V any] struct {
	data          []slot[K, V]
	mask          uint64
	shift         uint8 // a key's probe starts at (hash >> shift) & mask; see allocate
	size          int
	growThreshold int
	maxCapacity   int // MaxMapCapacity; lowered by tests
	destroyed     bool
	hasher        Hasher[K]
}

// NewAppendOnlyMap returns an empty map with room for initialCapacity slots (rounded up to a
// power of two) and a fresh NewHasher. It panics, as Spark's require does, unless
// 1 ≤ initialCapacity ≤ MaxMapCapacity.
func NewAppendOnlyMap[K comparable, V any](initialCapacity int) *AppendOnlyMap[K, V] {
	return NewAppendOnlyMapWithHasher[K, V](initialCapacity, Hasher[K]{})
}

// NewAppendOnlyMapWithHasher is NewAppendOnlyMap hashing with h (a zero h means NewHasher).
// Maps whose contents are later merged by hash must share one Hasher.
func NewAppendOnlyMapWithHasher[K comparable, V any](initialCapacity int, h Hasher[K]) *AppendOnlyMap[K, V] {
	if initialCapacity > MaxMapCapacity {
		panic(fmt.Sprintf("collection: can't make capacity bigger than %d elements (asked for %d)", MaxMapCapacity, initialCapacity))
	}
	if initialCapacity < 1 {
		panic(fmt.Sprintf("collection: invalid initial capacity %d (must be 1 to %d)", initialCapacity, MaxMapCapacity))
	}
	if h.IsZero() {
		h = NewHasher[K]()
	}
	m := &AppendOnlyMap[K, V]{hasher: h, maxCapacity: MaxMapCapacity}
	m.allocate(nextPowerOfTwo(initialCapacity))
	return m
}

func nextPowerOfTwo(n int) int {
	c := 1
	for c < n {
		c <<= 1
	}
	return c
}

// allocate makes a table of capacity slots, a power of two. A key's probe starts at the top
// bits of its hash when the Hasher is one of NewHasher's, whose every bit is well mixed: the
// table is then close to hash order, so sorting it by hash (before a spill) moves through memory
// almost sequentially. A HasherFunc's result may vary only in its low bits (a
// 32-bit hash, k % 7), so its probe starts at the low bits, as in Spark.
func (m *AppendOnlyMap[K, V]) allocate(capacity int) {
	m.data = make([]slot[K, V], capacity)
	m.mask = uint64(capacity - 1)
	m.shift = 0
	if m.hasher.kind != hashFunc {
		m.shift = uint8(64 - bits.Len64(m.mask))
	}
	m.growThreshold = int(loadFactor * float64(capacity))
}

// home returns the slot a probe for hash h starts at.
func (m *AppendOnlyMap[K, V]) home(h uint64) uint64 { return h >> m.shift & m.mask }

func (m *AppendOnlyMap[K, V]) checkValid() {
	if m.destroyed {
		panic(destroyedMsg)
	}
}

// Len returns the number of keys in the map (Spark's size).
func (m *AppendOnlyMap[K, V]) Len() int { return m.size }

// Capacity returns the number of slots of the table (0 after a destructive iterator).
func (m *AppendOnlyMap[K, V]) Capacity() int { return len(m.data) }

// AtGrowThreshold reports whether the next insert of a new key will grow the table (Spark's
// atGrowThreshold).
func (m *AppendOnlyMap[K, V]) AtGrowThreshold() bool { return m.size == m.growThreshold }

// Hasher returns the map's Hasher; give it to every map whose contents are merged with this one.
func (m *AppendOnlyMap[K, V]) Hasher() Hasher[K] { return m.hasher }

// HashOf returns the hash the map uses for k (never 0); destructive sorting by hash orders keys by
// it.
func (m *AppendOnlyMap[K, V]) HashOf(k K) uint64 { return m.hasher.Hash(k) }

// Get returns the value of k and whether k is in the map (Spark's apply).
func (m *AppendOnlyMap[K, V]) Get(k K) (V, bool) {
	m.checkValid()
	s, found := m.probe(k, m.hasher.Hash(k))
	if !found {
		var zero V
		return zero, false
	}
	return s.val, true
}

// Update sets the value of k to v, inserting k if it is new (Spark's update). It returns an error
// wrapping ErrMapFull, and changes nothing, if k is new and the map cannot grow.
func (m *AppendOnlyMap[K, V]) Update(k K, v V) error {
	m.checkValid()
	h := m.hasher.Hash(k)
	s, found := m.probe(k, h)
	if found {
		s.val = v
		return nil
	}
	if err := m.checkRoom(); err != nil {
		return err
	}
	s.hash, s.key, s.val = h, k, v
	m.incrementSize()
	return nil
}

// ChangeValue sets the value of k to f(had, old), where had says whether k was in the map and
// old is its value (the zero V if not), and returns the new value (Spark's changeValue). The
// returned value is the new one even when the insert grows the table.
//
// f must not use the map. If k is new and the map cannot grow, ChangeValue returns an error
// wrapping ErrMapFull without calling f or changing anything.
func (m *AppendOnlyMap[K, V]) ChangeValue(k K, f func(had bool, old V) V) (V, error) {
	m.checkValid()
	h := m.hasher.Hash(k)
	s, found := m.probe(k, h)
	if found {
		s.val = f(true, s.val)
		return s.val, nil
	}
	var zero V
	if err := m.checkRoom(); err != nil {
		return zero, err
	}
	v := f(false, zero)
	s.hash, s.key, s.val = h, k, v
	m.incrementSize()
	return v, nil
}

// probe returns the slot holding k (found) or the empty slot where k belongs, following the
// triangular probe sequence from h. The table is never full, so an empty slot exists.
func (m *AppendOnlyMap[K, V]) probe(k K, h uint64) (*slot[K, V], bool) {
	data, mask := m.data, m.mask
	pos := m.home(h)
	for i := uint64(1); ; i++ {
		s := &data[pos]
		if s.hash == h && s.key == k {
			return s, true
		}
		if s.hash == 0 {
			return s, false
		}
		pos = (pos + i) & mask
	}
}

// checkRoom returns ErrMapFull if inserting one more key would need a table larger than the
// maximum capacity.
func (m *AppendOnlyMap[K, V]) checkRoom() error {
	if m.size >= m.growThreshold && 2*len(m.data) > m.maxCapacity {
		return fmt.Errorf("%w: can't contain more than %d elements (capacity %d, maximum capacity %d)",
			ErrMapFull, m.growThreshold, len(m.data), m.maxCapacity)
	}
	return nil
}

func (m *AppendOnlyMap[K, V]) incrementSize() {
	m.size++
	if m.size > m.growThreshold {
		m.growTable()
	}
}

// growTable doubles the table and re-inserts every key at its stored hash (Spark's growTable; no
// equality checks are needed since keys are distinct).
func (m *AppendOnlyMap[K, V]) growTable() { m.growTo(2 * len(m.data)) }

// growTo is growTable to capacity slots, a power of two above the current capacity.
func (m *AppendOnlyMap[K, V]) growTo(capacity int) {
	old := m.data
	m.allocate(capacity)
	data, mask := m.data, m.mask
	for j := range old {
		s := &old[j]
		if s.hash == 0 {
			continue
		}
		pos := m.home(s.hash)
		for i := uint64(1); data[pos].hash != 0; i++ {
			pos = (pos + i) & mask
		}
		data[pos] = *s
	}
}

// All returns the keys and values in table order (Spark's iterator). Changing the value of an
// existing key during the loop is allowed; inserting a key that grows the table, or a destructive
// iterator, makes the loop panic. All panics if the map was destructively iterated.
func (m *AppendOnlyMap[K, V]) All() iter.Seq2[K, V] {
	m.checkValid()
	return func(yield func(K, V) bool) {
		m.checkValid()
		data := m.data
		for i := range data {
			s := &data[i]
			if s.hash == 0 {
				continue
			}
			if !yield(s.key, s.val) {
				return
			}
			if len(m.data) != len(data) {
				if m.destroyed {
					panic(destroyedMsg)
				}
				panic("collection: append-only map grew during iteration")
			}
		}
	}
}

// DestructiveIterator returns the pairs in table order as an Iterator that takes the table over:
// the map becomes invalid (every later call panics) and no longer references the table, and the
// iterator clears each slot it passes, so memory is released as the pairs are read. It is what
// an ExternalAppendOnlyMap without spills reads, and can hand the unread rest to a spill.
func (m *AppendOnlyMap[K, V]) DestructiveIterator() Iterator[Pair[K, V]] {
	data := m.takeData()
	return &slotIterator[K, V]{slotStream[K, V]{data: data, sparse: true}}
}

// DestructiveSortedIterator sorts the pairs by key with cmp and returns them in that order
// (Spark's destructiveSortedIterator): the used slots are compacted to the front of the table and
// sorted in place, without a second array. Keys cmp reports equal come out in an unspecified
// order. The map becomes invalid as for DestructiveIterator. It panics if cmp is nil.
func (m *AppendOnlyMap[K, V]) DestructiveSortedIterator(cmp func(a, b K) int) Iterator[Pair[K, V]] {
	if cmp == nil {
		panic("collection: DestructiveSortedIterator with a nil comparator")
	}
	data := m.compact()
	slices.SortFunc(data, func(a, b slot[K, V]) int { return cmp(a.key, b.key) })
	return &slotIterator[K, V]{slotStream[K, V]{data: data}}
}

// DestructiveSortedByHash is DestructiveSortedIterator ordered by HashOf(key) ascending (Spark's
// destructiveSortedIterator(HashComparator), what ExternalAppendOnlyMap spills). It sorts by the
// hashes stored in the table, without rehashing. Keys sharing a hash come out in an unspecified
// order; merging by hash must compare such keys for equality.
func (m *AppendOnlyMap[K, V]) DestructiveSortedByHash() Iterator[Pair[K, V]] {
	data := m.compact()
	sortByHash(data, 56)
	return &slotIterator[K, V]{slotStream[K, V]{data: data}}
}

// sortByHash sorts slots by hash in place: an MSD radix sort (American flag sort) on the byte of
// the hash at shift, then on the next byte within each bucket, down to insertion sort for small
// buckets. Hashes are uniform, so one or two passes over the table do most of the work, without
// a comparator call per comparison and without a second array; a run of equal hashes costs one
// pass per remaining byte.
func sortByHash[K comparable, V any](data []slot[K, V], shift uint) {
	for {
		if len(data) <= 32 {
			for i := 1; i < len(data); i++ {
				for j := i; j > 0 && data[j].hash < data[j-1].hash; j-- {
					data[j], data[j-1] = data[j-1], data[j]
				}
			}
			return
		}
		var ends [256]int
		for i := range data {
			ends[byte(data[i].hash>>shift)]++
		}
		var next [256]int
		sum := 0
		for b := range ends {
			next[b] = sum
			sum += ends[b]
			ends[b] = sum
		}
		for b := range next {
			for next[b] < ends[b] {
				d := byte(data[next[b]].hash >> shift)
				if int(d) == b {
					next[b]++
					continue
				}
				data[next[b]], data[next[d]] = data[next[d]], data[next[b]]
				next[d]++
			}
		}
		if shift == 0 {
			return
		}
		shift -= 8
		start := 0
		for b := range ends[:255] {
			sortByHash(data[start:ends[b]], shift)
			start = ends[b]
		}
		data = data[start:] // the last bucket, without recursion
	}
}

// destructiveSlots is DestructiveIterator yielding the table's slots, hashes included.
func (m *AppendOnlyMap[K, V]) destructiveSlots() *slotStream[K, V] {
	return &slotStream[K, V]{data: m.takeData(), sparse: true}
}

// destructiveSortedSlots is DestructiveSortedByHash yielding the table's slots, hashes included
// (what ExternalAppendOnlyMap spills and merges).
func (m *AppendOnlyMap[K, V]) destructiveSortedSlots() *slotStream[K, V] {
	data := m.compact()
	sortByHash(data, 56)
	return &slotStream[K, V]{data: data}
}

// takeData invalidates the map and returns its table.
func (m *AppendOnlyMap[K, V]) takeData() []slot[K, V] {
	m.checkValid()
	data := m.data
	m.destroyed = true
	m.data = nil
	return data
}

// compact invalidates the map, moves the used slots to the front of the table and returns them;
// the slots behind are cleared so they hold no references.
func (m *AppendOnlyMap[K, V]) compact() []slot[K, V] {
	data := m.takeData()
	n := 0
	for i := range data {
		if data[i].hash != 0 {
			data[n] = data[i]
			n++
		}
	}
	clear(data[n:])
	return data[:n]
}

// slotStream iterates a table handed over by a destructive iterator, yielding whole slots
// (hash, key and value) for the spill and the merge of ExternalAppendOnlyMap, which order pairs
// by the hash stored with them. Each slot is cleared in the table as it is passed, and the table
// is dropped at the end. sparse says whether empty slots must be skipped (compacted tables have
// none).
type slotStream[K comparable, V any] struct {
	data   []slot[K, V]
	i      int
	cur    slot[K, V]
	sparse bool
}

func (it *slotStream[K, V]) Next() bool {
	for it.i < len(it.data) {
		s := &it.data[it.i]
		it.i++
		if it.sparse && s.hash == 0 {
			continue
		}
		it.cur, *s = *s, slot[K, V]{}
		return true
	}
	it.data, it.cur = nil, slot[K, V]{}
	return false
}

func (it *slotStream[K, V]) Value() slot[K, V] { return it.cur }
func (it *slotStream[K, V]) Err() error        { return nil }

func (it *slotStream[K, V]) Close() error {
	it.data = nil
	it.cur = slot[K, V]{}
	return nil
}

// slotIterator is a slotStream yielding key-value pairs.
type slotIterator[K comparable, V any] struct{ slotStream[K, V] }

func (it *slotIterator[K, V]) Value() Pair[K, V] {
	return Pair[K, V]{Key: it.cur.key, Value: it.cur.val}
}
