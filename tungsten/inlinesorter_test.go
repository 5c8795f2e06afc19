package tungsten

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// inlineInput returns n random pairs whose keys include math.MinInt64, math.MaxInt64, 0, -1 and
// duplicates.
func inlineInput(r *rand.Rand, n int) []Pair[int64, int64] {
	edges := []int64{math.MinInt64, math.MaxInt64, 0, -1, 1, math.MinInt64 + 1, math.MaxInt64 - 1}
	ps := make([]Pair[int64, int64], n)
	for i := range ps {
		var k int64
		switch x := r.IntN(10); {
		case x == 0:
			k = edges[r.IntN(len(edges))]
		case x < 3:
			k = r.Int64N(100) - 50 // duplicates
		default:
			k = int64(r.Uint64())
		}
		ps[i] = Pair[int64, int64]{Key: k, Value: int64(r.Uint64())}
	}
	return ps
}

// byKeyValue orders pairs by key, then value: the order to compare sorts in which equal keys
// come in no particular order.
func byKeyValue(a, b Pair[int64, int64]) int {
	return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Value, b.Value))
}

// A Sorter of Int64Key keys and values keeps its pairs in the array: it sorts as slices.Sort
// does, ascending and descending, in memory and spilling, in strict and Spark accounting, and
// gives back every byte and file.
func TestSorterInline(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	for _, mode := range modes {
		for _, acc := range []memory.Accounting{memory.Strict, memory.SparkAllowances} {
			for _, desc := range []bool{false, true} {
				for _, spilling := range []bool{false, true} {
					name := fmt.Sprintf("%s/%s/desc=%v/spilling=%v", mode, acc, desc, spilling)
					t.Run(name, func(t *testing.T) {
						r := rand.New(rand.NewPCG(seed, 7))
						n, budget := 30_000, int64(64*mib)
						if spilling {
							n, budget = 100_000, 512<<10
						}
						tm, scope := newTaskWith(t, mode, budget, 64<<10, acc), newScope(t)
						s, err := NewSorter(ctx, tm, scope, Int64Key{}, Int64Key{},
							SorterConfig{Prefix: PrefixComparator{Descending: desc}, InitialSize: 64})
						require.NoError(t, err)
						require.True(t, s.s.inline)
						in := inlineInput(r, n)
						for _, p := range in {
							require.NoError(t, s.Insert(ctx, p.Key, p.Value))
						}
						it, err := s.Iterator(ctx)
						require.NoError(t, err)
						got := collect(t, it)
						require.Len(t, got, n)
						keys := make([]int64, n)
						for i, p := range got {
							keys[i] = p.Key
						}
						want := make([]int64, n)
						for i, p := range in {
							want[i] = p.Key
						}
						slices.Sort(want)
						if desc {
							slices.Reverse(want)
						}
						require.Equal(t, want, keys)
						slices.SortFunc(got, byKeyValue)
						slices.SortFunc(in, byKeyValue)
						require.Equal(t, in, got, "the values travel with their keys")
						if spilling {
							require.Greater(t, s.Metrics().Spills, int64(1))
						} else {
							require.Zero(t, s.Metrics().Spills)
						}
						require.NoError(t, s.Close())
						require.Zero(t, s.Used())
						require.Zero(t, tm.Manager().ExecutionUsedForTask(tm.ID()))
						require.Zero(t, scope.Files())
					})
				}
			}
		}
	}
}

// After a spill the inline array is as large as the task grants, up to twice the one spilled:
// at a budget of 8 MiB a run holds far more than the array that doubling alone reaches.
func TestSorterInlineArrayAfterSpill(t *testing.T) {
	const budget = 8 * mib
	tm, scope := newTask(t, memory.OnHeap, budget, 64<<10), newScope(t)
	s, err := NewSorter(ctx, tm, scope, Int64Key{}, Int64Key{}, SorterConfig{})
	require.NoError(t, err)
	const n = 2_000_000 // 32 MB of pairs
	for i := range n {
		require.NoError(t, s.Insert(ctx, int64(i*7919%n), int64(i)))
	}
	// Pairs of 16 bytes in most of the budget: a run per ~0.5M pairs, not per 2.6 MiB array.
	require.LessOrEqual(t, s.Metrics().Spills, int64(6))
	it, err := s.Iterator(ctx)
	require.NoError(t, err)
	for i := range n {
		require.True(t, it.Next())
		require.Equal(t, int64(i), it.Value().Key)
	}
	require.False(t, it.Next())
	require.NoError(t, it.Err())
	require.NoError(t, s.Close())
}

