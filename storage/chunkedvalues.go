package storage

import (
	"io"
	"iter"
	"math"
	"reflect"
	"unsafe"

	"go.uber.org/zap"
)

const (
	// valueChunkBytes bounds the element slots of one chunk of a ChunkedValues: 64 KiB.
	valueChunkBytes = 64 << 10
	// firstValueChunk is the number of elements of a ChunkedValues' first chunk, the initial
	// capacity of Spark's SizeTrackingVector.
	firstValueChunk = 64
	// sliceHeaderBytes is the size of a slice header, the element of a ChunkedValues' index.
	sliceHeaderBytes = int64(unsafe.Sizeof([]byte(nil)))
)

// ChunkedValues holds the values of a deserialized block in memory: the counterpart of
// ChunkedBuffer for values (Spark keeps them in one array, built by SizeTrackingVector and copied
// by its toArray). The values are kept in chunks that never move: the first holds 64 values,
// each next one twice as many as the one before, up to 64 KiB of element slots. A full chunk is
// followed by a new one, so adding values never copies them and never needs an old and a new
// array at once, and only the last chunk has free slots: the slots exceed what the values need
// by less than one chunk. The chunks are listed in a small index (a slice header per chunk)
// that is the only thing ever copied as the values grow. When the block is stored, a last chunk
// less than half full, and the index if it is, are copied into one of their exact length (when
// the memory for the copy can be had), so a small block keeps no free slots.
//
// A ChunkedValues stored in a MemoryStore is read-only and may be read concurrently; read it
// while holding the block's read lock.
type ChunkedValues[T any] struct {
	chunks [][]T
	n      int
	// slots bounds the bytes the chunks and the index take in the heap (each rounded up as the
	// allocator may round it), so growth can be accounted before it is allocated.
	slots int64
}

// Len returns the number of values.
func (v *ChunkedValues[T]) Len() int { return v.n }

// All returns the values in order.
func (v *ChunkedValues[T]) All() iter.Seq[T] {
	return func(yield func(T) bool) {
		for _, c := range v.chunks {
			for _, x := range c {
				if !yield(x) {
					return
				}
			}
		}
	}
}

// Iterator returns an Iterator over the values in order. It never modifies v.
func (v *ChunkedValues[T]) Iterator() Iterator[T] {
	return &chunkIterator[T]{chunks: v.chunks, i: -1}
}

// elemBytes is the size of one element slot.
func elemBytes[T any]() int64 { return int64(reflect.TypeFor[T]().Size()) }

// nextChunk returns the number of elements of the chunk that follows the current last one.
func (v *ChunkedValues[T]) nextChunk() int {
	most := math.MaxInt32 // zero-size elements take no memory
	if size := elemBytes[T](); size > 0 {
		most = int(max(1, valueChunkBytes/size))
	}
	if len(v.chunks) == 0 {
		return min(firstValueChunk, most)
	}
	return min(2*cap(v.chunks[len(v.chunks)-1]), most)
}

// nextIndex returns the capacity of the index that replaces a full one.
func (v *ChunkedValues[T]) nextIndex() int { return max(4, 2*cap(v.chunks)) }

// growth returns the bytes the next append allocates beside what v holds: a new chunk when the
// last one is full, and a new index when that one is full too (while the old one, held until
// it is copied, is already counted in slots).
func (v *ChunkedValues[T]) growth() int64 {
	if last := len(v.chunks) - 1; last >= 0 && len(v.chunks[last]) < cap(v.chunks[last]) {
		return 0
	}
	g := allocBound(int64(v.nextChunk()) * elemBytes[T]())
	if len(v.chunks) == cap(v.chunks) {
		g += allocBound(int64(v.nextIndex()) * sliceHeaderBytes)
	}
	return g
}

// append adds x, first allocating the chunk (and index) growth announced.
func (v *ChunkedValues[T]) append(x T) {
	last := len(v.chunks) - 1
	if last < 0 || len(v.chunks[last]) == cap(v.chunks[last]) {
		if len(v.chunks) == cap(v.chunks) {
			grown := make([][]T, len(v.chunks), v.nextIndex())
			copy(grown, v.chunks)
			v.slots += allocBound(int64(cap(grown))*sliceHeaderBytes) - allocBound(int64(cap(v.chunks))*sliceHeaderBytes)
			v.chunks = grown
		}
		n := v.nextChunk()
		v.chunks = append(v.chunks, make([]T, 0, n))
		v.slots += allocBound(int64(n) * elemBytes[T]())
		last++
	}
	v.chunks[last] = append(v.chunks[last], x)
	v.n++
}

