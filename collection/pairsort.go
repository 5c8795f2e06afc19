package collection

import (
	"math/bits"
)

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