// Another consumer may force the unread in-memory pairs to disk while they are read, alone or
// merged with runs: reading goes on from the forced run, in order, the array is freed, and
// closing halfway deletes every file.
func TestSorterInlineForcedSpill(t *testing.T) {
	for _, mode := range modes {
		for _, runs := range []bool{false, true} {
			for _, readAll := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/runs=%v/read all=%v", mode, runs, readAll), func(t *testing.T) {
					const budget = 4 * mib
					tm, scope := newTask(t, mode, budget, 64<<10), newScope(t)
					s, err := NewSorter(ctx, tm, scope, Int64Key{}, Int64Key{}, SorterConfig{})
					require.NoError(t, err)
					const n = 20_000
					for i := range n {
						require.NoError(t, s.Insert(ctx, int64((i*7919)%n)-n/2, int64(i)))
						if runs && i == n/2 {
							spilled, err := s.Unwrap().Spill(math.MaxInt64, s.Unwrap())
							require.NoError(t, err)
							require.Positive(t, spilled)
						}
					}
					it, err := s.Iterator(ctx)
					require.NoError(t, err)
					var got []int64
					for range 1000 {
						require.True(t, it.Next())
						got = append(got, it.Value().Key)
					}
					require.Positive(t, s.Used())
					h := newHog(tm)
					h.use(t, budget-tm.Manager().ExecutionUsedForTask(tm.ID())+s.Used())
					require.Zero(t, s.Used())
					require.Equal(t, int64(1), s.Metrics().ForcedSpills)
					if readAll {
						for it.Next() {
							got = append(got, it.Value().Key)
						}
						require.NoError(t, it.Err())
						require.Len(t, got, n)
						require.True(t, slices.IsSorted(got))
						require.Equal(t, int64(-n/2), got[0])
					}
					require.NoError(t, it.Close())
					require.NoError(t, s.Close())
					require.Zero(t, scope.Files())
					h.Spill(0, nil)
				})
			}
		}
	}
}

// The ExternalSorter of a Sorter of inline pairs holds no pages: inserting a record into it is a
// programmer error.
func TestSorterInlineInsertRecordPanics(t *testing.T) {
	tm, scope := newTask(t, memory.OnHeap, 4*mib, 64<<10), newScope(t)
	s, err := NewSorter(ctx, tm, scope, Int64Key{}, Int64Key{}, SorterConfig{})
	require.NoError(t, err)
	require.PanicsWithValue(t, "tungsten: InsertRecord into a Sorter's ExternalSorter of inline pairs", func() {
		_ = s.Unwrap().InsertRecord(ctx, make([]byte, 20), 0, false)
	})
	require.NoError(t, s.Close())
}

// A damaged run of inline pairs is storage.ErrCorrupt, as is a run whose records are not the
// 16 bytes of a pair.
func TestSorterInlineCorruptRun(t *testing.T) {
	for _, damage := range []string{"flip", "truncate", "not inline"} {
		t.Run(damage, func(t *testing.T) {
			tm, scope := newTask(t, memory.OnHeap, 16*mib, 64<<10), newScope(t)
			s, err := NewSorter(ctx, tm, scope, Int64Key{}, Int64Key{}, SorterConfig{})
			require.NoError(t, err)
			defer func() { require.NoError(t, s.Close()) }()
			for i := range 10_000 {
				require.NoError(t, s.Insert(ctx, int64(i*7919%10_000), int64(i)))
			}
			spill(t, s.Unwrap())
			require.NoError(t, s.Insert(ctx, 1, 1))
			runs := s.Unwrap().spills
			require.Len(t, runs, 1)
			require.True(t, runs[0].inline)
			path, err := scope.Manager().File(runs[0].id)
			require.NoError(t, err)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			switch damage {
			case "flip":
				data[len(data)/2] ^= 0xff
			case "truncate":
				data = data[:len(data)-10]
			default:
				runs[0].inline = false // its 16-byte records then lack a 4-byte length word
			}
			require.NoError(t, os.WriteFile(path, data, 0o600))
			it, err := s.Iterator(ctx)
			if err == nil { // the damage may show when the first record of the run is loaded
				for it.Next() {
				}
				err = it.Err()
				require.NoError(t, it.Close())
			}
			require.ErrorIs(t, err, storage.ErrCorrupt)
		})
	}
}
