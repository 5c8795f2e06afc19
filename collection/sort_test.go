package collection

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/storage"
)

type player struct {
	Name  string
	Score int64
}

var playerCodec = storage.NewStructCodec(
	storage.Field(func(p *player) *string { return &p.Name }, storage.StringCodec{}),
	storage.Field(func(p *player) *int64 { return &p.Score }, storage.VarintCodec[int64]{}),
)

// byScore orders players by score, highest first, then by name.
func byScore(a, b player) int {
	return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.Name, b.Name))
}

func TestSort(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	in := make([]player, 20_000)
	for i := range in {
		in[i] = player{Name: fmt.Sprintf("p%d", rng.IntN(5000)), Score: rng.Int64N(1000)}
	}
	want := slices.SortedFunc(slices.Values(in), byScore)

	for _, tc := range []struct {
		name   string
		force  int64
		spills bool
	}{{"in memory", 0, false}, {"spilling", 2_000, true}} {
		t.Run(tc.name, func(t *testing.T) {
			tm := newTestTask(t, 64<<20)
			cfg := SortConfig[player]{Compare: byScore, Spill: SpillConfig{ForceSpillElements: tc.force}}
			it, err := Sort(context.Background(), tm, newTestScope(t, nil), playerCodec, SliceIterator(in), cfg)
			require.NoError(t, err)
			got, err := Collect(it)
			require.NoError(t, err)
			require.Equal(t, want, got)
			require.Equal(t, tc.spills, it.Metrics().Spills > 0, "spills: %d", it.Metrics().Spills)
		})
	}

	t.Run("stop early", func(t *testing.T) {
		tm := newTestTask(t, 64<<20)
		cfg := SortConfig[player]{Compare: byScore, Spill: SpillConfig{ForceSpillElements: 1000}}
		it, err := Sort(context.Background(), tm, newTestScope(t, nil), playerCodec, SliceIterator(in), cfg)
		require.NoError(t, err)
		require.True(t, it.Next())
		require.Equal(t, want[0], it.Value())
		require.NoError(t, it.Close()) // the cleanups check memory and files
	})
}

func TestSortErrors(t *testing.T) {
	ctx := context.Background()
	tm := newTestTask(t, 64<<20)
	scope := newTestScope(t, nil)

	closed := false
	records := storage.FuncIterator(func() (int, bool, error) { return 0, false, nil }, func() error { closed = true; return nil })
	_, err := Sort(ctx, tm, scope, nil, records, SortConfig[int]{Spill: SpillConfig{BatchSize: -1}})
	require.ErrorContains(t, err, "Sort's codec is nil")
	require.ErrorContains(t, err, "SortConfig.Compare is nil")
	require.ErrorContains(t, err, "SpillConfig.BatchSize -1 is negative")
	require.True(t, closed, "records are closed on error")

	codec, cfg := storage.VarintCodec[int]{}, SortConfig[int]{Compare: cmp.Compare[int]}
	_, err = Sort(ctx, nil, scope, codec, SliceIterator([]int{1}), cfg)
	require.ErrorContains(t, err, "no TaskManager")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = Sort(cancelled, tm, scope, codec, SliceIterator(make([]int, 100_000)), cfg)
	require.ErrorIs(t, err, context.Canceled)

	boom := fmt.Errorf("read failed")
	_, err = Sort(ctx, tm, scope, codec, storage.ErrorIterator[int](boom), cfg)
	require.ErrorIs(t, err, boom)
}
