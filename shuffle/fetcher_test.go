package shuffle

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// bypassShuffle writes maps map outputs of records per map with the BypassMergeWriter and
// returns the dependency and the inputs.
func bypassShuffle(t *testing.T, e *testEnv, partitions, maps, records, keys int) (*Dependency[int, int64, int64], [][]collection.Pair[int, int64]) {
	t.Helper()
	dep := intDep(e.runner, partitions, false, false, false)
	inputs := make([][]collection.Pair[int, int64], maps)
	for m := range inputs {
		inputs[m] = genRecords(uint64(partitions), m, records, keys)
	}
	writeMapOutputs(t, e, dep.ShuffleID, partitions, inputs, func(tc *TaskContext, m int) (Writer[int, int64], error) {
		return NewBypassMergeWriter(tc, dep, m)
	})
	return dep, inputs
}

// partitionModel is what reduce partition p reads after a writer that keeps each partition's
// records in input order: map by map, the records of p in input order.
func partitionModel(dep *Dependency[int, int64, int64], inputs [][]collection.Pair[int, int64], p int) []collection.Pair[int, int64] {
	var out []collection.Pair[int, int64]
	for _, in := range inputs {
		for _, kv := range in {
			if dep.Partitioner.Partition(kv.Key) == p {
				out = append(out, kv)
			}
		}
	}
	return out
}

func TestBypassMergeWriterRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		partitions, maps, recs int
		keys                   int
		compression            storage.Compression
	}{
		{"one partition", 1, 2, 500, 50, storage.CompressionDefault},
		{"many partitions, some empty", 40, 3, 300, 25, storage.CompressionDefault},
		{"uncompressed, small batches", 7, 4, 3000, 1000, storage.CompressionNone},
		{"empty maps", 5, 3, 0, 1, storage.CompressionDefault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, 64<<20, RunnerConfig{Shuffle: Config{Spill: collection.SpillConfig{Compression: tc.compression, BatchSize: 100}}})
			dep, inputs := bypassShuffle(t, e, tc.partitions, tc.maps, tc.recs, tc.keys)
			statuses, err := e.runner.registry.MapStatuses(dep.ShuffleID)
			require.NoError(t, err)
			var total int64
			for m, st := range statuses {
				require.Equal(t, int64(tc.recs), st.Records)
				require.Len(t, st.Lengths, tc.partitions)
				n, err := fileLength(e.disk, st.DataBlock())
				require.NoError(t, err)
				require.Equal(t, st.Bytes(), n, "map %d data file length", m)
				total += n
			}
			for p := range tc.partitions {
				got, c, err := readSegments(t, e, dep.ShuffleID, p, dep.ValueCodec)
				require.NoError(t, err)
				want := partitionModel(dep, inputs, p)
				require.Equal(t, want, got, "partition %d", p)
				require.Equal(t, int64(len(want)), c.records)
			}
			e.requireClean(t) // the partition files are gone, only map outputs are left
		})
	}
}

func TestFetcherMaxBytesInFlight(t *testing.T) {
	const maxInFlight = 8 << 10
	e := newTestEnv(t, 64<<20, RunnerConfig{Shuffle: Config{
		MaxBytesInFlight: maxInFlight,
		Spill:            collection.SpillConfig{Compression: storage.CompressionNone},
	}})
	// 40 maps, each with a segment of ~2 KiB for partition 0: 80 KiB in all, ten times the bound.
	dep, inputs := bypassShuffle(t, e, 1, 40, 1000, 1<<20)
	blocks, err := e.runner.registry.MapSizesByReduce(dep.ShuffleID, 0)
	require.NoError(t, err)
	var total int64
	for _, b := range blocks {
		require.LessOrEqual(t, b.Size, int64(maxInFlight), "every segment fits the bound")
		total += b.Size
	}
	require.Greater(t, total, int64(5*maxInFlight))

	waits := make(chan [2]int64, len(blocks))
	f := newStoppedFetcher(e.disk, blocks, 1, fetchLimits{maxInFlight: maxInFlight, maxToMem: DefaultMaxBlockSizeFetchToMem})
	f.onWait = func(inFlight, size int64) { waits <- [2]int64{inFlight, size} }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a safety net only
	defer cancel()
	require.NoError(t, f.start(ctx, blocks, 0))
	// Nothing is consumed yet: the prefetcher must stop at the bound.
	select {
	case w := <-waits:
		require.LessOrEqual(t, w[0], int64(maxInFlight))
		require.Greater(t, w[0]+w[1], int64(maxInFlight), "it waits only when the next segment does not fit")
		require.Less(t, f.peak.Load(), total)
	case <-ctx.Done():
		t.Fatal("the prefetcher never waited for room")
	}
	it := newRecordIterator(ctx, f, dep.KeyCodec, dep.ValueCodec)
	got, err := collection.Collect[collection.Pair[int, int64]](it)
	require.NoError(t, err)
	require.Equal(t, partitionModel(dep, inputs, 0), got)
	c := it.counters()
	require.LessOrEqual(t, c.peakInFlight, int64(maxInFlight))
	require.Positive(t, c.peakInFlight)
	require.Equal(t, int64(len(blocks)), c.blocks)
	require.Equal(t, total, c.bytes)
	require.Zero(t, f.inFlight.Load())
}

