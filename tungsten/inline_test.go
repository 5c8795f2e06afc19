package tungsten

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// An Aggregator of Int64Key keys and values keeps them in its slots: it must agree with a Go map
// on every key, math.MinInt64 (whose encoding is the empty slot's word) and math.MaxInt64
// included, in memory and spilling, through Insert and InsertAll, and yield keys in order.
func TestAggregatorInlineSlots(t *testing.T) {
	edges := []int64{math.MinInt64, math.MinInt64 + 1, -1, 0, 1, math.MaxInt64 - 1, math.MaxInt64}
	for _, mode := range modes {
		for _, tc := range []struct {
			name             string
			budget, page     int64
			records, keys    int
			insertAll, spill bool
		}{
			{"in memory/Insert", 64 * mib, mib, 40_000, 4_000, false, false},
			{"in memory/InsertAll", 64 * mib, mib, 40_000, 4_000, true, false},
			{"spilling/Insert", 512 << 10, 64 << 10, 200_000, 60_000, false, true},
			{"spilling/InsertAll", 512 << 10, 64 << 10, 200_000, 60_000, true, true},
		} {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				seed := rand.Uint64()
				t.Logf("seed %d", seed)
				r := rand.New(rand.NewPCG(seed, 3))
				keys := append(slices.Clone(edges), make([]int64, tc.keys-len(edges))...)
				for i := len(edges); i < len(keys); i++ {
					keys[i] = int64(r.Uint64())
				}
				in := make([]Pair[int64, int64], tc.records)
				want := map[int64]int64{}
				for i := range in {
					k := keys[r.IntN(len(keys))]
					if i < len(edges) {
						k = edges[i]
					}
					in[i] = Pair[int64, int64]{Key: k, Value: int64(r.IntN(1000)) - 500}
					want[k] += in[i].Value
				}
				tm, scope := newTask(t, mode, tc.budget, tc.page), newScope(t)
				a, err := NewAggregator(ctx, tm, scope, Int64Key{}, Int64Key{}, sum, AggregatorConfig{MergeFactor: 3})
				require.NoError(t, err)
				defer func() { require.NoError(t, a.Close()); require.Zero(t, a.Used()) }()
				require.True(t, a.in.on)
				if tc.insertAll {
					require.NoError(t, a.InsertAll(ctx, storage.SliceIterator(in)))
				} else {
					for _, p := range in {
						require.NoError(t, a.Insert(ctx, p.Key, p.Value))
					}
				}
				if tc.spill { // the array after a spill takes what the task grants, more than doubling reaches
					require.Greater(t, a.Used(), tc.budget/2)
				}
				it, err := a.Iterator(ctx)
				require.NoError(t, err)
				got := map[int64]int64{}
				var order []int64
				for _, p := range collect(t, it) {
					_, dup := got[p.Key]
					require.False(t, dup, "key %d twice", p.Key)
					got[p.Key] = p.Value
					order = append(order, p.Key)
				}
				require.Equal(t, want, got)
				require.True(t, slices.IsSorted(order), "keys come back in order")
				m := a.Metrics()
				t.Logf("metrics %+v", m)
				require.Equal(t, tc.spill, m.Spills > 0)
			})
		}
	}
}

// Other key or value codecs keep the map's records in pages.
func TestAggregatorInlineOnlyForInt64Keys(t *testing.T) {
	tm, scope := newTask(t, memory.OnHeap, 64*mib, mib), newScope(t)
	a, err := NewAggregator(ctx, tm, scope, Int64Key{}, storage.VarintCodec[int64]{}, sum, AggregatorConfig{})
	require.NoError(t, err)
	require.False(t, a.in.on)
	require.NoError(t, a.Close())
}

