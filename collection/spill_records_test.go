package collection

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// spillBookkeeping is the most per-spill state a collection held while it was filled: its
// records of the spill files waiting for the read, the capacity of its list of file ids, and
// the live files of its scope.
type spillBookkeeping struct{ spills, ids, files int }

// sizeofSpillFile is the size of a collection's record of a spill file.
const sizeofSpillFile = unsafe.Sizeof(spillFile{})

// fillLooking inserts in into a collection chunk records at a time, and after each chunk notes
// the collection's per-spill state (look is called with the collection's lock held).
func fillLooking[K comparable, V, C any](t *testing.T, c *combiningTable[K, V, C], scope *storage.Scope, in []Pair[K, V],
	insertAll func(context.Context, Iterator[Pair[K, V]]) error) spillBookkeeping {
	const chunk = 200
	var p spillBookkeeping
	for len(in) > 0 {
		n := min(chunk, len(in))
		require.NoError(t, insertAll(context.Background(), SliceIterator(in[:n])))
		in = in[n:]
		c.sp.Lock()
		p.spills = max(p.spills, len(c.spills))
		p.ids = max(p.ids, cap(c.files))
		c.sp.Unlock()
		p.files = max(p.files, scope.Files())
	}
	return p
}

// checkSpillBookkeeping runs fill at two spill counts 10× apart (the number of records: a
// spill every 4 records) and checks that the per-spill state stays within maxLiveSpills at both,
// so it does not grow with the spills. fill returns the state and the number of spills.
func checkSpillBookkeeping(t *testing.T, fill func(t *testing.T, records int) (spillBookkeeping, int)) {
	limit := maxLiveSpills(1)
	for _, spills := range []int{500, 5_000} {
		records := 4 * spills
		p, n := fill(t, records)
		t.Logf("%d records, %d spills: at most %d spill records (%d B each), %d file ids (capacity), %d live files; limit %d",
			records, n, p.spills, sizeofSpillFile, p.ids, p.files, limit)
		require.GreaterOrEqual(t, n, spills-1, "spilled every 4 records")
		// The same bound at both spill counts: the state does not grow with the spills.
		require.LessOrEqual(t, p.spills, limit+1, "spill records")
		require.LessOrEqual(t, p.files, limit+1, "live files")
		require.LessOrEqual(t, p.ids, 4*(limit+1), "file ids")
	}
}

// spillRecordsConfig spills every 4 records (ForceSpillElements) into files of 1 KiB batches,
// with no free allowance: two readers and a writer fit in about 115 KiB (see multiPassConfig).
var spillRecordsConfig = SpillConfig{InitialThreshold: NoInitialThreshold, ForceSpillElements: 3, BatchBytes: 1 << 10}

// checkReleased checks that a closed collection left no memory held and no file behind.
func checkReleased(t *testing.T, tm *memory.TaskManager, scope *storage.Scope, io *ioMemory) {
	require.Zero(t, scope.Files(), "every spill file deleted")
	require.Zero(t, io.Used(), "spill I/O memory released")
	require.Zero(t, tm.Manager().Metrics().Pools[memory.OnHeap].ExecutionUsed, "execution memory released")
}

// TestExternalMapSpillRecordsBounded: a map spilling thousands of times keeps records of at most
// maxLiveSpills files (and its scope about as many files), whatever the number of spills: it
// compacts its spill files while inserting.
func TestExternalMapSpillRecordsBounded(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	checkSpillBookkeeping(t, func(t *testing.T, records int) (spillBookkeeping, int) {
		tm := newTestTask(t, 192<<10)
		scope := newTestScope(t, nil)
		m, err := NewExternalAppendOnlyMap(tm, scope, sumAgg[int64](), int64Codec, int64Codec,
			ExternalMapConfig[int64]{SpillConfig: spillRecordsConfig})
		require.NoError(t, err)
		rng := rand.New(rand.NewPCG(seed, uint64(records)))
		in := make([]Pair[int64, int64], records)
		want := map[int64]int64{}
		for i := range in {
			in[i] = Pair[int64, int64]{Key: int64(rng.IntN(records)), Value: int64(rng.IntN(100))}
			want[in[i].Key] += in[i].Value
		}
		p := fillLooking(t, &m.combiningTable, scope, in, m.InsertAll)
		spills := m.NumSpills()
		it, err := m.Iterator(context.Background())
		require.NoError(t, err)
		require.Equal(t, want, drain(t, it))
		require.NoError(t, m.Close())
		checkReleased(t, tm, scope, &m.io)
		return p, spills
	})
}

// TestExternalGrouperSpillRecordsBounded is TestExternalMapSpillRecordsBounded for the grouper,
// with many keys and with one huge key whose values are spread over every spill.
func TestExternalGrouperSpillRecordsBounded(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for _, tc := range []struct {
		name string
		keys func(records int) int
	}{
		{"many keys", func(records int) int { return records }},
		{"one huge key", func(int) int { return 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkSpillBookkeeping(t, func(t *testing.T, records int) (spillBookkeeping, int) {
				tm := newTestTask(t, 192<<10)
				scope := newTestScope(t, nil)
				g, err := NewExternalGrouper(tm, scope, int64Codec, int64Codec, ExternalMapConfig[int64]{SpillConfig: spillRecordsConfig})
				require.NoError(t, err)
				rng := rand.New(rand.NewPCG(seed, uint64(records)))
				in := make([]Pair[int64, int64], records)
				want := map[int64][]int64{}
				for i := range in {
					in[i] = Pair[int64, int64]{Key: int64(rng.IntN(tc.keys(records))), Value: int64(i)}
					want[in[i].Key] = append(want[in[i].Key], in[i].Value)
				}
				p := fillLooking(t, &g.combiningTable, scope, in, g.InsertAll)
				spills := g.NumSpills()
				it, err := g.Iterator(context.Background())
				require.NoError(t, err)
				got := map[int64][]int64{}
				for it.Next() {
					grp := it.Value()
					_, dup := got[grp.Key]
					require.False(t, dup, "key %d returned twice", grp.Key)
					var vs []int64
					for grp.Values.Next() {
						vs = append(vs, grp.Values.Value())
					}
					require.NoError(t, grp.Values.Err())
					slices.Sort(vs)
					got[grp.Key] = vs
				}
				require.NoError(t, it.Err())
				require.NoError(t, it.Close())
				require.Equal(t, want, got)
				require.NoError(t, g.Close())
				checkReleased(t, tm, scope, &g.io)
				return p, spills
			})
		})
	}
}
