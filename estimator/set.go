package estimator

import "math/bits"

// keySet is a set of non-zero 64-bit keys (object addresses, sample positions plus one). It
// replaces a map[uintptr]struct{} on the walker's hot path (one visit per pointer followed, one
// per heap object, one per sampled position).
type keySet struct{ t keyTable[struct{}] }

// add inserts k, which must not be 0, and reports whether it was not in the set.
func (s *keySet) add(k uint64) bool {
	_, added := s.t.insert(k, struct{}{})
	return added
}

func (s *keySet) len() int { return s.t.len() }
func (s *keySet) reset()   { s.t.reset() }

// keyTable maps non-zero 64-bit keys to values of type V: open addressing with linear probing
// and Fibonacci hashing, at most half full. An insert is a multiply and usually one probe, and
// clearing is one memclr. Keys are plain integers, so a table never keeps an object alive.
type keyTable[V any] struct {
	keys  []uint64 // 0 marks an empty slot; len is 0 or a power of two
	vals  []V      // vals[i] belongs to keys[i]
	n     int
	shift uint // 64 − log2(len(keys))
}

// minKeySetSlots is the size of a table's first array of keys (512 bytes).
const minKeySetSlots = 64

// insert stores v under k, which must not be 0, unless k is present: it returns the value
// stored under k and whether it was added now.
func (s *keyTable[V]) insert(k uint64, v V) (V, bool) {
	if 2*(s.n+1) > len(s.keys) {
		s.grow()
	}
	mask := uint64(len(s.keys) - 1)
	for i := (k * 0x9e3779b97f4a7c15) >> s.shift; ; i = (i + 1) & mask {
		switch s.keys[i] {
		case 0:
			s.keys[i], s.vals[i] = k, v
			s.n++
			return v, true
		case k:
			return s.vals[i], false
		}
	}
}

// get returns the value stored under k, if any.
func (s *keyTable[V]) get(k uint64) (V, bool) {
	mask := uint64(len(s.keys) - 1)
	for i := (k * 0x9e3779b97f4a7c15) >> s.shift; len(s.keys) > 0; i = (i + 1) & mask {
		switch s.keys[i] {
		case 0:
			var zero V
			return zero, false
		case k:
			return s.vals[i], true
		}
	}
	var zero V
	return zero, false
}

// grow doubles the table and inserts the keys again.
func (s *keyTable[V]) grow() {
	oldKeys, oldVals := s.keys, s.vals
	size := max(minKeySetSlots, 2*len(oldKeys))
	s.keys, s.vals, s.n = make([]uint64, size), make([]V, size), 0
	s.shift = uint(64 - bits.TrailingZeros(uint(size)))
	for i, k := range oldKeys {
		if k != 0 {
			s.insert(k, oldVals[i])
		}
	}
}

// len returns the number of keys.
func (s *keyTable[V]) len() int { return s.n }

// reset empties the table, keeping its arrays.
func (s *keyTable[V]) reset() {
	clear(s.keys)
	s.n = 0
}
