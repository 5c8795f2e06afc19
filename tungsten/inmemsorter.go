package tungsten

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/spillway/spillway/internal/radix"
)

// RecordComparator orders two records whose prefixes are equal (Spark's RecordComparator). It may
// return 0 when the prefix holds the whole key.
type RecordComparator func(a, b []byte) int

// inMemorySorter is Spark's UnsafeInMemorySorter
// (core/src/main/java/org/apache/spark/util/collection/unsafe/sort/UnsafeInMemorySorter.java):
// an array of (record address, key prefix) pairs; [2i] is the address of a [uao length][bytes]
// record, [2i+1] its prefix. The tail of the array is the sort's scratch space: with radix sort
// half of it is usable, else two thirds.
type inMemorySorter struct {
	owner       *base
	array       *longArray // nil after freeMemory
	pos         int        // longs used
	nullBoundry int        // radix with nulls: [0, nullBoundry) hold the null-prefix pairs
	initialSize int        // initial records
	prefix      PrefixComparator
	records     RecordComparator // nil: no sort, insertion order
	radix       bool
	// inline: the pairs are (value, key word) of a Sorter of Int64Key keys and values, sorted by
	// key word in the whole array (see inlineSort).
	inline bool
	usable int // usableCapacity, in longs
}

func newInMemorySorter(owner *base, array *longArray, initialSize int, prefix PrefixComparator, records RecordComparator, canUseRadix bool) *inMemorySorter {
	s := &inMemorySorter{owner: owner, initialSize: initialSize, prefix: prefix, records: records,
		radix: records != nil && canUseRadix}
	s.setArray(array)
	return s
}

func (s *inMemorySorter) setArray(a *longArray) {
	s.array = a
	if a == nil {
		s.usable = 0
		return
	}
	if s.inline {
		s.usable = a.size()
	} else if s.radix {
		s.usable = a.size() / 2
	} else {
		s.usable = int(float64(a.size()) / 1.5)
	}
}

func (s *inMemorySorter) numRecords() int { return s.pos / 2 }

func (s *inMemorySorter) hasSpaceForAnotherRecord() bool { return s.pos+1 < s.usable }

func (s *inMemorySorter) memoryUsage() int64 {
	if s.array == nil {
		return 0
	}
	return s.array.bytes()
}

// freeMemory frees the array without reallocating it (it runs inside spills) and forgets the
// records; pos goes to 0 first so a nested spill finds nothing to do.
func (s *inMemorySorter) freeMemory() {
	s.pos, s.nullBoundry = 0, 0
	if s.array != nil {
		a := s.array
		s.setArray(nil)
		s.owner.freeArray(a)
	}
}

// expandPointerArray moves the pairs to a larger array and frees the old one.
func (s *inMemorySorter) expandPointerArray(a *longArray) {
	if s.array != nil {
		if a.size() < s.array.size() {
			panic(fmt.Sprintf("tungsten: expanding a pointer array of %d longs to %d", s.array.size(), a.size()))
		}
		copy(a.a, s.array.a[:s.pos])
		s.owner.freeArray(s.array)
	}
	s.setArray(a)
}

func (s *inMemorySorter) insertRecord(addr, prefix int64, prefixIsNull bool) {
	if !s.hasSpaceForAnotherRecord() {
		panic("tungsten: there is no space for new record")
	}
	a := s.array.a
	if prefixIsNull && s.radix {
		// The pair at the null boundary moves to the end; nulls keep their insertion order and
		// are never radix sorted.
		a[s.pos], a[s.pos+1] = a[s.nullBoundry], a[s.nullBoundry+1]
		a[s.nullBoundry], a[s.nullBoundry+1] = addr, prefix
		s.nullBoundry += 2
	} else {
		a[s.pos], a[s.pos+1] = addr, prefix
	}
	s.pos += 2
}

// appendInline adds the inline pair (value v, key word w) where the caller counted room for it
// (ExternalSorter.inlineRoom).
func (s *inMemorySorter) appendInline(v, w int64) {
	a := s.array.a[s.pos : s.pos+2]
	a[0], a[1] = v, w
	s.pos += 2
}

// pair is a (record address, prefix) entry viewed in place.
type pair struct{ addr, prefix int64 }

func pairs(a []int64) []pair {
	if len(a) == 0 {
		return nil
	}
	return unsafe.Slice((*pair)(unsafe.Pointer(unsafe.SliceData(a))), len(a)/2)
}

// sortedPairs sorts the pairs and returns them in order as two runs, the second possibly empty:
// with radix sort, the null-prefix pairs (in insertion order) and the sorted others, ordered per
// NullsFirst. Without a record comparator the pairs stay in insertion order.
func (s *inMemorySorter) sortedPairs() (first, second []pair) {
	if s.pos == 0 {
		return nil, nil
	}
	a := s.array.a
	if s.records == nil {
		return pairs(a[:s.pos]), nil
	}
	if s.inline {
		return inlineSort(a, s.pos/2), nil
	}
	if s.radix {
		n := (s.pos - s.nullBoundry) / 2
		start := radix.SortKeyPrefixArray(a, s.nullBoundry, n, 0, 7, s.prefix.Descending, s.prefix.Signed)
		nonNull, nulls := pairs(a[start:start+2*n]), pairs(a[:s.nullBoundry])
		if s.prefix.NullsFirst {
			return nulls, nonNull
		}
		return nonNull, nulls
	}
	p := pairs(a[:s.pos])
	owner, rc, pc := s.owner, s.records, s.prefix
	slices.SortFunc(p, func(x, y pair) int {
		if c := pc.Compare(x.prefix, y.prefix); c != 0 {
			return c
		}
		return rc(owner.record(x.addr), owner.record(y.addr))
	})
	return p, nil
}
