package executor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/estimator"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

// table returns an input of parts partitions whose partition p holds n records (key(p, i),
// val(p, i)), generated as they are read.
func table[V any](parts, n int, codec storage.Codec[V], key func(p, i int) int64, val func(p, i int) V) Input[int64, V] {
	return Input[int64, V]{Partitions: parts, Codec: codec, Read: func(_ context.Context, _ *shuffle.TaskContext, p int) (collection.Iterator[collection.Pair[int64, V]], error) {
		i := 0
		return storage.FuncIterator(func() (collection.Pair[int64, V], bool, error) {
			if i == n {
				return collection.Pair[int64, V]{}, false, nil
			}
			i++
			return collection.Pair[int64, V]{Key: key(p, i-1), Value: val(p, i-1)}, true, nil
		}, nil), nil
	}}
}

// records reads every record of in, in the calling goroutine (no task context is needed by the
// test inputs).
func records[V any](t *testing.T, in Input[int64, V]) []collection.Pair[int64, V] {
	var out []collection.Pair[int64, V]
	for p := range in.Partitions {
		it, err := in.Read(context.Background(), nil, p)
		require.NoError(t, err)
		for it.Next() {
			out = append(out, it.Value())
		}
		require.NoError(t, it.Err())
		require.NoError(t, it.Close())
	}
	return out
}

// plainJoin is the join in Go maps: the reference.
func plainJoin[A, B any](kind JoinKind, left []collection.Pair[int64, A], right []collection.Pair[int64, B]) []Row[int64, A, B] {
	rights := map[int64][]B{}
	for _, kv := range right {
		rights[kv.Key] = append(rights[kv.Key], kv.Value)
	}
	lefts := map[int64]bool{}
	var out []Row[int64, A, B]
	for _, kv := range left {
		lefts[kv.Key] = true
		rs := rights[kv.Key]
		for _, r := range rs {
			out = append(out, Row[int64, A, B]{Key: kv.Key, Left: kv.Value, Right: r, HasLeft: true, HasRight: true})
		}
		if len(rs) == 0 && kind != Inner {
			out = append(out, Row[int64, A, B]{Key: kv.Key, Left: kv.Value, HasLeft: true})
		}
	}
	if kind == FullOuter {
		for _, kv := range right {
			if !lefts[kv.Key] {
				out = append(out, Row[int64, A, B]{Key: kv.Key, Right: kv.Value, HasRight: true})
			}
		}
	}
	return out
}

func compareRows(a, b Row[int64, int64, string]) int {
	return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Left, b.Left), cmp.Compare(a.Right, b.Right),
		cmp.Compare(fmt.Sprint(a.HasLeft), fmt.Sprint(b.HasLeft)), cmp.Compare(fmt.Sprint(a.HasRight), fmt.Sprint(b.HasRight)))
}

// runJoin joins on ex, collecting the rows, and checks that memory and files are all returned.
func runJoin(t *testing.T, ex *Executor, kind JoinKind, left Input[int64, int64], right Input[int64, string]) ([]Row[int64, int64, string], Stats) {
	t.Helper()
	var mu sync.Mutex
	var got []Row[int64, int64, string]
	stats, err := Join(context.Background(), ex, JoinConfig[int64]{Partitioning: Partitioning[int64]{KeyCodec: storage.VarintCodec[int64]{}, Partitions: 3}, Kind: kind}, left, right,
		func(_ context.Context, _ *shuffle.TaskContext, _ int, rows collection.Iterator[Row[int64, int64, string]]) error {
			var local []Row[int64, int64, string]
			for rows.Next() {
				local = append(local, rows.Value())
			}
			mu.Lock()
			got = append(got, local...)
			mu.Unlock()
			return rows.Err()
		})
	require.NoError(t, err)
	require.NoError(t, ex.Leaks())
	return got, stats
}

