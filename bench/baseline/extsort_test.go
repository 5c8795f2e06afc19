package baseline

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func randomRecords(r *rand.Rand, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{Key: strconv.FormatUint(r.Uint64N(uint64(n)), 36), Value: int64(i)}
	}
	return recs
}

func TestExternalSortMatchesInMemorySort(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	for _, tc := range []struct {
		name     string
		n        int
		runBytes int64
		runs     bool
	}{
		{"empty", 0, 1 << 10, false},
		{"one run in memory", 100, 1 << 20, false},
		{"many runs", 5000, 4 << 10, true},
		{"one record per run", 50, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := randomRecords(r, tc.n)
			var want []Record
			require.NoError(t, SortInMemory(slices.Values(recs), func(x Record) error { want = append(want, x); return nil }))
			require.True(t, slices.IsSortedFunc(want, Compare))

			dir := t.TempDir()
			var got []Record
			st, err := ExternalSort(context.Background(), dir, tc.runBytes, slices.Values(recs), func(x Record) error { got = append(got, x); return nil })
			require.NoError(t, err)
			require.Equal(t, tc.runs, st.Runs > 0)
			// Keys are equal; records with equal keys may come out in another order.
			require.Len(t, got, len(want))
			require.True(t, slices.IsSortedFunc(got, Compare))
			slices.SortStableFunc(got, func(a, b Record) int { return int(a.Value - b.Value) })
			require.ElementsMatch(t, recs, got)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "run files are deleted")
		})
	}
}

func TestExternalSortErrors(t *testing.T) {
	recs := randomRecords(rand.New(rand.NewPCG(1, 2)), 1000)
	_, err := ExternalSort(context.Background(), t.TempDir(), 0, slices.Values(recs), func(Record) error { return nil })
	require.ErrorContains(t, err, "run size must be positive, got 0")

	// An error from out stops the merge, and the run files are still deleted.
	dir := t.TempDir()
	stop := errors.New("stop")
	_, err = ExternalSort(context.Background(), dir, 1<<10, slices.Values(recs), func(Record) error { return stop })
	require.ErrorIs(t, err, stop)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries)

	// A directory that does not exist fails the first run.
	_, err = ExternalSort(context.Background(), dir+"/missing", 1<<10, slices.Values(recs), func(Record) error { return nil })
	require.ErrorIs(t, err, os.ErrNotExist)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = ExternalSort(ctx, t.TempDir(), 1<<10, slices.Values(randomRecords(rand.New(rand.NewPCG(3, 4)), 5000)), func(Record) error { return nil })
	require.ErrorIs(t, err, context.Canceled)
}
