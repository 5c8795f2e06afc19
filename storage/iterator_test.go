package storage

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIteratorHelpers(t *testing.T) {
	boom := errors.New("boom")
	counter := func(n int, err error) (Iterator[int], *int) {
		closed := 0
		i := 0
		return FuncIterator(func() (int, bool, error) {
			if i == n {
				return 0, false, err
			}
			i++
			return i, true, nil
		}, func() error { closed++; return nil }), &closed
	}
	for _, tc := range []struct {
		name    string
		make    func() Iterator[int]
		want    []int
		wantErr error
	}{
		{"slice", func() Iterator[int] { return SliceIterator([]int{1, 2, 3}) }, []int{1, 2, 3}, nil},
		{"empty slice", func() Iterator[int] { return SliceIterator[int](nil) }, nil, nil},
		{"func", func() Iterator[int] { it, _ := counter(3, nil); return it }, []int{1, 2, 3}, nil},
		{"func error", func() Iterator[int] { it, _ := counter(2, boom); return it }, []int{1, 2}, boom},
		{"error", func() Iterator[int] { return ErrorIterator[int](boom) }, nil, boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := tc.make()
			got, err := Collect(it)
			require.Equal(t, tc.want, got)
			require.ErrorIs(t, err, tc.wantErr)
			if tc.wantErr == nil {
				require.NoError(t, err)
			}
			require.False(t, it.Next(), "Next after the end")
			require.NoError(t, it.Close(), "second Close")
		})
	}

	t.Run("func close once and early", func(t *testing.T) {
		it, closed := counter(10, nil)
		require.True(t, it.Next())
		require.Equal(t, 1, it.Value())
		require.NoError(t, it.Close())
		require.NoError(t, it.Close())
		require.Equal(t, 1, *closed)
		require.False(t, it.Next())
		require.NoError(t, it.Err())
	})

	t.Run("slice does not modify its input", func(t *testing.T) {
		s := []string{"a", "b"}
		it := SliceIterator(s)
		require.True(t, it.Next())
		require.NoError(t, it.Close())
		require.False(t, it.Next())
		require.Equal(t, []string{"a", "b"}, s)
	})
}