// trimBytes returns the bytes trim allocates (0: it has nothing to trim).
func (v *ChunkedValues[T]) trimBytes() int64 {
	var b int64
	if last := len(v.chunks) - 1; last >= 0 && len(v.chunks[last]) < cap(v.chunks[last])/2 {
		b += allocBound(int64(len(v.chunks[last])) * elemBytes[T]())
	}
	if len(v.chunks) < cap(v.chunks)/2 {
		b += allocBound(int64(len(v.chunks)) * sliceHeaderBytes)
	}
	return b
}

// trim copies the last chunk, and then the index, into one of exactly their length when they are
// less than half full, so a small block keeps no free slots (Spark's toArray copies all the values
// into an array of their number; ChunkedWriter.Finish copies the last chunk of bytes the same
// way). Only the small last chunk and the index are copied, never the other values.
func (v *ChunkedValues[T]) trim() {
	if last := len(v.chunks) - 1; last >= 0 && len(v.chunks[last]) < cap(v.chunks[last])/2 {
		c := v.chunks[last]
		v.slots += allocBound(int64(len(c))*elemBytes[T]()) - allocBound(int64(cap(c))*elemBytes[T]())
		v.chunks[last] = make([]T, len(c))
		copy(v.chunks[last], c)
		clear(c)
	}
	if len(v.chunks) < cap(v.chunks)/2 {
		v.slots += allocBound(int64(len(v.chunks))*sliceHeaderBytes) - allocBound(int64(cap(v.chunks))*sliceHeaderBytes)
		index := make([][]T, len(v.chunks))
		copy(index, v.chunks)
		v.chunks = index
	}
}

// allocBound returns at least the bytes the Go allocator takes for an object of size bytes: a
// small object's size class never exceeds the next power of two, and a large one (above 32 KiB)
// takes whole 8 KiB pages.
func allocBound(size int64) int64 {
	switch {
	case size <= 0:
		return 0
	case size <= 32<<10:
		b := int64(8)
		for b < size {
			b <<= 1
		}
		return b
	default:
		return (size + 8<<10 - 1) &^ (8<<10 - 1)
	}
}

// closeValues closes the values that implement io.Closer (Spark closes AutoCloseable values of a
// removed DeserializedMemoryEntry), logging failures.
func (v *ChunkedValues[T]) closeValues(log *zap.Logger, id BlockID) {
	for x := range v.All() {
		if c, ok := any(x).(io.Closer); ok {
			if err := c.Close(); err != nil {
				log.Warn("Error closing a value of a removed block", zap.Stringer("block", id), zap.Error(err))
			}
		}
	}
}

// draining returns an Iterator that hands out v's values and takes them out of v as it goes:
// each slot is cleared when its value is handed out and each chunk dropped once passed, so the
// values already consumed are not kept reachable. Close drops what is left. v is empty
// afterwards.
func (v *ChunkedValues[T]) draining() Iterator[T] {
	it := &chunkIterator[T]{chunks: v.chunks, i: -1, drain: true}
	v.chunks, v.n, v.slots = nil, 0, 0
	return it
}

// chunkIterator iterates over chunks of values.
type chunkIterator[T any] struct {
	chunks [][]T // chunks[0] is the current chunk
	i      int   // the current value's position in chunks[0]
	cur    T
	drain  bool // clear each slot once read and drop each chunk once passed
}

func (it *chunkIterator[T]) Next() bool {
	var zero T
	it.cur = zero
	for len(it.chunks) > 0 {
		c := it.chunks[0]
		if it.i+1 < len(c) {
			it.i++
			it.cur = c[it.i]
			if it.drain {
				c[it.i] = zero
			}
			return true
		}
		if it.drain {
			it.chunks[0] = nil
		}
		it.chunks, it.i = it.chunks[1:], -1
	}
	it.chunks = nil
	return false
}

func (it *chunkIterator[T]) Value() T { return it.cur }

func (it *chunkIterator[T]) Err() error { return nil }

func (it *chunkIterator[T]) Close() error {
	if it.drain {
		clear(it.chunks) // the index is the iterator's own: drop the chunks left
	}
	var zero T
	it.chunks, it.cur = nil, zero
	return nil
}
