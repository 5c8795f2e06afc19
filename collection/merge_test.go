package collection

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testIterator is a slice iterator that can fail after a number of elements and counts Next and
// Close calls.
type testIterator[T any] struct {
	s       []T
	i       int
	failAt  int // Next fails when i reaches failAt; -1 never
	err     error
	nexts   int
	closes  int
	closeEr error
}

func newTestIterator[T any](s []T) *testIterator[T] {
	return &testIterator[T]{s: s, i: -1, failAt: -1}
}

func (it *testIterator[T]) Next() bool {
	it.nexts++
	if it.err != nil || it.closes > 0 {
		return false
	}
	if it.i+1 == it.failAt {
		it.err = errors.New("read failed")
		return false
	}
	if it.i+1 >= len(it.s) {
		return false
	}
	it.i++
	return true
}

func (it *testIterator[T]) Value() T   { return it.s[it.i] }
func (it *testIterator[T]) Err() error { return it.err }
func (it *testIterator[T]) Close() error {
	it.closes++
	return it.closeEr
}

type tagged struct{ key, src, pos int }

func TestMerge_RandomizedAgainstSort(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	byKey := func(a, b tagged) int { return cmp.Compare(a.key, b.key) }
	for round := range 200 {
		k := rng.IntN(9)
		var all []tagged
		var its []Iterator[tagged]
		var inputs []*testIterator[tagged]
		for src := range k {
			n := rng.IntN(50)
			if rng.IntN(5) == 0 {
				n = 0
			}
			s := make([]tagged, n)
			for j := range s {
				s[j].key = rng.IntN(1 + round)
			}
			slices.SortStableFunc(s, byKey)
			for j := range s {
				s[j].src, s[j].pos = src, j
			}
			all = append(all, s...)
			ti := newTestIterator(s)
			inputs = append(inputs, ti)
			its = append(its, ti)
		}
		// Stable: equal keys ordered by input, then by position in the input.
		want := slices.Clone(all)
		slices.SortStableFunc(want, byKey)
		got, err := Collect(Merge(byKey, its...))
		require.NoError(t, err)
		if len(want) == 0 {
			require.Empty(t, got)
		} else {
			require.Equal(t, want, got, "round %d", round)
		}
		for i, in := range inputs {
			require.Equal(t, 1, in.closes, "input %d closed once", i)
		}
	}
}

func TestMerge_LazyAdvance(t *testing.T) {
	a := newTestIterator([]int{1, 4, 5})
	b := newTestIterator([]int{2, 3, 6})
	m := Merge(cmp.Compare[int], a, b)
	require.True(t, m.Next())
	require.Equal(t, 1, m.Value())
	require.Equal(t, 1, a.nexts)
	require.Equal(t, 1, b.nexts)
	require.True(t, m.Next())
	require.Equal(t, 2, m.Value())
	require.Equal(t, 2, a.nexts, "advanced the input of the last element")
	require.Equal(t, 1, b.nexts)
	require.Equal(t, 2, m.Value(), "Value is repeatable")
	require.NoError(t, m.Close())
	require.Equal(t, 1, a.closes)
	require.Equal(t, 1, b.closes)
	require.False(t, m.Next(), "no elements after Close")
	require.NoError(t, m.Close(), "second Close is a no-op")
	require.Equal(t, 1, a.closes)
}

func TestMerge_Errors(t *testing.T) {
	t.Run("input fails mid-way", func(t *testing.T) {
		a := newTestIterator([]int{1, 2, 3, 4})
		a.failAt = 2
		b := newTestIterator([]int{1, 5})
		m := Merge(cmp.Compare[int], a, b)
		var got []int
		for m.Next() {
			got = append(got, m.Value())
		}
		require.Equal(t, []int{1, 1, 2}, got)
		require.ErrorContains(t, m.Err(), "collection: merge input 0 of 2: read failed")
		require.False(t, m.Next())
		require.Equal(t, 1, a.closes, "the failed input is closed")
		require.NoError(t, m.Close())
		require.Equal(t, 1, b.closes)
	})
	t.Run("input fails at once", func(t *testing.T) {
		a := newTestIterator([]int{1})
		b := newTestIterator([]int{2})
		b.failAt = 0
		m := Merge(cmp.Compare[int], a, b)
		require.False(t, m.Next())
		require.ErrorContains(t, m.Err(), "merge input 1 of 2")
		require.NoError(t, m.Close())
		require.Equal(t, 1, a.closes)
		require.Equal(t, 1, b.closes)
	})
	t.Run("close errors joined", func(t *testing.T) {
		a := newTestIterator([]int{1})
		a.closeEr = errors.New("close a")
		b := newTestIterator([]int{2})
		b.closeEr = errors.New("close b")
		m := Merge(cmp.Compare[int], a, b)
		require.True(t, m.Next())
		err := m.Close()
		require.ErrorContains(t, err, "close a")
		require.ErrorContains(t, err, "close b")
	})
	t.Run("close error of an exhausted input", func(t *testing.T) {
		a := newTestIterator([]int{1})
		a.closeEr = errors.New("close a")
		_, err := Collect(Merge(cmp.Compare[int], a))
		require.ErrorContains(t, err, "close a")
	})
	require.Panics(t, func() { Merge[int](nil) })
}

func TestMerge_Empty(t *testing.T) {
	m := Merge(cmp.Compare[int])
	require.False(t, m.Next())
	require.NoError(t, m.Err())
	require.NoError(t, m.Close())
}

func TestConcat(t *testing.T) {
	a := newTestIterator([]int{1, 2})
	b := newTestIterator([]int(nil))
	c := newTestIterator([]int{3})
	got, err := Collect(Concat[int](a, b, c))
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3}, got)
	for _, in := range []*testIterator[int]{a, b, c} {
		require.Equal(t, 1, in.closes)
	}

	a = newTestIterator([]int{1, 2})
	a.failAt = 1
	b = newTestIterator([]int{3})
	it := Concat[int](a, b)
	got, err = Collect(it)
	require.ErrorContains(t, err, "read failed")
	require.Equal(t, []int{1}, got)
	require.Equal(t, 1, a.closes)
	require.Equal(t, 1, b.closes, "Close closes the inputs not reached")
}

func TestSliceIteratorAndAdapters(t *testing.T) {
	s := []int{1, 2, 3}
	it := SliceIterator(s)
	require.Zero(t, it.Value(), "no element before Next")
	var got []int
	for v := range All(it) {
		got = append(got, v)
		if v == 2 {
			break
		}
	}
	require.Equal(t, []int{1, 2}, got)
	require.True(t, it.Next(), "breaking the loop leaves the rest")
	require.Equal(t, 3, it.Value())
	require.False(t, it.Next())
	require.NoError(t, it.Err())
	require.NoError(t, it.Close())
	require.Equal(t, []int{1, 2, 3}, s, "the slice is not modified")

	pairs := SliceIterator([]Pair[string, int]{{Key: "a", Value: 1}, {Key: "b", Value: 2}})
	m := map[string]int{}
	for k, v := range AllPairs(pairs) {
		m[k] = v
	}
	require.Equal(t, map[string]int{"a": 1, "b": 2}, m)
}
