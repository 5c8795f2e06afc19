package tungsten

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

func sum(a, b int64) int64 { return a + b }

func collect[T any](t *testing.T, it storage.Iterator[T]) []T {
	t.Helper()
	var out []T
	for it.Next() {
		out = append(out, it.Value())
	}
	require.NoError(t, it.Err())
	require.NoError(t, it.Close())
	return out
}

// checkAggregation aggregates n random records over keys distinct keys and compares with a Go
// map. Values use the codec given (a varint codec makes values grow in place and out of place).
func checkAggregation[K cmp.Ordered](t *testing.T, mode memory.Mode, budget, page int64, keyOf func(int) K,
	keys KeyCodec[K], values storage.Codec[int64], n, distinct int, wantSpills bool) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	tm, scope := newTask(t, mode, budget, page), newScope(t)
	a, err := NewAggregator(ctx, tm, scope, keys, values, sum, AggregatorConfig{MergeFactor: 3})
	require.NoError(t, err)
	defer func() { require.NoError(t, a.Close()) }()
	want := map[K]int64{}
	for range n {
		k, v := keyOf(r.IntN(distinct)), int64(r.IntN(1000))
		want[k] += v
		require.NoError(t, a.Insert(ctx, k, v))
	}
	it, err := a.Iterator(ctx)
	require.NoError(t, err)
	got := map[K]int64{}
	var order []K
	for _, p := range collect(t, it) {
		_, dup := got[p.Key]
		require.False(t, dup, "key %v twice", p.Key)
		got[p.Key] = p.Value
		order = append(order, p.Key)
	}
	require.Equal(t, want, got)
	m := a.Metrics()
	t.Logf("metrics %+v", m)
	if wantSpills {
		require.Positive(t, m.Spills)
		require.True(t, slices.IsSorted(order), "spilled aggregation comes back in key order")
	} else {
		require.Zero(t, m.Spills)
	}
}

func TestAggregator(t *testing.T) {
	intKey := func(i int) int64 { return int64(i*7919) - 5000 }
	strKey := func(i int) string { return fmt.Sprintf("key-%d", i*7919) }
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Run("int64/in memory", func(t *testing.T) {
				checkAggregation(t, mode, 64*mib, 1*mib, intKey, Int64Key{}, Int64Key{}, 50_000, 5_000, false)
			})
			t.Run("int64/spilling", func(t *testing.T) {
				checkAggregation(t, mode, 512<<10, 64<<10, intKey, Int64Key{}, Int64Key{}, 50_000, 20_000, true)
			})
			t.Run("string/spilling/varint values", func(t *testing.T) {
				checkAggregation(t, mode, 512<<10, 64<<10, strKey, StringKey{}, storage.VarintCodec[int64]{}, 50_000, 20_000, true)
			})
			t.Run("string/in memory/varint values", func(t *testing.T) {
				checkAggregation(t, mode, 64*mib, 1*mib, strKey, StringKey{}, storage.VarintCodec[int64]{}, 50_000, 5_000, false)
			})
		})
	}
}

func checkSort[K cmp.Ordered](t *testing.T, mode memory.Mode, budget, page int64, keys KeyCodec[K], keyOf func(*rand.Rand) K, n int, desc, wantSpills bool) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	tm, scope := newTask(t, mode, budget, page), newScope(t)
	s, err := NewSorter(ctx, tm, scope, keys, Int64Key{}, SorterConfig{Prefix: PrefixComparator{Descending: desc}, MergeFactor: 4})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	var want []Pair[K, int64]
	for i := range n {
		p := Pair[K, int64]{Key: keyOf(r), Value: int64(i)}
		want = append(want, p)
		require.NoError(t, s.Insert(ctx, p.Key, p.Value))
	}
	it, err := s.Iterator(ctx)
	require.NoError(t, err)
	got := collect(t, it)
	require.Len(t, got, n)
	require.True(t, slices.IsSortedFunc(got, func(a, b Pair[K, int64]) int {
		if desc {
			return cmp.Compare(b.Key, a.Key)
		}
		return cmp.Compare(a.Key, b.Key)
	}))
	byValue := func(a, b Pair[K, int64]) int { return cmp.Compare(a.Value, b.Value) }
	slices.SortFunc(got, byValue)
	require.Equal(t, want, got)
	t.Logf("metrics %+v", s.Metrics())
	require.Equal(t, wantSpills, s.Metrics().Spills > 0)
}

