package tungsten

import (
	"cmp"
	"encoding/binary"
	"math"
)

// PrefixComparator orders 8-byte key prefixes as Spark's PrefixComparators
// (core/src/main/java/org/apache/spark/util/collection/unsafe/sort/PrefixComparators.java) do.
// Every one of them supports radix sort (RadixSortSupport): the order is the prefix's bytes, read
// as an unsigned or a two's complement number, ascending or descending. NullsFirst places records
// inserted with a null prefix before (true) or after the others.
type PrefixComparator struct {
	Descending, Signed, NullsFirst bool
}

// Spark's prefix comparators. The string, binary and double ones order unsigned prefixes (see
// StringPrefix, BytesPrefix and DoublePrefix); the long ones order signed prefixes.
var (
	PrefixBinary               = PrefixComparator{NullsFirst: true}
	PrefixBinaryDesc           = PrefixComparator{Descending: true}
	PrefixBinaryNullsLast      = PrefixComparator{}
	PrefixBinaryDescNullsFirst = PrefixComparator{Descending: true, NullsFirst: true}
	PrefixLong                 = PrefixComparator{Signed: true, NullsFirst: true}
	PrefixLongDesc             = PrefixComparator{Descending: true, Signed: true}
	PrefixLongNullsLast        = PrefixComparator{Signed: true}
	PrefixLongDescNullsFirst   = PrefixComparator{Descending: true, Signed: true, NullsFirst: true}
)

// Compare orders two prefixes.
func (c PrefixComparator) Compare(a, b int64) int {
	if c.Descending {
		a, b = b, a
	}
	if c.Signed {
		return cmp.Compare(a, b)
	}
	return cmp.Compare(uint64(a), uint64(b))
}

// BytesPrefix is the prefix of a byte string (UTF8String.getPrefix, ByteArray.getPrefix): its
// first 8 bytes big-endian, zero-padded, to be ordered unsigned. Byte strings that differ in their
// first 8 bytes order as their prefixes do.
func BytesPrefix(b []byte) int64 {
	if len(b) >= 8 {
		return int64(binary.BigEndian.Uint64(b))
	}
	var p uint64
	for i, c := range b {
		p |= uint64(c) << (56 - 8*i)
	}
	return int64(p)
}

// StringPrefix is BytesPrefix of a string's bytes.
func StringPrefix(s string) int64 {
	if len(s) >= 8 {
		return int64(binary.BigEndian.Uint64([]byte(s[:8])))
	}
	var p uint64
	for i := range len(s) {
		p |= uint64(s[i]) << (56 - 8*i)
	}
	return int64(p)
}

// DoublePrefix is DoublePrefixComparator.computePrefix: the bits of f (-0.0 as 0.0, every NaN as
// the canonical NaN) transformed so that the unsigned order of prefixes is the numeric order,
// NaN last.
func DoublePrefix(f float64) int64 {
	if f == 0 {
		f = 0
	}
	if math.IsNaN(f) {
		f = math.NaN()
	}
	bits := math.Float64bits(f)
	mask := -(bits >> 63) | 0x8000000000000000
	return int64(bits ^ mask)
}

// prefixAt is BytesPrefix(b[start:end]) for start <= end <= len(b): when b holds 8 bytes from
// start (a key followed by its value, in a page or a spill record), one load with the bytes past
// end cleared rather than a byte at a time.
func prefixAt(b []byte, start, end int) int64 {
	if len(b)-start < 8 {
		return BytesPrefix(b[start:end])
	}
	v := binary.BigEndian.Uint64(b[start:])
	if n := end - start; n < 8 {
		v &^= math.MaxUint64 >> (8 * n)
	}
	return int64(v)
}
