package tungsten

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

var ctx = context.Background()

// uesConfig is UnsafeExternalSorterSuite's sorter: LONG prefixes, a record comparator that
// always says equal, initial size 1024; radix in the RadixSort variant.
func uesConfig(radix bool) SorterConfig {
	return SorterConfig{Prefix: PrefixLong, Records: func(a, b []byte) int { return 0 },
		CanUseRadixSort: radix, InitialSize: 1024}
}

// forEachVariant runs f for radix off/on and on-heap/off-heap pages.
func forEachVariant(t *testing.T, f func(t *testing.T, mode memory.Mode, radix bool)) {
	for _, mode := range modes {
		for _, radix := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/radix=%v", mode, radix), func(t *testing.T) { f(t, mode, radix) })
		}
	}
}

func newSorter(t *testing.T, tm *memory.TaskManager, scope *storage.Scope, cfg SorterConfig) *ExternalSorter {
	t.Helper()
	s, err := NewExternalSorter(ctx, tm, scope, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func insertNumber(t *testing.T, s *ExternalSorter, v int) {
	t.Helper()
	require.NoError(t, s.InsertRecord(ctx, int4(v), int64(v), false))
}

func spill(t *testing.T, s *ExternalSorter) int64 {
	t.Helper()
	n, err := s.Spill(math.MaxInt64, s)
	require.NoError(t, err)
	return n
}

// drain reads an iterator to its end, returning the records' ints and lengths.
func drain(t *testing.T, it *SortedIterator) (values, lengths []int) {
	t.Helper()
	for it.Next() {
		r := it.Record()
		lengths = append(lengths, len(r))
		if len(r) >= 4 {
			values = append(values, readInt4(r))
		}
	}
	require.NoError(t, it.Err())
	require.NoError(t, it.Close())
	return values, lengths
}

func sorted(t *testing.T, s *ExternalSorter) *SortedIterator {
	t.Helper()
	it, err := s.SortedIterator(ctx)
	require.NoError(t, err)
	return it
}

const mib = 1 << 20

// UES-01 testSortingOnlyByPrefix.
func TestUES01SortingOnlyByPrefix(t *testing.T) {
	forEachVariant(t, func(t *testing.T, mode memory.Mode, radix bool) {
		tm, scope := newTask(t, mode, 64*mib, 4*mib), newScope(t)
		s := newSorter(t, tm, scope, uesConfig(radix))
		insertNumber(t, s, 5)
		insertNumber(t, s, 1)
		insertNumber(t, s, 3)
		spill(t, s)
		insertNumber(t, s, 4)
		spill(t, s)
		insertNumber(t, s, 2)
		values, lengths := drain(t, sorted(t, s))
		require.Equal(t, []int{1, 2, 3, 4, 5}, values)
		require.Equal(t, []int{4, 4, 4, 4, 4}, lengths)
		require.NoError(t, s.Close())
		require.Zero(t, s.Used())
		require.Zero(t, scope.Files())
	})
}

// UES-02 testSortingEmptyArrays.
func TestUES02SortingEmptyArrays(t *testing.T) {
	forEachVariant(t, func(t *testing.T, mode memory.Mode, radix bool) {
		tm, scope := newTask(t, mode, 64*mib, 4*mib), newScope(t)
		s := newSorter(t, tm, scope, uesConfig(radix))
		add := func() { require.NoError(t, s.InsertRecord(ctx, nil, 0, false)) }
		add()
		add()
		spill(t, s)
		add()
		spill(t, s)
		add()
		add()
		_, lengths := drain(t, sorted(t, s))
		require.Equal(t, []int{0, 0, 0, 0, 0}, lengths)
	})
}

// UES-03 spillingOccursInResponseToMemoryPressure: pageSize/8 descending numbers fill one page;
// the budget holds the array and that page only, so the next record's page makes the sorter spill
// itself.
func TestUES03SpillingOccursInResponseToMemoryPressure(t *testing.T) {
	forEachVariant(t, func(t *testing.T, mode memory.Mode, radix bool) {
		const page = 1 * mib
		n := page / 8
		cfg := uesConfig(radix)
		cfg.InitialSize = n * 2 // no growth: 2·n pairs fit either sort's usable capacity
		arrayBytes := int64(2 * cfg.InitialSize * 8)
		tm, scope := newSparkTask(t, mode, arrayBytes+page, page), newScope(t)
		s := newSorter(t, tm, scope, cfg)
		for i := n; i > 0; i-- {
			insertNumber(t, s, i)
		}
		require.Zero(t, s.NumSpills())
		insertNumber(t, s, 0)
		require.Equal(t, 1, s.NumSpills())
		require.Equal(t, 1, scope.Files())
		values, _ := drain(t, sorted(t, s))
		require.Len(t, values, n+1)
		for i, v := range values {
			require.Equal(t, i, v)
		}
	})
}

// UES-04 sortingRecordsThatExceedPageSize.
func TestUES04SortingRecordsThatExceedPageSize(t *testing.T) {
	forEachVariant(t, func(t *testing.T, mode memory.Mode, radix bool) {
		const page = 64 << 10
		tm, scope := newTask(t, mode, 16*mib, page), newScope(t)
		s := newSorter(t, tm, scope, uesConfig(radix))
		large := make([]byte, 4*(page/4+16))
		small := make([]byte, 4*100)
		large[0], small[0] = 7, 9
		require.NoError(t, s.InsertRecord(ctx, small, 123, false))
		require.NoError(t, s.InsertRecord(ctx, large, 456, false))
		spill(t, s)
		require.NoError(t, s.InsertRecord(ctx, large, 456, false))
		require.NoError(t, s.InsertRecord(ctx, small, 123, false))
		it := sorted(t, s)
		var got []int
		for it.Next() {
			got = append(got, len(it.Record()))
			require.Equal(t, map[int]byte{len(small): 9, len(large): 7}[len(it.Record())], it.Record()[0])
		}
		require.NoError(t, it.Err())
		require.Equal(t, []int{len(small), len(small), len(large), len(large)}, got)
	})
}

func TestRecordTooLarge(t *testing.T) {
	tm, scope := newTask(t, memory.OnHeap, 16*mib, 64<<10), newScope(t)
	s := newSorter(t, tm, scope, uesConfig(true))
	// A record larger than the budget: a clear out-of-memory error naming the size (its spill
	// writer's buffers are the first thing that does not fit).
	err := s.InsertRecord(ctx, make([]byte, 20*mib), 0, false)
	require.ErrorIs(t, err, memory.ErrOutOfMemory)
	require.ErrorContains(t, err, fmt.Sprint(20*mib))
	// A record above the spill format's limit is refused before any allocation.
	big := make([]byte, MaxRecordSize+1)
	err = s.InsertRecord(ctx, big, 0, false)
	require.ErrorIs(t, err, ErrRecordTooLarge)
	require.ErrorContains(t, err, fmt.Sprint(MaxRecordSize+1))
}

// UES-05 forcedSpillingWithReadIterator.
func TestUES05ForcedSpillingWithReadIterator(t *testing.T) {
	forEachVariant(t, func(t *testing.T, mode memory.Mode, radix bool) {
		const page = 256 << 10
		tm, scope := newTask(t, mode, 16*mib, page), newScope(t)
		s := newSorter(t, tm, scope, uesConfig(radix))
		rec := make([]byte, 800-4)
		n := page / 800 * 3
		for i := range n {
			copy(rec, int4(i))
			require.NoError(t, s.InsertRecord(ctx, rec, int64(i), false))
		}
		require.Greater(t, len(s.pages), 2)
		it := sorted(t, s)
		lastv := 0
		for i := range n / 3 {
			require.True(t, it.Next())
			require.Equal(t, i, readInt4(it.Record()))
			lastv = i
		}
		released, err := it.Spill()
		require.NoError(t, err)
		require.Positive(t, released)
		again, err := it.Spill()
		require.NoError(t, err)
		require.Zero(t, again)
		require.Equal(t, lastv, readInt4(it.Record()), "the current record stays readable")
		require.Len(t, s.pages, 1, "only the current record's page is kept")
		for i := n / 3; i < n; i++ {
			require.True(t, it.Next())
			require.Equal(t, i, readInt4(it.Record()))
		}
		require.False(t, it.Next())
		require.NoError(t, it.Err())
		require.NoError(t, it.Close())
		require.NoError(t, s.Close())
		require.Zero(t, scope.Files())
	})
}

// UES-06 forcedSpillingWith{FullyRead,NotRead}Iterator and NullsWithReadIterator.
func TestUES06ForcedSpilling(t *testing.T) {
	const page = 256 << 10
	n := page / 800 * 3
	fill := func(t *testing.T, s *ExternalSorter, nulls bool) {
		rec := make([]byte, 796)
		for i := range n {
			copy(rec, int4(i))
			require.NoError(t, s.InsertRecord(ctx, rec, int64(i), nulls && i%2 == 0))
		}
	}
	forEachVariant(t, func(t *testing.T, mode memory.Mode, radix bool) {
		t.Run("FullyRead", func(t *testing.T) {
			tm, scope := newTask(t, mode, 16*mib, page), newScope(t)
			s := newSorter(t, tm, scope, uesConfig(radix))
			fill(t, s, false)
			it := sorted(t, s)
			for range n {
				require.True(t, it.Next())
			}
			released, err := it.Spill()
			require.NoError(t, err)
			require.Positive(t, released)
			require.Equal(t, n-1, readInt4(it.Record()))
			require.False(t, it.Next())
			require.NoError(t, it.Err())
		})
		t.Run("NotRead", func(t *testing.T) {
			tm, scope := newTask(t, mode, 16*mib, page), newScope(t)
			s := newSorter(t, tm, scope, uesConfig(radix))
			fill(t, s, false)
			it := sorted(t, s)
			released, err := it.Spill()
			require.NoError(t, err)
			require.Positive(t, released)
			values, _ := drain(t, it)
			require.Len(t, values, n)
			for i, v := range values {
				require.Equal(t, i, v)
			}
		})
		t.Run("NullsWithReadIterator", func(t *testing.T) {
			tm, scope := newTask(t, mode, 16*mib, page), newScope(t)
			s := newSorter(t, tm, scope, uesConfig(radix))
			fill(t, s, true)
			it := sorted(t, s)
			seen := map[int]bool{}
			for range n / 3 {
				require.True(t, it.Next())
				seen[readInt4(it.Record())] = true
			}
			_, err := it.Spill()
			require.NoError(t, err)
			for it.Next() {
				seen[readInt4(it.Record())] = true
			}
			require.NoError(t, it.Err())
			require.Len(t, seen, n)
		})
	})
}

// UES-07 forcedSpillingWithoutComparator: insertion order through spills.
func TestUES07ForcedSpillingWithoutComparator(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			const page = 256 << 10
			tm, scope := newTask(t, mode, 16*mib, page), newScope(t)
			s := newSorter(t, tm, scope, SorterConfig{InitialSize: 1024})
			n := page / 800 * 3
			rec := make([]byte, 796)
			for i := range n {
				if i%(n/4) == 0 && i > 0 {
					spill(t, s)
				}
				copy(rec, int4(n-i))
				require.NoError(t, s.InsertRecord(ctx, rec, int64(n-i), false))
			}
			it, err := s.Iterator(ctx, 0)
			require.NoError(t, err)
			values, _ := drain(t, it)
			require.Len(t, values, n)
			for i, v := range values {
				require.Equal(t, n-i, v)
			}
		})
	}
}

