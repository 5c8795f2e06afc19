package tungsten

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

func newMap(t *testing.T, tm *memory.TaskManager, scope *storage.Scope, cfg MapConfig) *BytesToBytesMap {
	t.Helper()
	m, err := NewBytesToBytesMap(ctx, tm, scope, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m
}

func appendKV(t *testing.T, m *BytesToBytesMap, k, v []byte) bool {
	t.Helper()
	ok, err := m.Lookup(k).Append(ctx, k, v)
	require.NoError(t, err)
	return ok
}

func long(i int) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(i)) }

func forEachMode(t *testing.T, f func(t *testing.T, mode memory.Mode)) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) { f(t, mode) })
	}
}

// stubborn is a consumer that holds memory and never gives it back (Spark's limit()).
type stubborn struct{ hog }

func newStubborn(tm *memory.TaskManager) *stubborn {
	s := &stubborn{}
	s.base.Init(tm, tm.Manager().TungstenMode(), "stubborn", s)
	return s
}
func (s *stubborn) Spill(int64, memory.Consumer) (int64, error) { return 0, nil }
func (s *stubborn) free()                                       { s.base.Free(s.base.Used()) }

// BBM-01 emptyMap / setAndRetrieveAKey.
func TestBBM01SetAndRetrieveAKey(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode memory.Mode) {
		tm, scope := newTask(t, mode, 64*mib, 1*mib), newScope(t)
		m := newMap(t, tm, scope, MapConfig{InitialCapacity: 64})
		key := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 10)
		value := bytes.Repeat([]byte{9}, 80)
		require.False(t, m.Lookup(key).IsDefined())
		require.False(t, m.Iterator(ctx).Next())
		loc := m.Lookup(key)
		ok, err := loc.Append(ctx, key, value)
		require.NoError(t, err)
		require.True(t, ok)
		require.True(t, loc.IsDefined())
		require.Equal(t, key, loc.Key())
		require.Equal(t, value, loc.Value())
		again := m.Lookup(key)
		require.True(t, again.IsDefined())
		require.Equal(t, value, again.Value())
		require.Equal(t, 1, m.NumKeys())
	})
}

// BBM-02 iteratorTest / destructiveIteratorTest.
func TestBBM02Iterator(t *testing.T) {
	for _, destructive := range []bool{false, true} {
		forEachMode(t, func(t *testing.T, mode memory.Mode) {
			tm, scope := newTask(t, mode, 64*mib, 4<<10), newScope(t)
			m := newMap(t, tm, scope, MapConfig{InitialCapacity: 2048})
			const n = 4096
			for i := range n {
				v := long(i)
				if i%5 == 0 {
					v = nil
				}
				require.True(t, appendKV(t, m, long(i), v))
			}
			pages := m.NumDataPages()
			require.Greater(t, pages, 1)
			it := m.Iterator(ctx)
			if destructive {
				it = m.DestructiveIterator(ctx)
			}
			seen := make([]bool, n)
			for range n {
				require.True(t, it.Next())
				i := int(binary.LittleEndian.Uint64(it.Key()))
				require.False(t, seen[i])
				seen[i] = true
				if i%5 == 0 {
					require.Empty(t, it.Value())
				} else {
					require.Equal(t, long(i), it.Value())
				}
			}
			if destructive {
				require.Equal(t, 1, m.NumDataPages(), "freed numPages-1 pages while iterating")
			}
			require.False(t, it.Next())
			require.NoError(t, it.Err())
		})
	}
}

// BBM-03 iteratingOverDataPagesWithWastedSpace, scaled to 1 MiB pages: records of 80 bytes fill
// exactly two pages, the first with a wasted tail.
func TestBBM03WastedSpace(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode memory.Mode) {
		const page = 1 * mib
		tm, scope := newTask(t, mode, 64*mib, page), newScope(t)
		m := newMap(t, tm, scope, MapConfig{})
		n := (page-uao)/80 + 100
		key, value := make([]byte, 24), make([]byte, 40)
		for i := range n {
			binary.LittleEndian.PutUint64(key, uint64(i))
			binary.LittleEndian.PutUint64(value, uint64(i))
			require.True(t, appendKV(t, m, key, value))
		}
		require.Equal(t, 2, m.NumDataPages())
		it := m.Iterator(ctx)
		count := 0
		for it.Next() {
			require.Equal(t, it.Key()[:8], it.Value()[:8])
			count++
		}
		require.Equal(t, n, count)
	})
}

