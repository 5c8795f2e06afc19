package collection

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"slices"
	"testing"
	"time"
	"weak"

	"github.com/dustin/go-humanize"
	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
	"github.com/spillway/spillway/storage/faultfs"
)

// collected runs the garbage collector until the objects of every wp are gone, at most 50
// times: one collection normally suffices, the bound keeps the check independent of GC timing.
func collected[T any](wps ...weak.Pointer[T]) bool {
	for range 50 {
		runtime.GC()
		if !slices.ContainsFunc(wps, func(wp weak.Pointer[T]) bool { return wp.Value() != nil }) {
			return true
		}
	}
	return false
}

// liveHeap returns the live heap after a full collection (runtime/metrics /gc/heap/live:bytes).
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// tableOf returns a weak pointer to the backing array of m's in-memory table.
func tableOf[K comparable, V, C any](m *ExternalAppendOnlyMap[K, V, C]) weak.Pointer[slot[K, C]] {
	return weak.Make(&m.current.AppendOnlyMap.data[0])
}

// TestEAOM10SpillDuringIterationReleasesMap is EAOM-10 ("SPARK-22713 spill during iteration
// leaks internal map").
func TestEAOM10SpillDuringIterationReleasesMap(t *testing.T) {
	m := newIntListMap(t, ExternalMapConfig[int]{})
	ctx := context.Background()
	for i := range 1000 {
		require.NoError(t, m.Insert(ctx, i/10, i))
	}
	require.Zero(t, m.NumSpills())
	table := tableOf(m)
	it, err := m.Iterator(ctx)
	require.NoError(t, err)
	seen := map[int]bool{}
	check := func() {
		require.True(t, it.Next())
		p := it.Value()
		var want []int
		for j := range 10 {
			want = append(want, 10*p.Key+j)
		}
		require.Equal(t, want, sorted(p.Value))
		require.False(t, seen[p.Key])
		seen[p.Key] = true
	}
	for range 50 {
		check()
	}
	require.Zero(t, m.NumSpills())
	_, err = m.Spill(math.MaxInt64, nil) // what the TaskManager does for another consumer
	require.NoError(t, err)
	require.Equal(t, 1, m.NumSpills())
	require.Equal(t, int64(1), m.Metrics().ForcedSpills)
	require.True(t, collected(table), "the in-memory table is still reachable after the forced spill")
	for range 50 {
		check()
	}
	require.False(t, it.Next())
	require.NoError(t, it.Err())
	require.Len(t, seen, 100)
	for k := range 100 {
		require.True(t, seen[k])
	}
	_, err = m.Spill(math.MaxInt64, nil)
	require.NoError(t, err, "a forced spill after the end is a no-op")
}

// countSum is E2's combiner in the contention test: how many records a key got and their sum.
type countSum struct{ N, Sum int64 }

var countSumCodec = storage.FuncCodec[countSum]{
	AppendFunc: func(dst []byte, v countSum) []byte { return int64Codec.Append(int64Codec.Append(dst, v.N), v.Sum) },
	DecodeFunc: func(src []byte) (countSum, int, error) {
		n, a, err := int64Codec.Decode(src)
		if err != nil {
			return countSum{}, 0, err
		}
		s, b, err := int64Codec.Decode(src[a:])
		return countSum{n, s}, a + b, err
	},
}

func countSumAgg() Aggregator[int64, int64, countSum] {
	return Aggregator[int64, int64, countSum]{
		CreateCombiner: func(v int64) countSum { return countSum{1, v} },
		MergeValue:     func(c countSum, v int64) countSum { return countSum{c.N + 1, c.Sum + v} },
		MergeCombiners: func(a, b countSum) countSum { return countSum{a.N + b.N, a.Sum + b.Sum} },
	}
}