// UES-08 testPeakMemoryUsed: page 256, 8-byte records (4 + length word).
func TestUES08PeakMemoryUsed(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			const page, perPage = 256, 32
			tm, scope := newTask(t, mode, 16*mib, page), newScope(t)
			s := newSorter(t, tm, scope, uesConfig(false))
			prev := s.PeakMemoryUsedBytes()
			for i := range perPage * 10 {
				insertNumber(t, s, i)
				peak := s.PeakMemoryUsedBytes()
				if i%perPage == 0 {
					require.Equal(t, prev+page, peak, "record %d starts a page", i)
				} else {
					require.Equal(t, prev, peak, "record %d", i)
				}
				prev = peak
			}
			spill(t, s)
			require.Equal(t, prev, s.PeakMemoryUsedBytes())
			for i := range perPage {
				insertNumber(t, s, i)
			}
			require.Equal(t, prev, s.PeakMemoryUsedBytes(), "spill and re-inserts keep the peak")
			require.Equal(t, prev, s.Metrics().PeakMemoryUsedBytes)
		})
	}
}

// UES-09 testGetIterator.
func TestUES09GetIterator(t *testing.T) {
	for _, start := range []int{0, 79, 139, 279} {
		t.Run(fmt.Sprint(start), func(t *testing.T) {
			tm, scope := newTask(t, memory.OnHeap, 16*mib, 4*mib), newScope(t)
			s := newSorter(t, tm, scope, uesConfig(true))
			for i := range 300 {
				if i == 100 || i == 200 {
					spill(t, s)
				}
				insertNumber(t, s, i)
			}
			it, err := s.Iterator(ctx, start)
			require.NoError(t, err)
			values, _ := drain(t, it)
			require.Len(t, values, 300-start)
			for i, v := range values {
				require.Equal(t, start+i, v)
			}
		})
	}
	t.Run("past the end", func(t *testing.T) {
		tm, scope := newTask(t, memory.OnHeap, 16*mib, 4*mib), newScope(t)
		s := newSorter(t, tm, scope, uesConfig(true))
		insertNumber(t, s, 1)
		_, err := s.Iterator(ctx, 5)
		require.ErrorContains(t, err, "failed to move the iterator 5 steps forward")
	})
}

