// Package radix is Spark's RadixSort
// (core/src/main/java/org/apache/spark/util/collection/unsafe/sort/RadixSort.java): a stable
// least-significant-digit radix sort of 64-bit words, one byte per pass over 256 buckets,
// ping-ponging between the two halves of one array.
//
// A pre-pass ORs and ANDs every key; a byte whose bits are the same in all keys needs no pass, so
// keys that differ in few bytes (small integers, partition ids) sort in few passes. Both
// directions are stable: records with equal keys keep their input order.
package radix

import (
	"fmt"
	"math/bits"
)

// Sort sorts the n words array[0:n) by their bytes startByte..endByte (0 is the least significant
// byte, 7 the most), using array[n:2n) as scratch. It returns where the sorted words start: 0 or
// n. desc sorts in descending order; signed treats byte endByte as the sign byte of a two's
// complement number (its buckets 128..255 sort before 0..127). Bytes outside the range are ignored
// by the order and kept with their word.
func Sort(array []int64, n, startByte, endByte int, desc, signed bool) int {
	checkRange(startByte, endByte)
	if n < 0 || 2*n > len(array) {
		panic(fmt.Sprintf("radix: Sort of %d words needs an array of at least %d words, got %d", n, 2*n, len(array)))
	}
	counts := countBytes(array[:n], 1, startByte, endByte)
	in, out := 0, n
	for b := startByte; b <= endByte; b++ {
		if counts[b] == nil {
			continue
		}
		sortAtByte(array[in:in+n], array[out:out+n], counts[b], b, desc, signed && b == endByte)
		in, out = out, in
	}
	return in
}

// SortKeyPrefixArray sorts n 16-byte records (pointer, prefix) held as word pairs in
// array[start:start+2n) by their prefix bytes startByte..endByte, using array[start+2n:start+4n) as
// scratch, and returns where the sorted records start: start or start+2n. desc and signed are as
// for Sort. The pointers travel with their prefixes and never influence the order.
func SortKeyPrefixArray(array []int64, start, n, startByte, endByte int, desc, signed bool) int {
	checkRange(startByte, endByte)
	if n < 0 || start < 0 || start+4*n > len(array) {
		panic(fmt.Sprintf("radix: SortKeyPrefixArray of %d records at %d needs an array of at least %d words, got %d",
			n, start, start+4*n, len(array)))
	}
	if n == 0 {
		return start
	}
	counts := countBytes(array[start+1:start+2*n], 2, startByte, endByte)
	in, out := start, start+2*n
	for b := startByte; b <= endByte; b++ {
		if counts[b] == nil {
			continue
		}
		sortPairsAtByte(array[in:in+2*n], array[out:out+2*n], counts[b], b, desc, signed && b == endByte)
		in, out = out, in
	}
	return in
}

func checkRange(startByte, endByte int) {
	if startByte < 0 || startByte > endByte || endByte > 7 {
		panic(fmt.Sprintf("radix: byte range %d..%d (must satisfy 0 <= start <= end <= 7)", startByte, endByte))
	}
}

// countBytes returns, for each byte in startByte..endByte that is not the same in every key, a
// histogram of that byte over the keys keys[0], keys[stride], ...; nil for the other bytes.
func countBytes(keys []int64, stride, startByte, endByte int) (counts [8]*[256]int) {
	var or, and uint64 = 0, ^uint64(0)
	for i := 0; i < len(keys); i += stride {
		v := uint64(keys[i])
		or |= v
		and &= v
	}
	changed := or ^ and
	some := false
	var storage [8][256]int
	for b := startByte; b <= endByte; b++ {
		if (changed>>(8*b))&0xff != 0 {
			counts[b] = &storage[b]
			some = true
		}
	}
	if !some {
		return counts
	}
	for i := 0; i < len(keys); i += stride {
		v := uint64(keys[i])
		for b := startByte; b <= endByte; b++ {
			if c := counts[b]; c != nil {
				c[(v>>(8*b))&0xff]++
			}
		}
	}
	return counts
}

// offsets turns a histogram into the first output slot of every bucket, in records. Signed
// visits buckets 128..255 before 0..127; descending fills from the end so that higher buckets
// come first, each bucket still in input order.
func offsets(counts *[256]int, n int, desc, signed bool) (off [256]int) {
	first := 0
	if signed {
		first = 128
	}
	pos := 0
	if desc {
		pos = n
	}
	for i := first; i < first+256; i++ {
		b := i & 0xff
		if desc {
			pos -= counts[b]
			off[b] = pos
		} else {
			off[b] = pos
			pos += counts[b]
		}
	}
	return off
}

func sortAtByte(in, out []int64, counts *[256]int, b int, desc, signed bool) {
	off := offsets(counts, len(in), desc, signed)
	shift := uint(8 * b)
	for _, v := range in {
		k := (uint64(v) >> shift) & 0xff
		out[off[k]] = v
		off[k]++
	}
}

func sortPairsAtByte(in, out []int64, counts *[256]int, b int, desc, signed bool) {
	off := offsets(counts, len(in)/2, desc, signed)
	for i := range off {
		off[i] *= 2
	}
	shift := uint(8 * b)
	for i := 0; i+1 < len(in); i += 2 {
		p, v := in[i], in[i+1]
		k := (uint64(v) >> shift) & 0xff
		j := off[k]
		out[j], out[j+1] = p, v
		off[k] = j + 2
	}
}

