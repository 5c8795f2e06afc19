// Package topk keeps the k best items of a stream, for the example jobs' "top N" output.
package topk

import "slices"

// Push inserts v into top, which is sorted by cmp (best first) and at most k long, and returns
// the updated slice. Items that tie with one already kept go after it.
func Push[T any](top []T, v T, k int, cmp func(a, b T) int) []T {
	i, found := slices.BinarySearchFunc(top, v, cmp)
	for found && i < len(top) && cmp(top[i], v) == 0 {
		i++
	}
	if i >= k {
		return top
	}
	top = slices.Insert(top, i, v)
	return top[:min(len(top), k)]
}
