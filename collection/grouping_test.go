package collection

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/storage"
)

func newIntGrouper(t testing.TB, budget int64, cfg ExternalMapConfig[int]) *ExternalGrouper[int, int] {
	t.Helper()
	g, err := NewExternalGrouper(newTestTask(t, budget), newTestScope(t, nil), intCodec, intCodec, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, g.Close()) })
	return g
}

// readGroups drains a grouper's iterator: every value of every key (values of a key are read
// only up to limit(key) when limit is set, to exercise skipping), with forced spills every
// spillEvery keys.
func readGroups(t testing.TB, g *ExternalGrouper[int, int], limit func(int) int, spillEvery int) map[int][]int {
	t.Helper()
	it, err := g.Iterator(context.Background())
	require.NoError(t, err)
	out := map[int][]int{}
	for it.Next() {
		grp := it.Value()
		if _, dup := out[grp.Key]; dup {
			t.Fatalf("key %d returned twice", grp.Key)
		}
		vs := []int{}
		for grp.Values.Next() {
			vs = append(vs, grp.Values.Value())
			if limit != nil && len(vs) >= limit(grp.Key) {
				break
			}
			if spillEvery > 0 && len(vs) == 2 && grp.Key%spillEvery == 0 {
				_, err := g.Spill(math.MaxInt64, nil) // forced spill in the middle of a key
				require.NoError(t, err)
			}
		}
		require.NoError(t, grp.Values.Err())
		out[grp.Key] = sorted(vs)
	}
	require.NoError(t, it.Err())
	require.NoError(t, it.Close())
	return out
}

func TestExternalGrouperBasic(t *testing.T) {
	ctx := context.Background()
	g := newIntGrouper(t, 64<<20, ExternalMapConfig[int]{})
	in := []Pair[int, int]{{Key: 1, Value: 10}, {Key: 2, Value: 20}, {Key: 3, Value: 30}, {Key: 1, Value: 100}, {Key: 2, Value: 200}, {Key: 1, Value: 1000}}
	require.NoError(t, g.InsertAll(ctx, SliceIterator(in)))
	require.Equal(t, map[int][]int{1: {10, 100, 1000}, 2: {20, 200}, 3: {30}}, readGroups(t, g, nil, 0))
	_, err := g.Iterator(ctx)
	require.ErrorIs(t, err, ErrIterated)
	require.ErrorIs(t, g.Insert(ctx, 1, 1), ErrIterated)
}

// TestExternalGrouperMetamorphic: the same random input grouped with an unlimited budget and with
// tiny ones (many spills, colliding hashes, forced spills in the middle of a key's values,
// partially read value iterators) gives the same groups.
func TestExternalGrouperMetamorphic(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	n := 5000 + rng.IntN(5000)
	keySpace := 1 + rng.IntN(2000)
	in := make([]Pair[int, int], n)
	for i := range in {
		k := rng.IntN(keySpace)
		if rng.IntN(4) == 0 {
			k = 7 // a hot key
		}
		in[i] = Pair[int, int]{Key: k, Value: rng.IntN(1 << 20)}
	}
	limit := func(k int) int { return 1 + k%5 }
	run := func(t *testing.T, budget int64, cfg ExternalMapConfig[int], lim func(int) int, spillEvery int) map[int][]int {
		g, err := NewExternalGrouper(newSparkTask(t, budget), newTestScope(t, nil), intCodec, intCodec, cfg)
		require.NoError(t, err)
		defer func() { require.NoError(t, g.Close()) }()
		require.NoError(t, g.InsertAll(context.Background(), SliceIterator(in)))
		out := readGroups(t, g, lim, spillEvery)
		t.Logf("spills %d, metrics %+v", g.NumSpills(), g.Metrics())
		return out
	}
	want := run(t, 1<<30, ExternalMapConfig[int]{}, nil, 0)
	wantLimited := run(t, 1<<30, ExternalMapConfig[int]{}, limit, 0)
	collide := HasherFunc(func(k int) uint64 { return uint64(k % 5) })
	tiny := SpillConfig{InitialThreshold: NoInitialThreshold, BatchSize: 5, BatchBytes: 4 << 10}
	for _, tc := range []struct {
		name       string
		cfg        ExternalMapConfig[int]
		limit      bool
		spillEvery int
	}{
		{"tiny budget", ExternalMapConfig[int]{SpillConfig: tiny}, false, 0},
		{"force threshold", ExternalMapConfig[int]{SpillConfig: SpillConfig{ForceSpillElements: int64(1 + rng.IntN(400))}}, false, 0},
		{"collisions", ExternalMapConfig[int]{SpillConfig: SpillConfig{ForceSpillElements: 333}, Hasher: collide}, false, 0},
		{"collisions, partial reads", ExternalMapConfig[int]{SpillConfig: SpillConfig{ForceSpillElements: 333}, Hasher: collide}, true, 0},
		{"forced spills inside keys", ExternalMapConfig[int]{SpillConfig: SpillConfig{ForceSpillElements: 1000}}, false, 1 + rng.IntN(50)},
		{"no spill, forced inside keys", ExternalMapConfig[int]{}, false, 1 + rng.IntN(50)},
		{"collisions, forced inside keys, partial", ExternalMapConfig[int]{SpillConfig: SpillConfig{ForceSpillElements: 500}, Hasher: collide}, true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lim func(int) int
			w := want
			if tc.limit {
				lim, w = limit, wantLimited
			}
			got := run(t, 64<<10, tc.cfg, lim, tc.spillEvery)
			if !tc.limit {
				require.Equal(t, w, got)
				return
			}
			// Partially read keys got some limit(k) of their values, not necessarily the same.
			require.Len(t, got, len(w))
			for k, vs := range got {
				require.Len(t, vs, len(w[k]), "key %d", k)
				require.Subset(t, want[k], vs, "key %d", k)
			}
		})
	}
}