// UES-10 testNoOOMDuringSpill / testDiskSpilledBytes, and the bounded merge.
func TestUES10(t *testing.T) {
	t.Run("NoOOMDuringSpill", func(t *testing.T) {
		const page = 64 << 10
		tm, scope := newSparkTask(t, memory.OnHeap, 1*mib, page), newScope(t)
		s := newSorter(t, tm, scope, uesConfig(true))
		for i := range 100 {
			insertNumber(t, s, i)
		}
		h := newHog(tm)
		h.use(t, 1*mib-s.Used())
		require.Positive(t, spill(t, s), "a spill needs no memory")
		require.Zero(t, s.Used())
		h.Spill(0, nil)
		for i := range 100 {
			insertNumber(t, s, i) // the array comes back lazily
		}
		values, _ := drain(t, sorted(t, s))
		require.Len(t, values, 200)
	})
	t.Run("DiskSpilledBytes", func(t *testing.T) {
		tm, scope := newTask(t, memory.OnHeap, 16*mib, 4*mib), newScope(t)
		s := newSorter(t, tm, scope, uesConfig(true))
		for i := range 1000 {
			insertNumber(t, s, i)
		}
		it := sorted(t, s)
		require.Zero(t, s.Metrics().DiskBytesSpilled)
		_, err := it.Spill()
		require.NoError(t, err)
		spilled := s.Metrics().DiskBytesSpilled
		require.Positive(t, spilled)
		again, err := it.Spill()
		require.NoError(t, err)
		require.Zero(t, again)
		require.Equal(t, spilled, s.Metrics().DiskBytesSpilled)
		values, _ := drain(t, it)
		require.Len(t, values, 1000)
	})
	for _, tc := range []struct{ factor, spills, passes int }{
		{3, 6, 1}, {2, 8, 2}, {3, 20, 2}, {4, 4, 0}, {3, 7, 1},
	} {
		t.Run(fmt.Sprintf("BoundedMerge/factor=%d/spills=%d", tc.factor, tc.spills), func(t *testing.T) {
			tm, scope := newTask(t, memory.OnHeap, 16*mib, 64<<10), newScope(t)
			cfg := uesConfig(false)
			cfg.MergeFactor = tc.factor
			s := newSorter(t, tm, scope, cfg)
			want := make([]int, 0)
			for i := range tc.spills {
				for j := range 10 {
					v := (j*7 + i) % 13 // duplicates across runs
					insertNumber(t, s, v)
					want = append(want, v)
				}
				spill(t, s)
			}
			insertNumber(t, s, 5)
			want = append(want, 5)
			values, _ := drain(t, sorted(t, s))
			require.Equal(t, int64(tc.passes), s.Metrics().MergePasses)
			require.Len(t, values, len(want))
			require.IsNonDecreasing(t, values)
			require.ElementsMatch(t, want, values)
		})
	}
}

// Closing the sorter while an iterator that was force-spilled is still open frees everything
// once; the iterator then ends with ErrClosed.
func TestCloseWhileReading(t *testing.T) {
	forEachVariant(t, func(t *testing.T, mode memory.Mode, radix bool) {
		tm, scope := newTask(t, mode, 16*mib, 64<<10), newScope(t)
		s := newSorter(t, tm, scope, uesConfig(radix))
		for i := range 10_000 {
			insertNumber(t, s, i)
		}
		it := sorted(t, s)
		require.True(t, it.Next())
		_, err := it.Spill()
		require.NoError(t, err)
		require.NoError(t, s.Close())
		require.Zero(t, s.Used())
		require.False(t, it.Next())
		require.NoError(t, it.Close())
		require.Zero(t, scope.Files())
	})
}
