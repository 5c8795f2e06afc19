package collection

import (
	"errors"
	"fmt"

	"github.com/spillway/spillway/storage"
)

// Iterator is the pull iterator every collection in this package returns (Spark's Scala
// Iterator made explicit about errors and resources): storage.Iterator, whose doc states the
// protocol. Collections add one guarantee: they never hand out memory they reuse, so a k-way
// merge may buffer elements of one input while advancing it; and Close of a spill reader also
// deletes its file.
type Iterator[T any] = storage.Iterator[T]

// Pair is a key and its value as the iterators of maps yield them (Spark's Scala tuple (K, V)):
// storage.Pair, which PairCodec encodes.
type Pair[K, V any] = storage.Pair[K, V]

// PartitionedPair is a record of the in-memory collections of ExternalSorter: a key and value
// with the partition they belong to; Spark's ((Int, K), V).
type PartitionedPair[K, V any] struct {
	Partition int32
	Key       K
	Value     V
}

// Collect drains it into a slice and closes it (Spark's Iterator.toArray): storage.Collect.
func Collect[T any](it Iterator[T]) ([]T, error) { return storage.Collect(it) }

// SliceIterator returns an Iterator over the elements of s, in order (Spark's Array.iterator):
// storage.SliceIterator, which never modifies s and drops it when it ends or is closed.
func SliceIterator[T any](s []T) Iterator[T] { return storage.SliceIterator(s) }

// Concat returns an Iterator over the elements of its, one input after the other (Spark's
// Iterator ++, used by ExternalSorter when there is neither aggregation nor ordering). It stops
// at the first input error. Close closes every input not yet closed and joins their errors;
// an input is closed as soon as it is exhausted.
func Concat[T any](its ...Iterator[T]) Iterator[T] {
	return &concatIterator[T]{its: its}
}

type concatIterator[T any] struct {
	its []Iterator[T]
	cur T
	err error
}

func (c *concatIterator[T]) Next() bool {
	for len(c.its) > 0 && c.err == nil {
		it := c.its[0]
		if it.Next() {
			c.cur = it.Value()
			return true
		}
		c.err = it.Err()
		if cerr := it.Close(); c.err == nil {
			c.err = cerr
		}
		c.its[0] = nil
		c.its = c.its[1:]
	}
	var zero T
	c.cur = zero
	return false
}

func (c *concatIterator[T]) Value() T   { return c.cur }
func (c *concatIterator[T]) Err() error { return c.err }

func (c *concatIterator[T]) Close() error {
	var errs []error
	for _, it := range c.its {
		errs = append(errs, it.Close())
	}
	c.its = nil
	var zero T
	c.cur = zero
	return errors.Join(errs...)
}

// Merge returns a k-way merge of the inputs, each sorted by cmp, as one Iterator sorted by cmp
// (Spark's ExternalSorter.mergeSort, and the skeleton of ExternalIterator's merge by hash).
// Elements that compare equal come out in the order of their inputs (input 0 first), so the merge
// is stable. cmp returns a negative number, zero or a positive number as a < b, a == b, a > b, like
// cmp.Compare; it must be a strict weak order consistent with how the inputs were sorted.
//
// Inputs are advanced lazily: Next reads one element from the input whose element it returned
// last, and the first Next reads one element from every input. Merge stops at the first input
// error, which Err returns wrapped with the input's index. Close closes every input and joins
// their errors; an exhausted input is closed as soon as it ends.
//
// The merge keeps the current element of each input in a tournament tree of losers: about
// log2(k) comparisons per element. Merge panics if cmp is nil.
func Merge[T any](cmp func(a, b T) int, its ...Iterator[T]) Iterator[T] {
	if cmp == nil {
		panic("collection: Merge with a nil comparator")
	}
	return &mergeIterator[T]{its: its, tree: newLoserTree(len(its), cmp), last: -1}
}

type mergeIterator[T any] struct {
	its     []Iterator[T] // nil entries are closed inputs
	tree    loserTree[T]
	started bool
	last    int // input whose element Next returned last; -1 if none
	err     error
	closed  bool
}

func (m *mergeIterator[T]) Next() bool {
	if m.last >= 0 { // the common case, inlined: the last input has a next element
		if it := m.its[m.last]; it.Next() {
			m.tree.set(m.last, 0, it.Value())
			m.last = m.tree.winner()
			return true
		}
	}
	if m.closed || m.err != nil {
		return false
	}
	if !m.started {
		m.started = true
		for i := range m.its {
			if !m.advance(i) {
				return false
			}
		}
	} else if m.last >= 0 && !m.finish(m.last) {
		return false
	}
	m.last = m.tree.winner()
	return m.last >= 0
}

// advance reads input i's next element into the tree, closing the input at its end; it reports
// whether merging goes on.
func (m *mergeIterator[T]) advance(i int) bool {
	it := m.its[i]
	if it.Next() {
		m.tree.set(i, 0, it.Value())
		return true
	}
	return m.finish(i)
}

// finish closes the exhausted input i and records its error; it reports whether merging goes on.
func (m *mergeIterator[T]) finish(i int) bool {
	it := m.its[i]
	m.tree.drop(i)
	m.its[i] = nil
	err := it.Err()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		m.err = fmt.Errorf("collection: merge input %d of %d: %w", i, len(m.its), err)
		m.tree = loserTree[T]{}
		m.last = -1
		return false
	}
	return true
}

func (m *mergeIterator[T]) Value() T {
	if m.last < 0 {
		var zero T
		return zero
	}
	return m.tree.heads[m.last]
}

func (m *mergeIterator[T]) Err() error { return m.err }

func (m *mergeIterator[T]) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	for i, it := range m.its {
		if it != nil {
			errs = append(errs, it.Close())
			m.its[i] = nil
		}
	}
	m.tree = loserTree[T]{}
	m.last = -1
	return errors.Join(errs...)
}