// TestExternalGrouperHugeKey is the SPARK-1823 case: one key whose values total 10× the
// budget is grouped with the live heap within the budget plus a stated slack, and every value
// comes back exactly once.
func TestExternalGrouperHugeKey(t *testing.T) {
	const (
		budget = 512 << 10
		free   = 64 << 10
		n      = 640_000 // int64 values: 5 MiB as a Go slice, 10× the budget
		// slack: the free allowance, the open readers (≤ 2 × (BatchBytes + 32 KiB) per spill
		// file), the spill writer's buffers (32 KiB file buffer, a batch, its compression) and the
		// estimator's error.
		batchBytes = 8 << 10
		slack      = free + 1<<20
	)
	ctx := context.Background()
	tm := newTestTask(t, budget)
	scope := newTestScope(t, nil)
	seen := make([]uint8, n) // allocated before the baseline
	base := liveHeap()
	var peak int64
	sample := func() { peak = max(peak, liveHeap()-base) }

	g, err := NewExternalGrouper(tm, scope, storage.VarintCodec[int64]{}, storage.VarintCodec[int64]{},
		ExternalMapConfig[int64]{SpillConfig: SpillConfig{InitialThreshold: free, BatchBytes: batchBytes}})
	require.NoError(t, err)
	defer func() { require.NoError(t, g.Close()) }()
	for i := range int64(n) {
		// Plain checks in the per-value loops: require's helpers cost more than the grouper.
		if err := g.Insert(ctx, 42, i); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		if i%(n/8) == 0 {
			sample()
		}
	}
	require.NoError(t, g.Insert(ctx, 7, -1))
	spills := g.NumSpills()
	require.GreaterOrEqual(t, spills, 4, "the hot key must spill several times")
	it, err := g.Iterator(ctx)
	require.NoError(t, err)
	keys := 0
	for it.Next() {
		grp := it.Value()
		keys++
		read := 0
		for grp.Values.Next() {
			v := grp.Values.Value()
			if grp.Key == 7 {
				require.Equal(t, int64(-1), v)
				continue
			}
			if grp.Key != 42 || v < 0 || v >= n || seen[v] != 0 {
				t.Fatalf("key %d: value %d unexpected or delivered twice", grp.Key, v)
			}
			seen[v] = 1
			if read++; read%(n/8) == 0 {
				sample()
			}
		}
		require.NoError(t, grp.Values.Err())
	}
	require.NoError(t, it.Err())
	require.Equal(t, 2, keys)
	for i, s := range seen {
		if s != 1 {
			t.Fatalf("value %d not delivered", i)
		}
	}
	t.Logf("values %d (%s as int64), %d spills; peak live heap %s over a budget of %s + slack %s",
		n, humanize.IBytes(8*n), spills, humanize.IBytes(uint64(peak)), humanize.IBytes(budget), humanize.IBytes(slack))
	require.LessOrEqual(t, peak, int64(budget+slack))
}
