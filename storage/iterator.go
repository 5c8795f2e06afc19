package storage

import "errors"

// Iterator is the pull iterator used across the library: Spark's Scala Iterator (hasNext/next)
// made explicit about errors and resources, because an iterator may be reading a block file,
// holding unroll memory or a block's read lock, and may be abandoned early.
//
// The protocol, which every implementation follows:
//
//   - Next advances to the next element and reports whether there is one. It returns false at
//     the end, after an error, and after Close, and keeps returning false from then on.
//   - Value returns the element Next advanced to. It may be called several times and is only
//     meaningful after Next returned true. The element is owned by the caller: it stays valid
//     after later calls to Next and Close.
//   - Err returns the error that stopped the iteration, or nil after a normal end or Close. Check
//     it after Next returns false.
//   - Close releases what the iterator holds (memory, files, locks). It may be called at any
//     time, more than once, and from a deferred call; later calls return nil. A reader that stops
//     early must call Close.
//
// Iterators are not safe for concurrent use.
//
// The usual loop:
//
//	defer it.Close()
//	for it.Next() {
//		use(it.Value())
//	}
//	if err := it.Err(); err != nil { ... }
type Iterator[T any] interface {
	Next() bool
	Value() T
	Err() error
	Close() error
}

// SliceIterator returns an Iterator over the elements of s, in order. It never modifies s; it
// drops its reference to s when it ends or is closed.
func SliceIterator[T any](s []T) Iterator[T] { return &sliceIterator[T]{s: s, i: -1} }

type sliceIterator[T any] struct {
	s []T
	i int
}

func (it *sliceIterator[T]) Next() bool {
	if it.i+1 >= len(it.s) {
		it.s, it.i = nil, 0
		return false
	}
	it.i++
	return true
}

func (it *sliceIterator[T]) Value() T {
	if it.i < 0 || it.i >= len(it.s) {
		var zero T
		return zero
	}
	return it.s[it.i]
}

func (it *sliceIterator[T]) Err() error { return nil }

func (it *sliceIterator[T]) Close() error {
	it.s, it.i = nil, 0
	return nil
}

// FuncIterator returns an Iterator driven by next, which returns the next element and true, or
// false at the end (with a non-nil error if the iteration failed). close, if not nil, is called
// once, by the first Close (also after the end); its error is Close's result. next is not called
// again after it returned false or after Close.
func FuncIterator[T any](next func() (T, bool, error), close func() error) Iterator[T] {
	return &funcIterator[T]{next: next, close: close}
}

type funcIterator[T any] struct {
	next  func() (T, bool, error)
	close func() error
	cur   T
	err   error
	done  bool
}

func (it *funcIterator[T]) Next() bool {
	if it.done {
		return false
	}
	v, ok, err := it.next()
	if !ok {
		var zero T
		it.cur, it.err, it.done = zero, err, true
		return false
	}
	it.cur = v
	return true
}

func (it *funcIterator[T]) Value() T   { return it.cur }
func (it *funcIterator[T]) Err() error { return it.err }

func (it *funcIterator[T]) Close() error {
	var zero T
	it.cur, it.done, it.next = zero, true, nil
	if c := it.close; c != nil {
		it.close = nil
		return c()
	}
	return nil
}

// ErrorIterator returns an Iterator with no elements whose Err is err.
func ErrorIterator[T any](err error) Iterator[T] {
	return FuncIterator(func() (T, bool, error) {
		var zero T
		return zero, false, err
	}, nil)
}

// Collect drains it into a slice and closes it. It returns the elements read so far and the
// first error of the iteration or of Close.
func Collect[T any](it Iterator[T]) ([]T, error) {
	var out []T
	for it.Next() {
		out = append(out, it.Value())
	}
	return out, errors.Join(it.Err(), it.Close())
}