func TestJoin(t *testing.T) {
	// Left: 3 partitions of 4,000 records over keys 0..5,999 (some twice, some never); right:
	// 2 partitions of 3,000 records over keys 3,000..8,999 with a 30-byte value each.
	left := table(3, 4000, storage.VarintCodec[int64]{}, func(p, i int) int64 { return int64((p*4000 + i) % 6000) }, func(p, i int) int64 { return int64(p*4000 + i) })
	right := table(2, 3000, storage.StringCodec{}, func(p, i int) int64 { return int64(3000 + (p*3000+i)*7%6000) },
		func(p, i int) string { return fmt.Sprintf("right-%024d", p*3000+i) })
	for _, tt := range []struct {
		name      string
		kind      JoinKind
		threshold int64
		want      JoinStrategy
	}{
		{"inner broadcast", Inner, 8 << 20, BroadcastJoin},
		{"left outer broadcast", LeftOuter, 8 << 20, BroadcastJoin},
		{"inner shuffle (broadcast off)", Inner, NoLimit, ShuffleJoin},
		{"left outer shuffle (broadcast off)", LeftOuter, NoLimit, ShuffleJoin},
		{"full outer (never broadcast)", FullOuter, 8 << 20, ShuffleJoin},
		{"inner fallback (right side above the threshold)", Inner, 64 << 10, ShuffleJoin},
		{"left outer fallback", LeftOuter, 64 << 10, ShuffleJoin},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// 4 MiB for 2 cores: the shuffle join's maps and sorters spill.
			ex, err := New(Config{Budget: MinBudget, Cores: 2, Dirs: []string{t.TempDir()}, BroadcastThreshold: tt.threshold})
			require.NoError(t, err)
			defer func() { require.NoError(t, ex.Close()) }()
			got, stats := runJoin(t, ex, tt.kind, left, right)
			require.Equal(t, tt.want, stats.Strategy)
			want := plainJoin(tt.kind, records(t, left), records(t, right))
			slices.SortFunc(got, compareRows)
			slices.SortFunc(want, compareRows)
			require.Equal(t, len(want), len(got))
			require.Equal(t, want, got)
		})
	}
}

// TestJoinLargerThanBudget: a full outer join whose sides take several times the budget spills
// and gives the rows of the join in Go maps. One core, so what spills does not depend on
// another task's timing.
func TestJoinLargerThanBudget(t *testing.T) {
	const n = 100_000
	left := table(2, n/2, storage.VarintCodec[int64]{}, func(p, i int) int64 { return int64((p*n/2 + i) % (n / 3)) }, func(p, i int) int64 { return int64(i) })
	right := table(2, n/4, storage.StringCodec{}, func(p, i int) int64 { return int64(n/6 + p*n/4 + i) },
		func(p, i int) string { return fmt.Sprintf("right-%040d", i) })
	ex, err := New(Config{Budget: MinBudget, Cores: 1, Dirs: []string{t.TempDir()}})
	require.NoError(t, err)
	defer func() { require.NoError(t, ex.Close()) }()
	got, stats := runJoin(t, ex, FullOuter, left, right)
	t.Logf("%+v", stats)
	require.Positive(t, stats.Spills)
	want := plainJoin(FullOuter, records(t, left), records(t, right))
	slices.SortFunc(got, compareRows)
	slices.SortFunc(want, compareRows)
	require.Equal(t, want, got)
}