func randomWords(r *rand.Rand, maxWords int) []byte {
	b := make([]byte, 8*r.IntN(maxWords+1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// BBM-04 randomizedStressTest (scaled: capacity 4096 to 90%, keys and values of 1–32 words),
// and BBM-05 randomizedTestWithRecordsLargerThanPageSize (page 128 B).
func TestBBM04And05Randomized(t *testing.T) {
	for _, tc := range []struct {
		name          string
		page          int64
		capacity, n   int
		minW, maxW    int
		largerThanPge bool
	}{
		{"BBM-04 stress", 64 << 10, 4096, 4096 * 9 / 10, 1, 32, false},
		{"BBM-05 records larger than page", 128, 64, 1000, 0, 127, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachMode(t, func(t *testing.T, mode memory.Mode) {
				seed := rand.Uint64()
				t.Logf("seed %d", seed)
				r := rand.New(rand.NewPCG(seed, 1))
				tm, scope := newTask(t, mode, 64*mib, tc.page), newScope(t)
				m := newMap(t, tm, scope, MapConfig{InitialCapacity: tc.capacity})
				want := map[string][]byte{}
				for len(want) < tc.n {
					k := randomWords(r, tc.maxW)
					if len(k) < 8*tc.minW {
						continue
					}
					if _, dup := want[string(k)]; dup {
						continue
					}
					v := randomWords(r, tc.maxW)
					loc := m.Lookup(k)
					require.False(t, loc.IsDefined())
					ok, err := loc.Append(ctx, k, v)
					require.NoError(t, err)
					require.True(t, ok)
					require.Equal(t, k, loc.Key())
					require.Equal(t, v, loc.Value())
					want[string(k)] = v
				}
				for k, v := range want {
					loc := m.Lookup([]byte(k))
					require.True(t, loc.IsDefined())
					require.Equal(t, v, loc.Value())
				}
				require.Equal(t, len(want), m.NumKeys())
			})
		})
	}
}

// BBM-06 failureToAllocateFirstPage.
func TestBBM06FailureToAllocateFirstPage(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode memory.Mode) {
		tm, scope := newTask(t, mode, 1024, 1024), newScope(t)
		m := newMap(t, tm, scope, MapConfig{InitialCapacity: 1})
		require.Equal(t, int64(1024), m.Used(), "64 slots of 16 bytes")
		require.False(t, appendKV(t, m, nil, nil))
	})
}

// BBM-07 failureToGrow: 32-byte records, 31 to a 1024-byte page; nothing more after the first.
func TestBBM07FailureToGrow(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode memory.Mode) {
		tm, scope := newSparkTask(t, mode, 64*mib, 1024), newScope(t)
		m := newMap(t, tm, scope, MapConfig{InitialCapacity: 1})
		require.True(t, appendKV(t, m, long(0), long(0)))
		s := newStubborn(tm)
		s.use(t, 64*mib-m.Used())
		defer s.free()
		i := 1
		for ; i < 1000; i++ {
			if !appendKV(t, m, long(i), long(i)) {
				break
			}
		}
		require.Equal(t, 31, i)
	})
}

// BBM-08 spillInIterator.
func TestBBM08SpillInIterator(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode memory.Mode) {
		tm, scope := newTask(t, mode, 64*mib, 1024), newScope(t)
		m, err := NewBytesToBytesMap(ctx, tm, scope, MapConfig{InitialCapacity: 1, LoadFactor: 0.75})
		require.NoError(t, err)
		const n = 1024
		for i := range n {
			require.True(t, appendKV(t, m, long(i), long(i)))
		}
		it := m.Iterator(ctx)
		released, err := it.Spill(10240)
		require.NoError(t, err)
		require.Zero(t, released, "a non-destructive iterator never spills")
		it = m.DestructiveIterator(ctx)
		seen := map[int]bool{}
		for range 100 {
			require.True(t, it.Next())
			seen[int(binary.LittleEndian.Uint64(it.Key()))] = true
		}
		released, err = it.Spill(1024)
		require.NoError(t, err)
		require.GreaterOrEqual(t, released, int64(1024))
		require.Positive(t, scope.Files())
		for it.Next() {
			k := int(binary.LittleEndian.Uint64(it.Key()))
			require.Equal(t, it.Key(), it.Value())
			require.False(t, seen[k])
			seen[k] = true
		}
		require.NoError(t, it.Err())
		require.Len(t, seen, n)
		require.NoError(t, m.Close())
		require.Zero(t, scope.Files())
	})
}