func TestFetcherStreamsLargeSegments(t *testing.T) {
	// Every segment is larger than the threshold, so none is loaded into memory.
	e := newTestEnv(t, 64<<20, RunnerConfig{Shuffle: Config{MaxBlockSizeFetchToMem: 1, MaxBytesInFlight: 1}})
	dep, inputs := bypassShuffle(t, e, 3, 4, 2000, 500)
	for p := range 3 {
		blocks, err := e.runner.registry.MapSizesByReduce(dep.ShuffleID, p)
		require.NoError(t, err)
		got, c, err := readSegments(t, e, dep.ShuffleID, p, dep.ValueCodec)
		require.NoError(t, err)
		require.Equal(t, partitionModel(dep, inputs, p), got)
		require.Zero(t, c.blocks, "no segment loaded")
		require.Zero(t, c.peakInFlight, "no bytes buffered")
		require.Equal(t, int64(len(blocks)), c.streamed)
		require.Equal(t, c.bytes, c.streamedBytes)
	}
}

// prefetchers counts the goroutines running a fetcher's prefetch loop. (runtime.NumGoroutine
// would also count finalizers of closed files, which run as user goroutines.)
func prefetchers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte("shuffle.(*fetcher).prefetch("))
}

// requireNoPrefetchers requires every prefetching goroutine gone once Close returned. Close
// waits for the goroutine's wg.Done, which runs in its deferred calls, so on a loaded machine its
// frame can still be on a stack for a moment after: the check yields until the frame is gone,
// and fails only if one is still there after a minute (a safety net, never reached by a
// goroutine that ends).
func requireNoPrefetchers(t *testing.T, msg string) {
	t.Helper()
	require.Eventually(t, func() bool { return prefetchers() == 0 }, time.Minute, time.Millisecond, msg)
}

func TestFetcherEarlyClose(t *testing.T) {
	e := newTestEnv(t, 64<<20, RunnerConfig{Shuffle: Config{MaxBytesInFlight: 4 << 10}})
	dep, _ := bypassShuffle(t, e, 2, 30, 1000, 1<<20)
	blocks, err := e.runner.registry.MapSizesByReduce(dep.ShuffleID, 0)
	require.NoError(t, err)

	for _, tc := range []struct {
		name   string
		cancel bool
	}{{"close", false}, {"cancel", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f, err := newFetcher(ctx, e.disk, blocks, 2, fetchLimits{maxInFlight: 4 << 10, maxToMem: DefaultMaxBlockSizeFetchToMem})
			require.NoError(t, err)
			it := newRecordIterator(ctx, f, dep.KeyCodec, dep.ValueCodec)
			for range 10 {
				require.True(t, it.Next())
			}
			require.Equal(t, 1, prefetchers())
			if tc.cancel {
				cancel()
				for it.Next() {
				}
				require.ErrorIs(t, it.Err(), context.Canceled)
			}
			require.NoError(t, it.Close())
			// Close returns only after the prefetcher exited: its channel is closed and drained.
			_, open := <-f.results
			require.False(t, open)
			require.Zero(t, f.inFlight.Load(), "every loaded segment released")
			require.False(t, it.Next())
			require.NoError(t, it.Close())
			requireNoPrefetchers(t, "prefetching goroutines left behind")
		})
	}
}

func TestFetcherCorruptMapOutput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, e *testEnv, st MapStatus)
	}{
		{"flipped data byte", func(t *testing.T, e *testEnv, st MapStatus) {
			path, err := e.disk.File(st.DataBlock())
			require.NoError(t, err)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			b[st.Lengths[0]/2] ^= 0x40 // in partition 0
			require.NoError(t, os.WriteFile(path, b, 0o644))
		}},
		{"truncated data file", func(t *testing.T, e *testEnv, st MapStatus) {
			path, err := e.disk.File(st.DataBlock())
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, st.Bytes()-3))
		}},
		{"index offsets swapped", func(t *testing.T, e *testEnv, st MapStatus) {
			path, err := e.disk.File(st.IndexBlock())
			require.NoError(t, err)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			copy(b[8:16], b[16:24])
			require.NoError(t, os.WriteFile(path, b, 0o644))
		}},
		{"index disagrees with map status", func(t *testing.T, e *testEnv, st MapStatus) {
			lengths := append([]int64(nil), st.Lengths...)
			lengths[0], lengths[1] = lengths[1], lengths[0]
			path, err := e.disk.File(st.IndexBlock())
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, encodeIndex(lengths), 0o644))
		}},
		{"truncated index", func(t *testing.T, e *testEnv, st MapStatus) {
			path, err := e.disk.File(st.IndexBlock())
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, 8))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, 64<<20, RunnerConfig{})
			dep, _ := bypassShuffle(t, e, 2, 1, 5000, 100000)
			statuses, err := e.runner.registry.MapStatuses(dep.ShuffleID)
			require.NoError(t, err)
			require.NotEqual(t, statuses[0].Lengths[0], statuses[0].Lengths[1])
			tc.damage(t, e, *statuses[0])
			var errs []error
			for p := range 2 {
				_, _, err := readSegments(t, e, dep.ShuffleID, p, dep.ValueCodec)
				errs = append(errs, err)
			}
			require.ErrorIs(t, errs[0], storage.ErrCorrupt)
			if tc.name == "flipped data byte" {
				require.NoError(t, errs[1], "partition 1 is intact")
			} else {
				require.ErrorIs(t, errs[1], storage.ErrCorrupt)
			}
		})
	}
}
