// Package stream draws long random sequences that are deterministic by seed and can be cut at
// any position: element i depends only on the seed and i, so a sequence split over any number of
// map tasks is the same sequence as the whole. The generators of Spillway's example jobs
// (graphgen, wordcount) build on it.
package stream

import (
	"fmt"
	"iter"
	"math/rand/v2"
)

// ChunkLen is the number of consecutive elements drawn from one random stream: element i comes
// from the stream of chunk i/ChunkLen, seeded with (seed, chunk).
const ChunkLen = 4096

// Range returns elements [from, to) of the sequence whose chunks draw with the function start
// returns for each chunk's random source. It panics unless 0 <= from <= to.
func Range[T any](seed uint64, from, to int64, start func(r *rand.Rand) func() T) iter.Seq[T] {
	if from < 0 || from > to {
		panic(fmt.Sprintf("stream: range [%d, %d)", from, to))
	}
	return func(yield func(T) bool) {
		for i := from; i < to; {
			chunk := i / ChunkLen
			draw := start(rand.New(rand.NewPCG(seed, uint64(chunk))))
			end := min(to, (chunk+1)*ChunkLen)
			for j := chunk * ChunkLen; j < end; j++ {
				v := draw()
				if j >= i && !yield(v) {
					return // elements before i are drawn only to keep the stream in step
				}
			}
			i = end
		}
	}
}

// SplitRange returns the half-open range [from, to) of split i when total elements are divided
// into n consecutive splits whose sizes differ by at most one. It panics unless 0 <= i < n.
func SplitRange(total int64, i, n int) (from, to int64) {
	if n <= 0 || i < 0 || i >= n {
		panic(fmt.Sprintf("stream: split %d of %d", i, n))
	}
	return total * int64(i) / int64(n), total * int64(i+1) / int64(n)
}