// TestBroadcastMemoryAcquiredFirst: the broadcast table's storage memory is held while the left
// side probes it, at least the table's estimated size, and returned after.
func TestBroadcastMemoryAcquiredFirst(t *testing.T) {
	ex, err := New(Config{Budget: 16 << 20, Cores: 2, Dirs: []string{t.TempDir()}})
	require.NoError(t, err)
	defer func() { require.NoError(t, ex.Close()) }()
	right := table(2, 1000, storage.StringCodec{}, func(p, i int) int64 { return int64(p*1000 + i) }, func(p, i int) string { return "v" })
	var estimated int64
	var est estimator.Estimator
	for _, kv := range records(t, right) {
		estimated += est.Estimate(kv.Key) + est.Estimate(kv.Value) + broadcastSlots[int64, string](true) // every key is new
	}
	left := table(2, 10, storage.VarintCodec[int64]{}, func(p, i int) int64 { return int64(i) }, func(p, i int) int64 { return 0 })
	var held [2]int64
	stats, err := Join(context.Background(), ex, JoinConfig[int64]{Partitioning: Partitioning[int64]{KeyCodec: storage.VarintCodec[int64]{}}}, left, right,
		func(_ context.Context, _ *shuffle.TaskContext, p int, rows collection.Iterator[Row[int64, int64, string]]) error {
			held[p] = ex.Memory.StorageUsed()
			for rows.Next() {
			}
			return rows.Err()
		})
	require.NoError(t, err)
	require.Equal(t, BroadcastJoin, stats.Strategy)
	require.Equal(t, estimated, stats.BroadcastBytes)
	for _, h := range held {
		require.GreaterOrEqual(t, h, estimated)
	}
	require.Zero(t, ex.Memory.StorageUsed())
	require.NoError(t, ex.Leaks())
}

// TestBroadcastMemoryCoversTable: the storage memory a broadcast table holds is at least the
// live heap it takes, whether its keys have one value each or several: the estimate counts the
// map's slots and the value slices, not only the keys and values. One task builds and probes,
// so the live heap read while probing holds the table and nothing else of size.
func TestBroadcastMemoryCoversTable(t *testing.T) {
	for _, perKey := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d per key", perKey), func(t *testing.T) {
			ex, err := New(Config{Budget: 256 << 20, Cores: 1, BroadcastThreshold: 64 << 20, Dirs: []string{t.TempDir()}})
			require.NoError(t, err)
			defer func() { require.NoError(t, ex.Close()) }()
			const n = 100_000
			right := table(1, n, storage.StringCodec{}, func(_, i int) int64 { return int64(i / perKey) }, func(_, i int) string { return fmt.Sprintf("customer-%08d", i) })
			left := table(1, 1, storage.VarintCodec[int64]{}, func(_, i int) int64 { return int64(i) }, func(_, i int) int64 { return 0 })
			before := liveHeap()
			var grew, held int64
			stats, err := Join(context.Background(), ex, JoinConfig[int64]{Partitioning: Partitioning[int64]{KeyCodec: storage.VarintCodec[int64]{}}}, left, right,
				func(_ context.Context, _ *shuffle.TaskContext, p int, rows collection.Iterator[Row[int64, int64, string]]) error {
					grew, held = liveHeap()-before, ex.Memory.StorageUsed()
					for rows.Next() {
					}
					return rows.Err()
				})
			require.NoError(t, err)
			require.Equal(t, BroadcastJoin, stats.Strategy)
			t.Logf("table of %d records: live heap grew by %d bytes, estimated %d, storage memory held %d", n, grew, stats.BroadcastBytes, held)
			require.GreaterOrEqual(t, stats.BroadcastBytes, grew, "the table's estimate is below the heap it takes")
		})
	}
}

// liveHeap runs a collection and returns the live heap it found.
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