// TestTwoMapContention is issue 5's two-map test, the situation of SPARK-22713 (PageRank): in
// one task with a small budget, map E1 is filled and read while every record read is inserted
// into map E2. E2's demand makes the TaskManager force-spill E1 in the middle of its iteration.
// E1's in-memory table must become unreachable, the live heap stay within the budget plus a
// stated slack, and both maps produce exactly the model's result.
//
// In the "drained" variant E2 folds E1's keys into 1000 buckets, so it stays small: E1 is never
// spilled, and its table must become unreachable, and its memory released, when its iterator
// ends.
func TestTwoMapContention(t *testing.T) {
	const (
		budget = 4 << 20
		// keys fit E1 in a table of 2^16 slots (1.5 MiB), whose doubling from 2^15 slots holds
		// both arrays (2.25 MiB, accounted in memory.Strict) within the budget.
		keys    = 40_000
		records = 200_000
		free    = 256 << 10 // each map's first acquisition (free allowance in SparkAllowances)
		// slack covers what the memory manager does not account: the spill reader's and writer's
		// buffers (BatchBytes, the 32 KiB file buffer, compression), estimation error and the
		// test's own bookkeeping (and both free allowances in SparkAllowances).
		slack = 2*free + 2<<20
	)
	for _, tc := range []struct {
		name    string
		e2Key   func(int64) int64
		drained bool
	}{
		{"force-spilled mid-iteration", func(k int64) int64 { return k }, false},
		{"drained", func(k int64) int64 { return k % 1000 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			tm := newTestTask(t, budget)
			scope := newTestScope(t, nil)
			cfg := SpillConfig{InitialThreshold: free, BatchBytes: 64 << 10}
			// E2's results go into slices allocated before the baseline, so the test's own
			// bookkeeping is not counted against the budget.
			got := make([]countSum, keys)
			seen := make([]bool, keys)
			base := liveHeap()
			var peak int64
			sample := func() {
				peak = max(peak, liveHeap()-base)
			}

			e1, err := NewExternalAppendOnlyMap(tm, scope, sumAgg[int64](), int64Codec, int64Codec,
				ExternalMapConfig[int64]{SpillConfig: cfg, Name: "E1"})
			require.NoError(t, err)
			defer func() { require.NoError(t, e1.Close()) }()
			e2, err := NewExternalAppendOnlyMap(tm, scope, countSumAgg(), int64Codec, countSumCodec,
				ExternalMapConfig[int64]{SpillConfig: cfg, Name: "E2"})
			require.NoError(t, err)
			defer func() { require.NoError(t, e2.Close()) }()

			for i := range int64(records) {
				require.NoError(t, e1.Insert(ctx, i%keys, i))
			}
			sample()
			require.Zero(t, e1.NumSpills(), "E1 must fit in memory for this test")
			table := tableOf(e1)

			it1, err := e1.Iterator(ctx)
			require.NoError(t, err)
			read, spilledAt := 0, -1
			for it1.Next() {
				p := it1.Value()
				require.NoError(t, e2.Insert(ctx, tc.e2Key(p.Key), p.Value))
				read++
				if spilledAt < 0 && e1.Metrics().ForcedSpills > 0 {
					spilledAt = read
					require.True(t, collected(table), "E1's table is reachable after its forced spill")
					sample()
				}
				if read%(keys/10) == 0 {
					sample()
				}
			}
			require.NoError(t, it1.Err())
			require.Equal(t, keys, read)
			if tc.drained {
				require.Equal(t, -1, spilledAt, "E1 was spilled")
				require.True(t, collected(table), "E1's table is reachable after its iterator ended")
			} else {
				require.Positive(t, spilledAt, "E1 was not force-spilled")
				require.Less(t, spilledAt, keys, "E1 was force-spilled after its end")
				t.Logf("E1 force-spilled after %d of %d keys read", spilledAt, keys)
			}
			require.Zero(t, e1.Used(), "E1 holds memory after its iterator ended")

			it2, err := e2.Iterator(ctx)
			require.NoError(t, err)
			n := 0
			for it2.Next() {
				p := it2.Value()
				require.False(t, seen[p.Key], "key %d returned twice", p.Key)
				seen[p.Key], got[p.Key] = true, p.Value
				if n++; n%(keys/10) == 0 {
					sample()
				}
			}
			require.NoError(t, it2.Err())
			t.Logf("peak live heap %s over a budget of %s + slack %s; E2 spills %d",
				humanize.IBytes(uint64(peak)), humanize.IBytes(budget), humanize.IBytes(slack), e2.NumSpills())
			require.LessOrEqual(t, peak, int64(budget+slack), "live heap beyond budget + slack")

			// The model: a built-in map over the same records.
			e1Model := map[int64]int64{}
			for i := range int64(records) {
				e1Model[i%keys] += i
			}
			want := map[int64]countSum{}
			for k, s := range e1Model {
				c := want[tc.e2Key(k)]
				want[tc.e2Key(k)] = countSum{c.N + 1, c.Sum + s}
			}
			gotMap := map[int64]countSum{}
			for k, ok := range seen {
				if ok {
					gotMap[int64(k)] = got[k]
				}
			}
			require.Equal(t, want, gotMap)
		})
	}
}

