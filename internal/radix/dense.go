package radix

import "math/bits"

// SortKeyPrefixDense sorts the (pointer, prefix) pairs of a by their unsigned prefix, in place, and
// leaves in place of each prefix its dense form: the bits in which the prefixes differ, gathered
// (compactPrefixes), so the prefixes are lost. Equal prefixes have equal dense forms, and the dense forms order as the
// prefixes do. Prefixes of keys such as "user-100000123456" differ in a few bits of each byte
// (a decimal digit is 10 of the 256 values a byte can take): sorted by bytes, each level of a
// radix sort splits them ten ways; gathered, their 24 bits split 2048 ways, then 256.
// Fewer than 4096 pairs are sorted 8 bits a level as they are (building the tables would cost
// more than it saves), their prefixes unchanged.
func SortKeyPrefixDense(a []int64) {
	if len(a)/2 < 1<<12 {
		flagSortPairs(a, 64)
		return
	}
	if width := compactPrefixes(a); width > 0 {
		sortDense(a, width)
	}
}

// compactPrefixes replaces every prefix of the pairs of a by its dense form: the bits in which
// some prefixes differ from the first, gathered in order (a parallel bit extract, by tables of
// each byte's). It returns how many bits they are: the dense forms are below 1<<width.
func compactPrefixes(a []int64) (width int) {
	if len(a) == 0 {
		return 0
	}
	var diff uint64
	first := uint64(a[1])
	for i := 3; i < len(a); i += 2 {
		diff |= uint64(a[i]) ^ first
	}
	width = bits.OnesCount64(diff)
	if width == 64 || width == 0 {
		return width // every bit differs: the prefixes are their own dense form
	}
	// For each byte in which prefixes differ, most significant first: its shift and, for each of
	// its values, the bits of it that differ, gathered.
	var (
		shifts [8]uint
		widths [8]uint
		tables [8][256]uint8
		nbytes int
	)
	for b := 7; b >= 0; b-- {
		mask := uint8(diff >> (8 * b))
		if mask == 0 {
			continue
		}
		shifts[nbytes], widths[nbytes] = uint(8*b), uint(bits.OnesCount8(mask))
		for v := range 256 {
			tables[nbytes][v] = extract8(uint8(v), mask)
		}
		nbytes++
	}
	for i := 1; i < len(a); i += 2 {
		p := uint64(a[i])
		var d uint64
		for j := range nbytes {
			d = d<<widths[j] | uint64(tables[j][uint8(p>>shifts[j])])
		}
		a[i] = int64(d)
	}
	return width
}

// extract8 gathers the bits of v that mask selects into the low bits, in order.
func extract8(v, mask uint8) uint8 {
	var out, bit uint8
	for i := range 8 {
		if mask&(1<<i) != 0 {
			if v&(1<<i) != 0 {
				out |= 1 << bit
			}
			bit++
		}
	}
	return out
}

// denseTopBits is the width of sortDense's first digit: 2048 buckets.
const denseTopBits = 11

// sortDense sorts the pairs of a by their unsigned keys, each below 1<<width, in place: a
// most-significant-digit-first radix sort that permutes the pairs within a (an American flag
// sort), whose first digit is denseTopBits wide and the later ones 8, down to insertion sorts of
// fewer than 32 pairs.
func sortDense(a []int64, width int) {
	n := len(a) / 2
	if n < 1<<12 || width <= 8 {
		flagSortPairs(a, width)
		return
	}
	d := min(denseTopBits, width)
	shift := uint(width - d)
	var next, end [1 << denseTopBits]int
	for i := 1; i < len(a); i += 2 {
		end[uint64(a[i])>>shift]++
	}
	sum := 0
	for k, c := range end[:1<<d] {
		next[k] = sum
		sum += c
		end[k] = sum
	}
	permute(a, shift, 1<<d-1, next[:1<<d], end[:1<<d])
	if shift == 0 {
		return
	}
	s := 0
	for _, e := range end[:1<<d] {
		if e-s > 1 {
			flagSortPairs(a[2*s:2*e], int(shift))
		}
		s = e
	}
}

// flagSortPairs sorts the pairs of a by their unsigned keys, each below 1<<width, 8 bits a
// level.
func flagSortPairs(a []int64, width int) {
	n := len(a) / 2
	if n < 32 {
		insertionSort(a)
		return
	}
	for width > 0 {
		d := min(8, width)
		shift := uint(width - d)
		mask := uint64(1)<<d - 1
		var count [256]int
		for i := 1; i < len(a); i += 2 {
			count[(uint64(a[i])>>shift)&mask]++
		}
		if count[(uint64(a[1])>>shift)&mask] == n { // one bucket: the digit is the same in all
			width -= d
			continue
		}
		var next, end [256]int
		sum := 0
		for k, c := range count[:1<<d] {
			next[k] = sum
			sum += c
			end[k] = sum
		}
		permute(a, shift, mask, next[:1<<d], end[:1<<d])
		if shift > 0 {
			s := 0
			for k := range 1 << d {
				if end[k]-s > 1 {
					flagSortPairs(a[2*s:2*end[k]], int(shift))
				}
				s = end[k]
			}
		}
		return
	}
}