func TestSorter(t *testing.T) {
	intKey := func(r *rand.Rand) int64 { return r.Int64N(1<<40) - 1<<39 }
	strKey := func(r *rand.Rand) string { return fmt.Sprintf("k%x", r.IntN(1<<30)) }
	for _, mode := range modes {
		for _, desc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/desc=%v", mode, desc), func(t *testing.T) {
				t.Run("int64/in memory", func(t *testing.T) {
					checkSort(t, mode, 64*mib, 1*mib, Int64Key{}, intKey, 20_000, desc, false)
				})
				t.Run("int64/spilling", func(t *testing.T) {
					checkSort(t, mode, 256<<10, 32<<10, Int64Key{}, intKey, 50_000, desc, true)
				})
				t.Run("string/spilling", func(t *testing.T) {
					checkSort(t, mode, 256<<10, 32<<10, StringKey{}, strKey, 50_000, desc, true)
				})
			})
		}
	}
}

// Cancellation while merging: the iterator stops with ctx's error and Close leaves nothing.
func TestCancelledMerge(t *testing.T) {
	tm, scope := newTask(t, memory.OnHeap, 256<<10, 32<<10), newScope(t)
	s, err := NewSorter(ctx, tm, scope, Int64Key{}, Int64Key{}, SorterConfig{})
	require.NoError(t, err)
	for i := range 50_000 {
		require.NoError(t, s.Insert(ctx, int64(-i), 0))
	}
	require.Positive(t, s.Metrics().Spills)
	cctx, cancel := context.WithCancel(ctx)
	it, err := s.Iterator(cctx)
	require.NoError(t, err)
	require.True(t, it.Next())
	cancel()
	for it.Next() {
	}
	require.ErrorIs(t, it.Err(), context.Canceled)
	require.NoError(t, s.Close())
	require.Zero(t, s.Used())
}

// A corrupt or truncated spill file is storage.ErrCorrupt.
func TestCorruptSpill(t *testing.T) {
	for _, damage := range []string{"flip", "truncate"} {
		t.Run(damage, func(t *testing.T) {
			tm, scope := newTask(t, memory.OnHeap, 16*mib, 64<<10), newScope(t)
			s := newSorter(t, tm, scope, uesConfig(true))
			for i := range 10_000 {
				insertNumber(t, s, i)
			}
			spill(t, s)
			insertNumber(t, s, 1)
			require.Len(t, s.spills, 1)
			path, err := scope.Manager().File(s.spills[0].id)
			require.NoError(t, err)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			if damage == "flip" {
				data[len(data)/2] ^= 0xff
			} else {
				data = data[:len(data)-10]
			}
			require.NoError(t, os.WriteFile(path, data, 0o600))
			it, err := s.SortedIterator(ctx)
			if err == nil { // the damage may show when the first record of the run is loaded
				for it.Next() {
				}
				err = it.Err()
				require.NoError(t, it.Close())
			}
			require.ErrorIs(t, err, storage.ErrCorrupt)
		})
	}
	t.Run("fewer records than written", func(t *testing.T) {
		tm, scope := newTask(t, memory.OnHeap, 16*mib, 64<<10), newScope(t)
		s := newSorter(t, tm, scope, uesConfig(true))
		insertNumber(t, s, 1)
		insertNumber(t, s, 2)
		spill(t, s)
		s.spills[0].records = 3
		it := sorted(t, s)
		for it.Next() {
		}
		require.ErrorIs(t, it.Err(), storage.ErrCorrupt)
		require.ErrorContains(t, it.Err(), "ends after 2 records, 3 were written")
	})
}

func FuzzRecordDecoders(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0, 0, 'a', 'b', 'c', 1})
	f.Add([]byte{255, 255, 255, 127, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, rec []byte) {
		_, data, err := decodeSpillRecord(rec)
		if err != nil {
			require.ErrorIs(t, err, storage.ErrCorrupt)
			return
		}
		k, v, err := splitKV(data)
		if err != nil {
			require.ErrorIs(t, err, storage.ErrCorrupt)
			return
		}
		require.Equal(t, len(data), uao+len(k)+len(v))
		_, _, err = Int64Key{}.Decode(k)
		if err != nil {
			require.ErrorIs(t, err, storage.ErrCorrupt)
		}
	})
}