// TestExternalMapMetamorphic feeds the same random input through an unlimited map and maps on
// tiny budgets (many spills, forced spills while reading, colliding hashes): the outputs must be
// equal.
func TestExternalMapMetamorphic(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	n := 5000 + rng.IntN(5000)
	keySpace := 1 + rng.IntN(3000)
	in := make([]Pair[int, int], n)
	for i := range in {
		in[i] = Pair[int, int]{Key: rng.IntN(keySpace), Value: rng.IntN(1000)}
	}
	run := func(t *testing.T, budget int64, cfg ExternalMapConfig[int], spillEvery int) map[int][]int {
		m, err := NewExternalAppendOnlyMap(newSparkTask(t, budget), newTestScope(t, nil), listAgg[int, int](), intCodec, intsCodec, cfg)
		require.NoError(t, err)
		defer func() { require.NoError(t, m.Close()) }()
		require.NoError(t, m.InsertAll(context.Background(), SliceIterator(in)))
		it, err := m.Iterator(context.Background())
		require.NoError(t, err)
		out := map[int][]int{}
		for it.Next() {
			p := it.Value()
			if _, dup := out[p.Key]; dup {
				t.Fatalf("key %d returned twice", p.Key)
			}
			out[p.Key] = sorted(p.Value)
			if spillEvery > 0 && len(out)%spillEvery == 0 {
				_, err := m.Spill(math.MaxInt64, nil)
				require.NoError(t, err)
			}
		}
		require.NoError(t, it.Err())
		t.Logf("spills %d, metrics %+v", m.NumSpills(), m.Metrics())
		return out
	}
	want := run(t, 1<<30, ExternalMapConfig[int]{}, 0)
	collide := HasherFunc(func(k int) uint64 { return uint64(k % 7) })
	for _, tc := range []struct {
		name       string
		budget     int64
		cfg        ExternalMapConfig[int]
		spillEvery int
	}{
		{"tiny budget", 64 << 10, ExternalMapConfig[int]{SpillConfig: SpillConfig{InitialThreshold: NoInitialThreshold, BatchSize: 7}}, 0},
		{"force threshold", 1 << 30, ExternalMapConfig[int]{SpillConfig: SpillConfig{ForceSpillElements: int64(1 + rng.IntN(500))}}, 0},
		{"collisions", 64 << 10, ExternalMapConfig[int]{SpillConfig: SpillConfig{InitialThreshold: NoInitialThreshold, ForceSpillElements: 300}, Hasher: collide}, 0},
		{"forced spills while reading", 64 << 10, ExternalMapConfig[int]{SpillConfig: SpillConfig{ForceSpillElements: 700}}, 1 + rng.IntN(300)},
		{"no spill, forced while reading", 1 << 30, ExternalMapConfig[int]{}, 1 + rng.IntN(300)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, want, run(t, tc.budget, tc.cfg, tc.spillEvery))
		})
	}
}