// SortKeyPrefixInPlace sorts the n 16-byte records (pointer, prefix) of array[0:2n) by their
// unsigned prefix, ascending, with no scratch space: a most-significant-byte-first radix sort
// that permutes records within the array (an "American flag sort"), for when there is no room for
// SortKeyPrefixArray's second half. Unlike SortKeyPrefixArray it is not stable.
func SortKeyPrefixInPlace(array []int64, n int) {
	if n < 0 || 2*n > len(array) {
		panic(fmt.Sprintf("radix: SortKeyPrefixInPlace of %d records needs an array of at least %d words, got %d", n, 2*n, len(array)))
	}
	SortKeyPrefixWithin(array[:2*n], n)
}

// SortKeyPrefixWithin is SortKeyPrefixInPlace using whatever array holds past the records,
// array[2n:), as scratch: the most significant bytes are sorted in place until a bucket of
// records fits the scratch, and each such bucket is then sorted by least-significant-byte passes
// through it (sequential passes, several times faster per byte than the in-place permutation).
// With at least 2n words of scratch it is one in-place pass short of SortKeyPrefixArray. Not
// stable.
func SortKeyPrefixWithin(array []int64, n int) {
	if n < 0 || 2*n > len(array) {
		panic(fmt.Sprintf("radix: SortKeyPrefixWithin of %d records needs an array of at least %d words, got %d", n, 2*n, len(array)))
	}
	a, spare := array[:2*n], array[2*n:]
	if n < 2 {
		return
	}
	changed := varyingBits(a)
	if changed == 0 {
		return
	}
	hi, lo := (63-bits.LeadingZeros64(changed))/8, bits.TrailingZeros64(changed)/8
	hybridSort(a, spare, hi, lo)
}

// varyingBits is the bits in which the prefixes of the records of a are not all the same.
func varyingBits(a []int64) uint64 {
	var or, and uint64 = 0, ^uint64(0)
	for i := 1; i < len(a); i += 2 {
		v := uint64(a[i])
		or |= v
		and &= v
	}
	return or ^ and
}

// minLSDRecords is the smallest bucket sorted through the scratch: below it, a pass's 256-bucket
// bookkeeping costs more than the in-place permutation of a bucket that fits the cache.
const minLSDRecords = 1 << 12

// hybridSort sorts the records of a by prefix bytes b down to lo (the bytes below lo are the same
// in every record): through spare when a fits it, else by one in-place pass on byte b and a
// recursion into each bucket.
func hybridSort(a, spare []int64, b, lo int) {
	n := len(a) / 2
	if n < 32 {
		insertionSort(a)
		return
	}
	if n >= minLSDRecords && len(a) <= len(spare) {
		out := spare[:len(a)]
		if lsdPairs(a, out, lo, b) {
			copy(a, out)
		}
		return
	}
	shift := uint(8 * b)
	var count [256]int
	for i := 1; i < len(a); i += 2 {
		count[(uint64(a[i])>>shift)&0xff]++
	}
	if count[(uint64(a[1])>>shift)&0xff] == n { // one bucket: this byte is the same in all
		if b > lo {
			hybridSort(a, spare, b-1, lo)
		}
		return
	}
	var next, end [256]int
	sum := 0
	for k, c := range count {
		next[k] = sum
		sum += c
		end[k] = sum
	}
	permute(a, shift, 0xff, next[:], end[:])
	if b == lo {
		return
	}
	start := 0
	for k := range 256 {
		if count[k] > 1 {
			hybridSort(a[2*start:2*end[k]], spare, b-1, lo)
		}
		start = end[k]
	}
}

// permute moves the records of a to their buckets, by the digit (prefix >> shift) & mask, in place
// (a pass of an American flag sort): next[k] and end[k] are where bucket k starts and ends.
func permute(a []int64, shift uint, mask uint64, next, end []int) {
	for k := range end {
		for next[k] < end[k] {
			i := next[k]
			kk := int((uint64(a[2*i+1]) >> shift) & mask)
			if kk == k {
				next[k]++
				continue
			}
			j := next[kk]
			next[kk]++
			a[2*i], a[2*j] = a[2*j], a[2*i]
			a[2*i+1], a[2*j+1] = a[2*j+1], a[2*i+1]
		}
	}
}

// insertionSort sorts a few records by unsigned prefix.
func insertionSort(a []int64) {
	for i := 1; i < len(a)/2; i++ {
		p, v := a[2*i], a[2*i+1]
		j := i
		for ; j > 0 && uint64(a[2*j-1]) > uint64(v); j-- {
			a[2*j], a[2*j+1] = a[2*j-2], a[2*j-1]
		}
		a[2*j], a[2*j+1] = p, v
	}
}

// lsdPairs sorts the records of in by unsigned prefix bytes lo..hi, ascending, ping-ponging
// between in and out (of the same length), and reports whether the result is in out.
func lsdPairs(in, out []int64, lo, hi int) bool {
	counts := countBytes(in[1:], 2, lo, hi)
	inOut := false
	for b := lo; b <= hi; b++ {
		if counts[b] == nil {
			continue
		}
		sortPairsAtByte(in, out, counts[b], b, false, false)
		in, out = out, in
		inOut = !inOut
	}
	return inOut
}