func TestSorterAddressOutOfRange(t *testing.T) {
	tm, scope := newTask(t, memory.OnHeap, 16*mib, 4096), newScope(t)
	s := newSorter(t, tm, scope, uesConfig(true))
	insertNumber(t, s, 1)
	page := s.pages[0].Number()
	require.PanicsWithValue(t, fmt.Sprintf("tungsten: UnsafeExternalSorter: address %#x: offset 4094 past the end of page %d (4096 bytes)",
		memory.EncodePageNumberAndOffset(page, 4094), page), func() { s.record(memory.EncodePageNumberAndOffset(page, 4094)) })
	require.PanicsWithValue(t, fmt.Sprintf("tungsten: UnsafeExternalSorter: address %#x: record of 4 bytes at offset 4090 overruns page %d (4096 bytes)",
		memory.EncodePageNumberAndOffset(page, 4090), page), func() {
		copy(s.pages[0].Bytes()[4090:], int4(4))
		s.record(memory.EncodePageNumberAndOffset(page, 4090))
	})
	require.PanicsWithValue(t, fmt.Sprintf("tungsten: UnsafeExternalSorter: address %#x points into page 77, which is not held",
		memory.EncodePageNumberAndOffset(77, 0)), func() { s.record(memory.EncodePageNumberAndOffset(77, 0)) })
}

// A spill that cannot create its file fails the insert, and every later call, with the error;
// Close still frees everything.
func TestAggregatorSpillFailure(t *testing.T) {
	tm, scope := newTask(t, memory.OnHeap, 512<<10, 64<<10), newScope(t)
	a, err := NewAggregator(ctx, tm, scope, Int64Key{}, Int64Key{}, sum, AggregatorConfig{})
	require.NoError(t, err)
	require.NoError(t, scope.Close())
	for i := range 1_000_000 {
		if err = a.Insert(ctx, int64(i), 1); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, storage.ErrClosed)
	require.ErrorIs(t, a.Insert(ctx, 1, 1), storage.ErrClosed)
	_, err = a.Iterator(ctx)
	require.ErrorIs(t, err, storage.ErrClosed)
	require.NoError(t, a.Close())
	require.Zero(t, a.Used())
}

// Spilled runs whose keys share a long start, then a shorter one, then none (keys that are
// starts of others, the empty key): the merge orders the keys by their bytes past the start
// all share, whatever each run's, and combines equal keys, in rounds or at once.
func TestAggregatorSharedStarts(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	for _, mode := range modes {
		for _, factor := range []int{2, 64} {
			t.Run(fmt.Sprintf("%s/merge factor %d", mode, factor), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 6))
				tm, scope := newTask(t, mode, 512<<10, 64<<10), newScope(t)
				a, err := NewAggregator(ctx, tm, scope, StringKey{}, Int64Key{}, sum, AggregatorConfig{MergeFactor: factor})
				require.NoError(t, err)
				defer func() { require.NoError(t, a.Close()) }()
				want := map[string]int64{}
				phases := []func() string{
					func() string { return fmt.Sprintf("user-100000%06d", r.IntN(30_000)) },
					func() string { return fmt.Sprintf("user-100000%06d", r.IntN(30_000))[:11+r.IntN(7)] },
					func() string { return fmt.Sprintf("user-1%d", r.IntN(30_000)) },
					func() string { return []string{"", "u", "user-", "user-100000", "zz\x00", "zz"}[r.IntN(6)] },
				}
				for _, key := range phases {
					for range 20_000 {
						k, v := key(), int64(r.IntN(1000))
						want[k] += v
						require.NoError(t, a.Insert(ctx, k, v))
					}
				}
				it, err := a.Iterator(ctx)
				require.NoError(t, err)
				got := map[string]int64{}
				var order []string
				for _, p := range collect(t, it) {
					got[p.Key] = p.Value
					order = append(order, p.Key)
				}
				require.Equal(t, want, got)
				require.Len(t, order, len(want), "each key once")
				require.True(t, slices.IsSorted(order), "key order")
				m := a.Metrics()
				t.Logf("metrics %+v", m)
				require.Greater(t, m.Spills, int64(2))
				if factor == 2 {
					require.Positive(t, m.MergePasses)
				}
			})
		}
	}
}