// TestExternalMapCleanup checks that spill files are deleted and memory released after Close,
// after an early Close in the middle of an iteration, and after a write error.
func TestExternalMapCleanup(t *testing.T) {
	ctx := context.Background()
	fill := func(t *testing.T, fs storage.FS) (*ExternalAppendOnlyMap[int, int, []int], *storage.Scope, error) {
		scope := newTestScope(t, fs)
		m, err := NewExternalAppendOnlyMap(newTestTask(t, 1<<20), scope, listAgg[int, int](), intCodec, intsCodec,
			ExternalMapConfig[int]{SpillConfig: SpillConfig{InitialThreshold: NoInitialThreshold, ForceSpillElements: 500, BatchSize: 50}})
		require.NoError(t, err)
		for i := range 5000 {
			if err := m.Insert(ctx, i%1500, i); err != nil {
				return m, scope, err
			}
		}
		return m, scope, nil
	}
	t.Run("close without reading", func(t *testing.T) {
		m, scope, err := fill(t, nil)
		require.NoError(t, err)
		require.Positive(t, scope.Files())
		require.NoError(t, m.Close())
		require.Zero(t, scope.Files())
		require.Zero(t, m.Used())
		require.NoError(t, m.Close(), "Close twice")
	})
	t.Run("early close mid-iteration", func(t *testing.T) {
		m, scope, err := fill(t, nil)
		require.NoError(t, err)
		it, err := m.Iterator(ctx)
		require.NoError(t, err)
		for range 100 {
			require.True(t, it.Next())
		}
		require.NoError(t, m.Close())
		require.Zero(t, scope.Files())
		require.False(t, it.Next())
		require.NoError(t, it.Close())
	})
	t.Run("iterator close mid-iteration", func(t *testing.T) {
		m, scope, err := fill(t, nil)
		require.NoError(t, err)
		it, err := m.Iterator(ctx)
		require.NoError(t, err)
		require.True(t, it.Next())
		require.NoError(t, it.Close())
		require.Zero(t, scope.Files())
		require.Zero(t, m.Used())
		require.NoError(t, m.Close())
	})
	t.Run("write error", func(t *testing.T) {
		m, scope, err := fill(t, faultfs.New(nil, 0, faultfs.Rule{Op: faultfs.Write, AfterBytes: 3000}))
		require.ErrorIs(t, err, faultfs.ErrInjected)
		require.ErrorContains(t, err, "spill")
		require.ErrorIs(t, m.Insert(ctx, 1, 1), faultfs.ErrInjected, "the error sticks")
		_, ierr := m.Iterator(ctx)
		require.ErrorIs(t, ierr, faultfs.ErrInjected)
		require.NoError(t, m.Close())
		require.Zero(t, scope.Files())
		require.Zero(t, m.Used())
	})
	t.Run("write error in a forced spill while reading", func(t *testing.T) {
		fs := faultfs.New(nil, 0, faultfs.Rule{Op: faultfs.Write, Prob: 1})
		fs.SetEnabled(false)
		m, scope, err := fill(t, fs)
		require.NoError(t, err)
		it, err := m.Iterator(ctx)
		require.NoError(t, err)
		require.True(t, it.Next())
		fs.SetEnabled(true)
		_, err = m.Spill(math.MaxInt64, nil)
		require.ErrorIs(t, err, faultfs.ErrInjected)
		for it.Next() {
		}
		require.ErrorIs(t, it.Err(), faultfs.ErrInjected)
		require.NoError(t, m.Close())
		require.Zero(t, scope.Files())
		require.Zero(t, m.Used())
	})
	t.Run("cancelled while waiting for memory", func(t *testing.T) {
		// Another task holds the whole pool, so this task waits for its 1/2N share until the
		// context ends: the test cancels it once the insert is seen waiting.
		mm, err := memory.NewUnifiedManager(memory.Config{SystemMemory: 1 << 20, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 1})
		require.NoError(t, err)
		hog := newTestConsumer(memory.NewTaskManager(mm, 2, memory.TaskConfig{}))
		require.Equal(t, int64(1<<20), hog.use(t, 1<<20))
		defer hog.free(1 << 20)
		m, err := NewExternalAppendOnlyMap(memory.NewTaskManager(mm, 1, memory.TaskConfig{}), newTestScope(t, nil),
			listAgg[int, int](), intCodec, intsCodec, ExternalMapConfig[int]{SpillConfig: SpillConfig{InitialThreshold: NoInitialThreshold}})
		require.NoError(t, err)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- m.Insert(cctx, 1, 1) }()
		awaitWaiting(mm, 1)
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		require.ErrorIs(t, m.Insert(ctx, 1, 1), context.Canceled, "the error sticks")
		require.NoError(t, m.Close())
		require.Zero(t, mm.ExecutionUsedForTask(1))
	})
}

