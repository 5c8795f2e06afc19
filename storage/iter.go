package storage

import (
	"errors"
	"iter"
)

// All adapts it to a range-over-func sequence of its remaining elements, each with a nil error.
// If the iteration or it's Close fails, one last pair (zero value, error) follows, so the loop
// sees every error:
//
//	for v, err := range storage.All(it) {
//		if err != nil {
//			return err
//		}
//		use(v)
//	}
//
// The sequence closes it when the loop ends, also when the body breaks (Close's error is then
// not reported) or panics; it can be ranged over once. TypedReader.All and RecordReader.All have
// the same shape. A Go convenience with no Spark counterpart.
func All[T any](it Iterator[T]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		done := false
		defer func() {
			if !done {
				_ = it.Close() // the body broke or panicked: nothing can be reported
			}
		}()
		for it.Next() {
			if !yield(it.Value(), nil) {
				return
			}
		}
		done = true
		if err := errors.Join(it.Err(), it.Close()); err != nil {
			var zero T
			yield(zero, err)
		}
	}
}

// FromSeq adapts a range-over-func sequence to an Iterator (Next pulls the next element with
// iter.Pull). Close stops the sequence early; a reader that does not read to the end must call
// it, as with every Iterator. Nothing runs until the first Next. A Go convenience with no Spark
// counterpart.
func FromSeq[T any](seq iter.Seq[T]) Iterator[T] {
	return FromSeq2(func(yield func(T, error) bool) {
		for v := range seq {
			if !yield(v, nil) {
				return
			}
		}
	})
}

// FromSeq2 adapts a sequence of elements and errors (the shape All and TypedReader.All return)
// to an Iterator: an element with a nil error is the next element; the first non-nil error ends
// the iteration and is Err's result. Close stops the sequence early, as with FromSeq.
func FromSeq2[T any](seq iter.Seq2[T, error]) Iterator[T] {
	var (
		next func() (T, error, bool)
		stop func()
	)
	return FuncIterator(func() (T, bool, error) {
		if next == nil {
			next, stop = iter.Pull2(seq)
		}
		v, err, ok := next()
		if !ok || err != nil {
			stop() // let the sequence finish now rather than at Close
			var zero T
			return zero, false, err
		}
		return v, true, nil
	}, func() error {
		if stop != nil {
			stop()
		}
		return nil
	})
}