func TestCoGroup(t *testing.T) {
	ex, err := New(Config{Budget: MinBudget, Cores: 2, Dirs: []string{t.TempDir()}})
	require.NoError(t, err)
	defer func() { require.NoError(t, ex.Close()) }()
	// Three inputs over overlapping key ranges; input i holds key k (k mod 3 == i or k < 100)
	// with value k*10+i, once per occurrence.
	const n = 20000
	var inputs []Input[int64, int64]
	for in := range 3 {
		inputs = append(inputs, table(2, n, storage.VarintCodec[int64]{},
			func(p, i int) int64 { return int64((p*n + i) % (n / 2)) },
			func(p, i int) int64 { return int64(in) }))
	}
	var mu sync.Mutex
	keys := map[int64][3]int{}
	_, err = CoGroup(context.Background(), ex, Partitioning[int64]{KeyCodec: storage.VarintCodec[int64]{}, Partitions: 4}, inputs,
		func(_ context.Context, _ *shuffle.TaskContext, _ int, groups collection.Iterator[collection.Pair[int64, [][]int64]]) error {
			for groups.Next() {
				g := groups.Value()
				var counts [3]int
				for i, vs := range g.Value {
					for _, v := range vs {
						if v != int64(i) {
							return fmt.Errorf("key %d: input %d has value %d", g.Key, i, v)
						}
					}
					counts[i] = len(vs)
				}
				mu.Lock()
				if _, dup := keys[g.Key]; dup {
					mu.Unlock()
					return fmt.Errorf("key %d handed out twice", g.Key)
				}
				keys[g.Key] = counts
				mu.Unlock()
			}
			return groups.Err()
		})
	require.NoError(t, err)
	require.Len(t, keys, n/2)
	for k, c := range keys {
		require.Equal(t, [3]int{4, 4, 4}, c, "key %d", k) // 2 partitions × n records over n/2 keys
	}
	require.NoError(t, ex.Leaks())
}

func TestCollectBounded(t *testing.T) {
	ex, err := New(Config{Budget: MinBudget, Cores: 2, Dirs: []string{t.TempDir()}, MaxResultSize: 64 << 10})
	require.NoError(t, err)
	defer func() { require.NoError(t, ex.Close()) }()
	// 4 partitions of 1,000 strings of 31 bytes: about 48 KiB each, 192 KiB in all.
	compute := func(_ context.Context, _ *shuffle.TaskContext, p int) (collection.Iterator[string], error) {
		i := 0
		return storage.FuncIterator(func() (string, bool, error) {
			if i == 1000 {
				return "", false, nil
			}
			i++
			return fmt.Sprintf("%d-%029d", p, i), true, nil
		}, nil), nil
	}
	_, err = Collect(context.Background(), ex, 4, compute)
	require.ErrorIs(t, err, ErrResultTooLarge)
	var tooLarge *ResultTooLargeError
	require.ErrorAs(t, err, &tooLarge)
	require.Equal(t, int64(64<<10), tooLarge.Limit)
	require.Greater(t, tooLarge.Size, tooLarge.Limit)
	require.ErrorContains(t, err, "more than Config.MaxResultSize 64 KiB")
	require.NoError(t, ex.Leaks())

	// One partition at a time fits.
	var n int
	for v, err := range Partitions(context.Background(), ex, 4, compute) {
		require.NoError(t, err)
		require.Len(t, v, 31)
		n++
	}
	require.Equal(t, 4000, n)

	// Stopping early computes no more partitions.
	computed := 0
	for range Partitions(context.Background(), ex, 4, func(ctx context.Context, tc *shuffle.TaskContext, p int) (collection.Iterator[string], error) {
		computed++
		return compute(ctx, tc, p)
	}) {
		break
	}
	require.Equal(t, 1, computed)

	// A partition larger than the limit fails Partitions too, once.
	big, err := New(Config{Budget: MinBudget, Cores: 1, Dirs: []string{t.TempDir()}, MaxResultSize: 16 << 10})
	require.NoError(t, err)
	defer func() { require.NoError(t, big.Close()) }()
	var errs []error
	for _, err := range Partitions(context.Background(), big, 4, compute) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	require.Len(t, errs, 1)
	require.True(t, errors.Is(errs[0], ErrResultTooLarge))

	// Under the limit Collect returns everything, partition by partition.
	all, err := New(Config{Budget: MinBudget, Cores: 2, Dirs: []string{t.TempDir()}})
	require.NoError(t, err)
	defer func() { require.NoError(t, all.Close()) }()
	got, err := Collect(context.Background(), all, 4, compute)
	require.NoError(t, err)
	require.Len(t, got, 4000)
	require.Equal(t, "0-00000000000000000000000000001", got[0])
	require.Equal(t, "3-00000000000000000000000001000", got[3999])
}