// hookIterator is an Iterator that calls hook before each element whose index is a positive
// multiple of every; the first error of hook ends it (in err).
type hookIterator[T any] struct {
	Iterator[T]
	every, i int
	hook     func() error
	err      error
}

func (h *hookIterator[T]) Next() bool {
	if h.i > 0 && h.i%h.every == 0 && h.err == nil {
		h.err = h.hook()
	}
	h.i++
	return h.err == nil && h.Iterator.Next()
}

// TestExternalMapInsertAllBatches checks InsertAll's batching: forced spills from another
// goroutine land between batches (while InsertAll reads its input) and lose nothing, and a
// cancelled context stops InsertAll between batches without breaking the map.
func TestExternalMapInsertAllBatches(t *testing.T) {
	ctx := context.Background()
	const n, keys = 20_000, 3000
	in := make([]Pair[int64, int64], n)
	want := map[int64]int64{}
	for i := range in {
		in[i] = Pair[int64, int64]{Key: int64(i % keys), Value: int64(i)}
		want[int64(i%keys)] += int64(i)
	}
	t.Run("forced spills while inserting", func(t *testing.T) {
		m, err := NewExternalAppendOnlyMap(newTestTask(t, 64<<20), newTestScope(t, nil), sumAgg[int64](), int64Codec, int64Codec,
			ExternalMapConfig[int64]{SpillConfig: SpillConfig{InitialThreshold: NoInitialThreshold}})
		require.NoError(t, err)
		defer func() { require.NoError(t, m.Close()) }()
		// Before every 2000th record, InsertAll's input has another goroutine force-spill the map
		// and waits for it: InsertAll reads its input without the lock, so the spill lands between
		// two batches, at a point fixed by the data.
		const every = 2000
		calls := 0
		input := &hookIterator[Pair[int64, int64]]{Iterator: SliceIterator(in), every: every, hook: func() error {
			calls++
			done := make(chan error)
			go func() {
				_, err := m.Spill(math.MaxInt64, nil)
				done <- err
			}()
			return <-done
		}}
		require.NoError(t, m.InsertAll(ctx, input))
		require.NoError(t, input.err)
		require.Equal(t, n/every, calls, "before records 2000, 4000, … and at the end")
		require.Equal(t, calls, m.NumSpills(), "every forced spill found records to spill")
		require.Equal(t, int64(calls), m.Metrics().ForcedSpills)
		it, err := m.Iterator(ctx)
		require.NoError(t, err)
		got := map[int64]int64{}
		for it.Next() {
			p := it.Value()
			if _, dup := got[p.Key]; dup {
				t.Fatalf("key %d returned twice", p.Key)
			}
			got[p.Key] = p.Value
		}
		require.NoError(t, it.Err())
		require.Equal(t, want, got)
	})
	t.Run("cancelled", func(t *testing.T) {
		m, err := NewExternalAppendOnlyMap(newTestTask(t, 64<<20), newTestScope(t, nil), sumAgg[int64](), int64Codec, int64Codec,
			ExternalMapConfig[int64]{})
		require.NoError(t, err)
		defer func() { require.NoError(t, m.Close()) }()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		require.ErrorIs(t, m.InsertAll(cctx, SliceIterator(in)), context.Canceled)
		require.NoError(t, m.InsertAll(ctx, SliceIterator(in)), "a cancelled InsertAll leaves the map usable")
		it, err := m.Iterator(ctx)
		require.NoError(t, err)
		got := map[int64]int64{}
		for p, err := range All(it) {
			require.NoError(t, err)
			got[p.Key] = p.Value
		}
		require.Equal(t, want, got)
	})
}