// BBM-09 multipleValuesForSameKey.
func TestBBM09MultipleValuesForSameKey(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode memory.Mode) {
		tm, scope := newTask(t, mode, 64*mib, 64<<10), newScope(t)
		m := newMap(t, tm, scope, MapConfig{})
		const n = 1024
		for i := range n {
			for j := range 2 {
				loc := m.Lookup(long(i))
				require.Equal(t, j == 1, loc.IsDefined())
				ok, err := loc.Append(ctx, long(i), long(i+j))
				require.NoError(t, err)
				require.True(t, ok)
			}
		}
		require.Equal(t, n, m.NumKeys())
		require.Equal(t, 2*n, m.NumValues())
		for i := range n {
			loc := m.Lookup(long(i))
			require.True(t, loc.IsDefined())
			require.Equal(t, long(i+1), loc.Value(), "newest first")
			require.True(t, loc.NextValue())
			require.Equal(t, long(i), loc.Value())
			require.False(t, loc.NextValue())
		}
		count := 0
		for it := m.Iterator(ctx); it.Next(); {
			count++
		}
		require.Equal(t, 2*n, count)
	})
}

// BBM-10 initialCapacityBoundsChecking / testPeakMemoryUsed / freeAfterFailedReset / avoidDeadlock.
func TestBBM10(t *testing.T) {
	t.Run("initialCapacityBoundsChecking", func(t *testing.T) {
		tm, scope := newTask(t, memory.OnHeap, 64*mib, 1024), newScope(t)
		for _, cfg := range []MapConfig{{InitialCapacity: -1}, {InitialCapacity: MaxCapacity + 1}, {PageSize: memory.MaxPageSize + 1}} {
			_, err := NewBytesToBytesMap(ctx, tm, scope, cfg)
			require.Error(t, err)
		}
		_, err := NewBytesToBytesMap(ctx, tm, scope, MapConfig{InitialCapacity: MaxCapacity + 1})
		require.ErrorContains(t, err, "exceeds maximum capacity of 536870912")
	})
	t.Run("testPeakMemoryUsed", func(t *testing.T) {
		forEachMode(t, func(t *testing.T, mode memory.Mode) {
			const page = 264 // 8 records of 32 bytes after the 4-byte count
			tm, scope := newTask(t, mode, 64*mib, page), newScope(t)
			m := newMap(t, tm, scope, MapConfig{InitialCapacity: 1024})
			prev := m.PeakMemoryUsedBytes()
			for i := range 80 {
				require.True(t, appendKV(t, m, long(i), long(i)))
				peak := m.PeakMemoryUsedBytes()
				if i%8 == 0 {
					require.Equal(t, prev+page, peak, "record %d", i)
				} else {
					require.Equal(t, prev, peak, "record %d", i)
				}
				prev = peak
			}
			require.NoError(t, m.Close())
			require.Equal(t, prev, m.PeakMemoryUsedBytes())
		})
	})
	t.Run("freeAfterFailedReset", func(t *testing.T) {
		tm, scope := newTask(t, memory.OnHeap, 5000, 4000), newScope(t)
		m, err := NewBytesToBytesMap(ctx, tm, scope, MapConfig{InitialCapacity: 256})
		require.NoError(t, err)
		m.DestructiveIterator(ctx) // frees the slot array
		s := newStubborn(tm)
		s.use(t, 1000)
		defer s.free()
		require.ErrorIs(t, m.Reset(ctx), memory.ErrOutOfMemory)
		require.NoError(t, m.Close())
		require.Zero(t, m.Used())
	})
	t.Run("avoidDeadlock", func(t *testing.T) {
		// SPARK-26265: a destructive iteration while another goroutine of the task acquires
		// memory, which forces the iterator to spill. It must finish, whatever the schedule.
		tm, scope := newTask(t, memory.OnHeap, 16*mib, 64<<10), newScope(t)
		m := newMap(t, tm, scope, MapConfig{})
		const n = 100_000
		for i := range n {
			require.True(t, appendKV(t, m, long(i), long(i)))
		}
		it := m.DestructiveIterator(ctx)
		h := newHog(tm)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				got, err := h.base.Acquire(ctx, 10_000_000)
				if err == nil {
					h.base.Free(got)
				}
			}
		}()
		count := 0
		for it.Next() {
			count++
		}
		wg.Wait()
		require.NoError(t, it.Err())
		require.Equal(t, n, count)
	})
}

func TestMapAddressOutOfRange(t *testing.T) {
	tm, scope := newTask(t, memory.OnHeap, 16*mib, 4096), newScope(t)
	m := newMap(t, tm, scope, MapConfig{})
	require.True(t, appendKV(t, m, long(1), long(1)))
	require.PanicsWithValue(t, fmt.Sprintf("tungsten: BytesToBytesMap: address %#x points into page 99, which is not held",
		memory.EncodePageNumberAndOffset(99, 8)), func() { m.kv(memory.EncodePageNumberAndOffset(99, 8)) })
	page := m.dataPages[0].Number()
	require.PanicsWithValue(t, fmt.Sprintf("tungsten: BytesToBytesMap: address %#x: offset 4095 past the end of page %d (4096 bytes)",
		memory.EncodePageNumberAndOffset(page, 4095), page), func() { m.kv(memory.EncodePageNumberAndOffset(page, 4095)) })
}