// String keys with Int64Key values keep their records in pages and merge values in place.
func TestAggregatorIntValues(t *testing.T) {
	strKey := func(i int) string { return fmt.Sprintf("user-1000000%d", i*7919) }
	for _, mode := range modes {
		t.Run(mode.String()+"/in memory", func(t *testing.T) {
			checkAggregation(t, mode, 64*mib, mib, strKey, StringKey{}, Int64Key{}, 50_000, 5_000, false)
		})
		t.Run(mode.String()+"/spilling", func(t *testing.T) {
			checkAggregation(t, mode, 512<<10, 64<<10, strKey, StringKey{}, Int64Key{}, 50_000, 20_000, true)
		})
	}
}

// Another consumer may force an inline Aggregator's unread keys to disk while they are read
// (as a BytesToBytesMap's destructive iterator's pages): they come back from the run, in order,
// and the array is freed. Closing the iterator halfway deletes the run.
func TestAggregatorInlineForcedSpill(t *testing.T) {
	for _, mode := range modes {
		for _, readAll := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/read all %v", mode, readAll), func(t *testing.T) {
				const budget, keys = 4 * mib, 5_000
				tm, scope := newTask(t, mode, budget, 64<<10), newScope(t)
				a, err := NewAggregator(ctx, tm, scope, Int64Key{}, Int64Key{}, sum, AggregatorConfig{})
				require.NoError(t, err)
				for i := range 3 * keys {
					require.NoError(t, a.Insert(ctx, int64(i%keys)-keys/2, 1))
				}
				it, err := a.Iterator(ctx)
				require.NoError(t, err)
				var got []int64
				for range 1000 {
					require.True(t, it.Next())
					got = append(got, it.Value().Key)
				}
				held := a.Used()
				require.Positive(t, held)
				h := newHog(tm)
				h.use(t, budget) // all of it: the aggregator must give its array back
				require.Zero(t, a.Used())
				require.Equal(t, int64(1), a.Metrics().ForcedSpills)
				require.Equal(t, 1, scope.Files())
				if readAll {
					for it.Next() {
						require.Equal(t, int64(3), it.Value().Value)
						got = append(got, it.Value().Key)
					}
					require.NoError(t, it.Err())
					require.Len(t, got, keys)
					require.True(t, slices.IsSorted(got))
					require.Equal(t, int64(-keys/2), got[0])
					require.Zero(t, scope.Files(), "the run is deleted once read")
				}
				require.NoError(t, it.Close())
				require.NoError(t, a.Close())
				h.Spill(0, nil)
			})
		}
	}
}

// After a spill, an inline Aggregator whose memory holds only math.MinInt64 (kept beside the
// slots, not in them) still yields it in the merge, whether or not the rest fits beside the
// merge's readers.
func TestAggregatorInlineZeroKeyAfterSpill(t *testing.T) {
	for _, squeeze := range []bool{false, true} {
		t.Run(fmt.Sprintf("squeezed %v", squeeze), func(t *testing.T) {
			const budget, keys = 16 * mib, 100_000 // the keys fit: the one run is the spill below
			tm, scope := newTask(t, memory.OnHeap, budget, 64<<10), newScope(t)
			a, err := NewAggregator(ctx, tm, scope, Int64Key{}, Int64Key{}, sum, AggregatorConfig{})
			require.NoError(t, err)
			for i := range keys {
				require.NoError(t, a.Insert(ctx, int64(i), 1))
			}
			require.NoError(t, a.spill(ctx))
			require.NoError(t, a.Insert(ctx, math.MinInt64, 7))
			var h *stubborn
			if squeeze {
				h = newStubborn(tm)
				h.use(t, budget-tm.Manager().ExecutionUsedForTask(tm.ID()))
			}
			it, err := a.Iterator(ctx)
			require.NoError(t, err)
			if h != nil {
				h.free()
			}
			got := collect(t, it)
			require.Len(t, got, keys+1)
			require.Equal(t, Pair[int64, int64]{Key: math.MinInt64, Value: 7}, got[0])
			require.Equal(t, Pair[int64, int64]{Key: keys - 1, Value: 1}, got[keys])
			require.NoError(t, a.Close())
			require.Zero(t, tm.Manager().ExecutionUsedForTask(tm.ID()))
			require.Zero(t, scope.Files())
		})
	}
}
