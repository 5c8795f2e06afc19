package collection

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
)

// TestSorterSpillRecordsBounded: a sorter spilling thousands of times keeps records of at most
// maxLiveSpills files (and the scope about as many files), whatever the number of spills: it
// compacts its spill files while inserting. The bookkeeping is counted after every chunk of
// inserts, at two spill counts 10× apart, and must not grow with them.
func TestSorterSpillRecordsBounded(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	const (
		parts = 16
		every = 3   // ForceSpillElements: a spill every 4 records
		chunk = 200 // records per InsertAll, between two looks at the bookkeeping
	)
	// 1 KiB batches: two readers and a writer fit in about 115 KiB (see multiPassConfig).
	cfg := SpillConfig{InitialThreshold: NoInitialThreshold, ForceSpillElements: every, BatchBytes: 1 << 10}
	type peak struct{ spills, ids, files int }
	run := func(t *testing.T, records int) (peak, int) {
		tm := newTestTask(t, 192<<10)
		scope := newTestScope(t, nil)
		a := sumAgg[int64]()
		s, err := NewExternalSorter(tm, scope, int64Codec, int64Codec, SorterConfig[int64, int64, int64]{
			Spill: cfg, Aggregator: &a, Partitioner: modPartitioner{parts}, Ordering: func(a, b int64) int { return int(a - b) }})
		require.NoError(t, err)
		rng := rand.New(rand.NewPCG(seed, uint64(records)))
		want := map[int64]int64{}
		var p peak
		for done := 0; done < records; done += chunk {
			in := make([]Pair[int64, int64], chunk)
			for i := range in {
				in[i] = Pair[int64, int64]{Key: int64(rng.IntN(records)), Value: int64(rng.IntN(100))}
				want[in[i].Key] += in[i].Value
			}
			require.NoError(t, s.InsertAll(context.Background(), SliceIterator(in)))
			s.sp.Lock()
			p.spills = max(p.spills, len(s.spills))
			p.ids = max(p.ids, cap(s.files))
			s.sp.Unlock()
			p.files = max(p.files, scope.Files())
		}
		spills := s.NumSpills()
		it, err := s.Iterator(context.Background())
		require.NoError(t, err)
		got := map[int64]int64{}
		for it.Next() {
			got[it.Value().Key] += it.Value().Value
		}
		require.NoError(t, it.Err())
		require.Equal(t, want, got)
		require.NoError(t, it.Close())
		require.NoError(t, s.Close())
		require.Zero(t, scope.Files(), "every spill file deleted")
		require.Zero(t, s.io.Used(), "spill I/O memory released")
		require.Zero(t, tm.Manager().Metrics().Pools[memory.OnHeap].ExecutionUsed, "execution memory released")
		return p, spills
	}
	limit := maxLiveSpills(parts)
	var peaks []peak
	for _, records := range []int{2_000, 20_000} {
		p, spills := run(t, records)
		t.Logf("%d records, %d spills: at most %d spill records, %d file ids (capacity), %d live files; limit %d",
			records, spills, p.spills, p.ids, p.files, limit)
		require.Greater(t, spills, records/(every+1)-chunk, "spilled every few records")
		require.LessOrEqual(t, p.spills, limit+1)
		require.LessOrEqual(t, p.files, limit+1)
		require.LessOrEqual(t, p.ids, 4*(limit+1))
		peaks = append(peaks, p)
	}
	require.LessOrEqual(t, peaks[1].spills, peaks[0].spills+1, "spill records do not grow with the spills")
}
