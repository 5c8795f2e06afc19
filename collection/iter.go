package collection

import (
	"iter"

	"github.com/spillway/spillway/storage"
)

// All adapts it to a range-over-func sequence of its remaining elements, each with a nil error,
// then one last pair (zero value, error) if the iteration or Close failed: storage.All. The
// sequence closes it when the loop ends, also when the body breaks.
//
//	for p, err := range collection.All(it) {
//		if err != nil {
//			return err
//		}
//		use(p.Key, p.Value)
//	}
func All[T any](it Iterator[T]) iter.Seq2[T, error] { return storage.All(it) }

// FromSeq adapts a range-over-func sequence to an Iterator: storage.FromSeq. Close stops the
// sequence early.
func FromSeq[T any](seq iter.Seq[T]) Iterator[T] { return storage.FromSeq(seq) }

// FromSeq2 adapts a sequence of elements and errors to an Iterator that stops at the first
// error: storage.FromSeq2.
func FromSeq2[T any](seq iter.Seq2[T, error]) Iterator[T] { return storage.FromSeq2(seq) }

// PairsOf adapts a sequence of keys and values (maps.All of a Go map, say) to an Iterator of
// Pairs, the input of InsertAll. Close stops the sequence early.
func PairsOf[K, V any](seq iter.Seq2[K, V]) Iterator[Pair[K, V]] {
	return storage.FromSeq(func(yield func(Pair[K, V]) bool) {
		for k, v := range seq {
			if !yield(Pair[K, V]{Key: k, Value: v}) {
				return
			}
		}
	})
}
