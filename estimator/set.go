package estimator

import "math/bits"

// keySet is a set of non-zero 64-bit keys (object addresses, sample positions plus one): open
// addressing with linear probing and Fibonacci hashing, at most half full. It replaces a
// map[uintptr]struct{} on the walker's hot path (one visit per pointer followed, one per
// sampled position): an insert is a multiply and usually one probe, and clearing is one memclr.
// Keys are plain integers, so a set never keeps an object alive.
type keySet struct {
	slots []uint64 // 0 marks an empty slot; len is 0 or a power of two
	n     int
	shift uint // 64 − log2(len(slots))
}

// minKeySetSlots is the size of a set's first table (512 bytes).
const minKeySetSlots = 64

// add inserts k, which must not be 0, and reports whether it was not in the set.
func (s *keySet) add(k uint64) bool {
	if 2*(s.n+1) > len(s.slots) {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	for i := (k * 0x9e3779b97f4a7c15) >> s.shift; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			s.slots[i] = k
			s.n++
			return true
		case k:
			return false
		}
	}
}

// grow doubles the table and inserts the keys again.
func (s *keySet) grow() {
	old := s.slots
	size := max(minKeySetSlots, 2*len(old))
	s.slots, s.n, s.shift = make([]uint64, size), 0, uint(64-bits.TrailingZeros(uint(size)))
	for _, k := range old {
		if k != 0 {
			s.add(k)
		}
	}
}

// len returns the number of keys.
func (s *keySet) len() int { return s.n }

// reset empties the set, keeping its table.
func (s *keySet) reset() {
	clear(s.slots)
	s.n = 0
}
