package storage

import (
	"errors"
	"iter"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// closeCounter wraps an Iterator and counts Close calls; closeErr is Close's result.
type closeCounter[T any] struct {
	Iterator[T]
	closes   int
	closeErr error
}

func (c *closeCounter[T]) Close() error {
	c.closes++
	c.Iterator.Close()
	return c.closeErr
}

func TestAll(t *testing.T) {
	boom, closing := errors.New("boom"), errors.New("close failed")
	for _, tc := range []struct {
		name     string
		it       Iterator[int]
		closeErr error
		stopAt   int // break after this many elements (0: never)
		want     []int
		wantErr  []error
	}{
		{name: "all elements", it: SliceIterator([]int{1, 2, 3}), want: []int{1, 2, 3}},
		{name: "empty", it: SliceIterator[int](nil)},
		{name: "iteration error last", it: testConcat(SliceIterator([]int{1}), ErrorIterator[int](boom)), want: []int{1}, wantErr: []error{boom}},
		{name: "close error", it: SliceIterator([]int{1}), closeErr: closing, want: []int{1}, wantErr: []error{closing}},
		{name: "both errors", it: ErrorIterator[int](boom), closeErr: closing, wantErr: []error{boom, closing}},
		{name: "break closes", it: SliceIterator([]int{1, 2, 3}), closeErr: closing, stopAt: 2, want: []int{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &closeCounter[int]{Iterator: tc.it, closeErr: tc.closeErr}
			var got []int
			var gotErr error
			for v, err := range All[int](c) {
				if err != nil {
					require.Nil(t, gotErr, "one error at most")
					gotErr = err
					continue
				}
				got = append(got, v)
				if len(got) == tc.stopAt {
					break
				}
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, 1, c.closes, "closed once")
			if tc.wantErr == nil {
				require.NoError(t, gotErr)
			}
			for _, e := range tc.wantErr {
				require.ErrorIs(t, gotErr, e)
			}
		})
	}
}

// testConcat is a minimal concatenation for the tests (collection has the real one).
func testConcat[T any](its ...Iterator[T]) Iterator[T] {
	return FromSeq2(func(yield func(T, error) bool) {
		for _, it := range its {
			for v, err := range All(it) {
				if !yield(v, err) || err != nil {
					return
				}
			}
		}
	})
}

func TestFromSeq(t *testing.T) {
	got, err := Collect(FromSeq(slices.Values([]string{"a", "b"})))
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, got)

	// Close stops the sequence early: its deferred cleanup runs.
	cleaned := 0
	seq := func(yield func(int) bool) {
		defer func() { cleaned++ }()
		for i := 0; ; i++ {
			if !yield(i) {
				return
			}
		}
	}
	it := FromSeq(iter.Seq[int](seq))
	require.True(t, it.Next())
	require.True(t, it.Next())
	require.Equal(t, 1, it.Value())
	require.Zero(t, cleaned)
	require.NoError(t, it.Close())
	require.Equal(t, 1, cleaned)
	require.False(t, it.Next())

	// Nothing runs before the first Next, and closing an unstarted iterator is fine.
	started := false
	it = FromSeq(func(func(int) bool) { started = true })
	require.NoError(t, it.Close())
	require.False(t, started)
}

func TestFromSeq2(t *testing.T) {
	boom := errors.New("boom")
	cleaned := false
	it := FromSeq2(func(yield func(int, error) bool) {
		defer func() { cleaned = true }()
		_ = yield(1, nil) && yield(0, boom) && yield(2, nil)
	})
	got, err := Collect(it)
	require.Equal(t, []int{1}, got)
	require.ErrorIs(t, err, boom)
	require.True(t, cleaned, "the sequence is stopped at its first error")

	// All and FromSeq2 are inverses.
	back, err := Collect(FromSeq2(All(SliceIterator([]int{4, 5}))))
	require.NoError(t, err)
	require.Equal(t, []int{4, 5}, back)
}
