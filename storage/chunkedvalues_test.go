package storage

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/estimator"
	"github.com/spillway/spillway/memory"
)

// appendAll appends n values made by f to a new ChunkedValues, checking before each append that
// growth announces at least what the append allocates, and nothing when it allocates nothing.
func appendAll[T any](t *testing.T, n int, f func(i int) T) *ChunkedValues[T] {
	t.Helper()
	v := &ChunkedValues[T]{}
	for i := range n {
		g, before, chunks := v.growth(), v.slots, len(v.chunks)
		v.append(f(i))
		if len(v.chunks) == chunks {
			require.Zero(t, g, "value %d: growth announced without a new chunk", i)
		} else {
			require.GreaterOrEqual(t, g, v.slots-before, "value %d: the new chunk takes more than announced", i)
		}
	}
	return v
}

// ChunkedValues grows by whole chunks (64 values, doubling up to 64 KiB of slots) that never
// move, keeps the values in order, and bounds its slots by what the estimator measures.
func TestChunkedValuesGrowsWithoutCopying(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
	}{
		{name: "empty", n: 0},
		{name: "one", n: 1},
		{name: "first chunk full", n: 64},
		{name: "second chunk", n: 65},
		{name: "many full-size chunks", n: 100_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &ChunkedValues[int64]{}
			var firsts []*int64 // the first slot of every chunk, which must never move
			for i := range tc.n {
				chunks := len(v.chunks)
				v.append(int64(i))
				if len(v.chunks) > chunks {
					firsts = append(firsts, &v.chunks[len(v.chunks)-1][:1][0])
				}
			}
			require.Equal(t, tc.n, v.Len())
			var want []int64
			for i := range tc.n {
				want = append(want, int64(i))
			}
			require.Equal(t, want, nilIfEmpty(slices.Collect(v.All())))
			got, err := Collect(v.Iterator())
			require.NoError(t, err)
			require.Equal(t, want, nilIfEmpty(got))
			size, c := 0, firstValueChunk
			var slots int64
			for i, chunk := range v.chunks {
				require.Equal(t, c, cap(chunk), "chunk %d", i)
				require.Same(t, firsts[i], &chunk[:1][0], "chunk %d moved", i)
				if i < len(v.chunks)-1 {
					require.Len(t, chunk, c, "only the last chunk may have free slots")
				}
				size += len(chunk)
				slots += allocBound(int64(c) * 8)
				c = min(2*c, valueChunkBytes/8)
			}
			require.Equal(t, tc.n, size)
			require.Equal(t, slots+allocBound(int64(cap(v.chunks))*sliceHeaderBytes), v.slots)
			require.LessOrEqual(t, estimator.Estimate(v.chunks), v.slots, "slots bound what the heap holds")
		})
	}
	t.Run("growth is announced", func(t *testing.T) {
		v := appendAll(t, 50_000, func(i int) string { return fmt.Sprint(i) })
		require.Equal(t, 50_000, v.Len())
		v2 := appendAll(t, 300, func(i int) [100]int64 { return [100]int64{int64(i)} })
		require.Equal(t, valueChunkBytes/800, cap(v2.chunks[len(v2.chunks)-1]), "chunks of large elements are capped by bytes")
		v3 := appendAll(t, 1000, func(int) struct{} { return struct{}{} })
		require.Equal(t, 1000, v3.Len())
		require.Zero(t, v3.slots-allocBound(int64(cap(v3.chunks))*sliceHeaderBytes), "zero-size values take no slots")
	})
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// trim copies only a last chunk and an index that are less than half full.
func TestChunkedValuesTrim(t *testing.T) {
	for _, tc := range []struct {
		n            int
		trimmed      bool
		lastCap, idx int
	}{
		{n: 1, trimmed: true, lastCap: 1, idx: 1},
		{n: 31, trimmed: true, lastCap: 31, idx: 1},
		{n: 32, trimmed: true, lastCap: 64, idx: 1},         // the chunk is half full: only the index
		{n: 64 + 100, trimmed: false, lastCap: 128, idx: 4}, // 100 of 128 slots, 2 of 4 chunks
		{n: 64 + 63, trimmed: true, lastCap: 63, idx: 4},
		{n: 64 + 128 + 256 + 512 + 3, trimmed: true, lastCap: 3, idx: 8},
		{n: 64 + 128 + 256 + 512 + 1024 + 2048 + 4096 + 8192 + 1, trimmed: true, lastCap: 1, idx: 16},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			v := appendAll(t, tc.n, func(i int) int64 { return int64(i) })
			before := v.slots
			b := v.trimBytes()
			require.Equal(t, tc.trimmed, b > 0)
			v.trim()
			require.Equal(t, tc.lastCap, cap(v.chunks[len(v.chunks)-1]))
			require.Equal(t, tc.idx, cap(v.chunks))
			require.LessOrEqual(t, v.slots, before)
			require.Zero(t, v.trimBytes(), "trim leaves nothing to trim")
			got, err := Collect(v.Iterator())
			require.NoError(t, err)
			require.Len(t, got, tc.n)
			for i, x := range got {
				require.Equal(t, int64(i), x)
			}
		})
	}
}

// The draining iterator hands out every value once and clears each slot as it goes; Close
// drops the chunks not yet read.
func TestChunkedValuesDraining(t *testing.T) {
	v := appendAll(t, 500, func(i int) *int { return &i })
	chunks := slices.Clone(v.chunks) // the test's own view of the chunks
	it := v.draining()
	require.Zero(t, v.Len())
	for i := range 100 {
		require.True(t, it.Next())
		require.Equal(t, i, *it.Value())
	}
	for i := range 100 {
		c, j := 0, i
		if j >= 64 {
			c, j = 1, j-64
		}
		require.Nil(t, chunks[c][j], "slot %d still holds its value", i)
	}
	require.NotNil(t, chunks[1][100-64], "the values not read stay")
	require.NoError(t, it.Close())
	require.False(t, it.Next())
	require.NoError(t, it.Err())
}

// strictStore returns a MemoryStore under strict accounting whose storage memory is budget
// bytes, with a small unroll threshold so the budget can be smaller than the default 1 MiB.
func strictStore(t *testing.T, budget int64) *MemoryStore {
	t.Helper()
	m, err := memory.NewUnifiedManager(memory.Config{SystemMemory: budget, ReservedMemory: storageNoReserve, Fraction: 1, NumCores: 1})
	require.NoError(t, err)
	require.Equal(t, memory.Strict, m.Accounting())
	ms, err := NewMemoryStore(m, NewBlockInfoManager(), nil, MemoryStoreConfig{UnrollMemoryThreshold: 16 << 10})
	require.NoError(t, err)
	return ms
}

// putGenerated unrolls n values made by f as values in ms and reports the stored size (0 and
// the values handed back when they did not fit: all n must come back, in order). Memory returns
// to zero once the block is removed or the values handed back are read.
func putGenerated[T comparable](t *testing.T, ms *MemoryStore, n int, f func(i int) T) int64 {
	t.Helper()
	id := RDDBlockID(0, 0)
	i := 0
	size, partial, err := PutIteratorAsValues(context.Background(), ms, msTask, id, FuncIterator(func() (T, bool, error) {
		var zero T
		if i == n {
			return zero, false, nil
		}
		i++
		return f(i - 1), true, nil
	}, nil), memory.OnHeap)
	require.NoError(t, err)
	read := func(it Iterator[T]) {
		k := 0
		for it.Next() {
			if it.Value() != f(k) {
				require.Equal(t, f(k), it.Value(), "value %d", k)
			}
			k++
		}
		require.NoError(t, it.Err())
		require.NoError(t, it.Close())
		require.Equal(t, n, k)
	}
	if partial != nil {
		read(partial)
	} else {
		it, ok, err := GetValues[T](ms, id)
		require.NoError(t, err)
		require.True(t, ok)
		read(it)
		require.Equal(t, size, ms.Size(id))
		require.True(t, ms.Remove(id))
	}
	require.Zero(t, ms.CurrentUnrollMemory())
	require.Zero(t, ms.MemoryUsed())
	return size
}

// A MEMORY_ONLY partition whose values needed N growths of one array under the old design (64
// slots doubled N times: its last growth held c = 64·2^(N-1) old slots and 2c new ones at once)
// is now cached at a budget derived from its size alone: its stored size S plus one chunk and a
// little for the index of chunks and the allocator's rounding, where the old design needed at
// least 3c slots. Below S it is
// refused, every value handed back.
func TestStrictMemoryOnlyFitsItsValues(t *testing.T) {
	type pair = Pair[int64, string]
	mkPair := func(i int) pair { return pair{Key: int64(i), Value: fmt.Sprintf("value-%08x", i)} }
	mkInt := func(i int) int64 { return int64(i) * 7 }
	putInts := func(t *testing.T, ms *MemoryStore, n int) int64 { return putGenerated(t, ms, n, mkInt) }
	putPairs := func(t *testing.T, ms *MemoryStore, n int) int64 { return putGenerated(t, ms, n, mkPair) }
	for _, tc := range []struct {
		name    string
		growths int
		elem    int64 // slot bytes
		put     func(t *testing.T, ms *MemoryStore, n int) int64
	}{
		{"int64", 8, 8, putInts},
		{"int64", 10, 8, putInts},
		{"int64", 13, 8, putInts},
		{"pair", 7, 24, putPairs},
		{"pair", 9, 24, putPairs},
		{"pair", 11, 24, putPairs},
	} {
		c := 64 << (tc.growths - 1) // the full array the last growth copied
		n := c + 1
		t.Run(fmt.Sprintf("%s/%d growths", tc.name, tc.growths), func(t *testing.T) {
			size := tc.put(t, strictStore(t, 1<<30), n)
			require.Positive(t, size)
			budget := size + valueChunkBytes + 4<<10 + size/256 // a chunk, the index, rounding
			old := 3 * int64(c) * tc.elem
			t.Logf("%d values: stored %d bytes, cached at a budget of %d; the old design held %d bytes of slots at its last growth",
				n, size, budget, old)
			require.Less(t, budget, old, "the case must be one the old design refused")
			require.Equal(t, size, tc.put(t, strictStore(t, budget), n), "not cached at its size plus one chunk")
			require.Zero(t, tc.put(t, strictStore(t, size-1), n), "cached below its size")
		})
	}
}

var valuesSeed = flag.Uint64("values-seed", 0, "replay TestBMRandomValuesKeepAccounting with this seed (0: a random one)")

// Randomized puts (values at every level, most of them deserialized, of sizes from nothing to
// more than the budget), reads (values and bytes, from memory or disk, caching disk blocks
// back), GetOrElseUpdate, removals and execution memory evicting blocks (dropping them to disk
// when their level allows) through a BlockManager under strict accounting. After every step the
// storage memory in use is the blocks' sizes, no unroll memory or lock is left, every block
// whose level uses disk still exists and every block reads back as put; at the end, with every
// block removed, the accounting is zero and no block file is left. Replay a failure with
// -values-seed.
func TestBMRandomValuesKeepAccounting(t *testing.T) {
	seed := *valuesSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay with -values-seed %d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const (
		budget = 256 << 10
		task   = memory.TaskID(3)
	)
	m, err := memory.NewUnifiedManager(memory.Config{SystemMemory: budget, ReservedMemory: storageNoReserve, Fraction: 1, NumCores: 1})
	require.NoError(t, err)
	require.Equal(t, memory.Strict, m.Accounting())
	bm, err := NewBlockManager(Config{Memory: m, DiskConfig: DiskConfig{Dirs: []string{t.TempDir()}},
		MemoryStore: MemoryStoreConfig{UnrollMemoryThreshold: 4 << 10}})
	require.NoError(t, err)
	defer func() { require.NoError(t, bm.Close()) }()
	ms := bm.MemoryStore()
	ctx := context.Background()

	type record = Pair[int64, string]
	codec := NewPairCodec[int64, string](VarintCodec[int64]{}, StringCodec{})
	type block struct {
		n, gen int
		level  Level
	}
	gen := func(b block) Iterator[record] {
		i := 0
		return FuncIterator(func() (record, bool, error) {
			if i == b.n {
				return record{}, false, nil
			}
			i++
			return record{Key: int64(i - 1), Value: fmt.Sprintf("%d-%d", b.gen, i-1)}, true, nil
		}, nil)
	}
	check := func(step int, b block, it Iterator[record]) {
		t.Helper()
		k := 0
		for it.Next() {
			if r := it.Value(); r.Key != int64(k) || r.Value != fmt.Sprintf("%d-%d", b.gen, k) {
				require.Failf(t, "wrong record", "step %d: record %d is %v", step, k, r)
			}
			k++
		}
		require.NoError(t, it.Err(), "step %d", step)
		require.NoError(t, it.Close(), "step %d", step)
		require.Equal(t, b.n, k, "step %d: records read", step)
	}
	levels := []Level{MemoryOnly, MemoryOnly, MemoryAndDisk, MemoryAndDisk, MemoryOnlySer, MemoryAndDiskSer, DiskOnly}
	var ids []BlockID
	for r := range 3 {
		for s := range 4 {
			ids = append(ids, RDDBlockID(r, s))
		}
	}
	model := map[BlockID]block{}
	var execHeld int64
	for step := range 400 {
		id := ids[rng.IntN(len(ids))]
		b, exists := model[id]
		if exists && !bm.Contains(id) {
			require.False(t, b.level.UseDisk(), "step %d: block %s (%s) lost", step, id, b.level)
			delete(model, id) // a memory-only block evicted
			exists = false
		}
		switch op := rng.IntN(8); {
		case op <= 1 && !exists: // put
			b := block{n: rng.IntN(8000), gen: step, level: levels[rng.IntN(len(levels))]}
			ok, err := PutIterator(ctx, bm, task, id, gen(b), b.level, codec)
			require.NoError(t, err, "step %d", step)
			require.Equal(t, ok, bm.Contains(id), "step %d", step)
			if b.level.UseDisk() {
				require.True(t, ok, "step %d: a %s block is always stored", step, b.level)
			}
			if ok {
				model[id] = b
			}
		case op == 2 && !exists: // compute and cache
			b := block{n: rng.IntN(8000), gen: step, level: levels[rng.IntN(len(levels))]}
			it, cached, err := GetOrElseUpdate(ctx, bm, task, id, b.level, codec, func() (Iterator[record], error) { return gen(b), nil })
			require.NoError(t, err, "step %d", step)
			check(step, b, it)
			require.Equal(t, cached, bm.Contains(id), "step %d", step)
			if cached {
				model[id] = b
			}
		case op == 3 && exists: // read the values
			it, ok, err := GetLocalValues(ctx, bm, task, id, codec)
			require.NoError(t, err, "step %d", step)
			require.True(t, ok, "step %d", step)
			check(step, b, it)
		case op == 4 && exists: // read the bytes
			bb, ok, err := GetLocalBytes(ctx, bm, task, id, codec)
			require.NoError(t, err, "step %d", step)
			require.True(t, ok, "step %d", step)
			check(step, b, recordIterator(NewRecordReader(bb, bb.Size()), Codec[record](codec), bb.Close))
		case op == 5 && exists:
			ok, err := bm.Remove(ctx, task, id)
			require.NoError(t, err, "step %d", step)
			require.True(t, ok, "step %d", step)
			delete(model, id)
		case op == 6: // execution memory evicts blocks
			got, err := m.AcquireExecution(ctx, rng.Int64N(budget), task, memory.OnHeap)
			require.NoError(t, err, "step %d", step)
			execHeld += got
		case op == 7 && execHeld > 0:
			m.ReleaseExecution(execHeld, task, memory.OnHeap)
			execHeld = 0
		}
		require.Zero(t, ms.CurrentUnrollMemory(), "step %d: unroll memory left", step)
		require.Equal(t, ms.BlocksMemoryUsed(), m.StorageUsed(), "step %d", step)
		require.LessOrEqual(t, m.StorageUsed()+m.ExecutionUsed(), int64(budget), "step %d", step)
		for _, id := range ids {
			readers, writer, _ := bm.BlockInfo().LockState(id)
			require.Zero(t, readers, "step %d: %s read-locked", step, id)
			require.Equal(t, NoWriter, writer, "step %d: %s write-locked", step, id)
			if b, ok := model[id]; ok && b.level.UseDisk() {
				require.True(t, bm.Contains(id), "step %d: block %s (%s) lost", step, id, b.level)
			}
		}
	}
	mm := ms.Metrics()
	t.Logf("evicted %d blocks (%d bytes), %d of them kept on disk", mm.EvictedBlocks, mm.EvictedBytes, mm.DroppedToDisk)
	m.ReleaseExecution(execHeld, task, memory.OnHeap)
	for _, id := range ids {
		_, err := bm.Remove(ctx, task, id)
		require.NoError(t, err)
	}
	require.NoError(t, bm.EndTask(task))
	require.Zero(t, m.StorageUsed())
	require.Zero(t, m.ExecutionUsed())
	require.Zero(t, ms.Len())
	require.Zero(t, bm.BlockInfo().Len())
	for _, id := range ids {
		require.False(t, bm.DiskStore().Contains(id), "block file of %s left", id)
	}
}

// The largest MEMORY_ONLY partition cached at a 4 MiB budget under strict accounting takes the
// whole budget but about one chunk, whatever its values: 64-bit integers (slots only) and
// pairs of an integer and a 14-byte string (slots and the strings they point to). The unroll
// threshold is the default 1 MiB. The figures are logged; before values were chunked, doubling
// one array cut them to 131,071 integers (1 MiB) and 32,767 pairs.
func TestStrictLargestMemoryOnlyPartition(t *testing.T) {
	if raceEnabled {
		t.Skip("a measurement: it runs without the race detector")
	}
	const budget, step = 4 << 20, 256
	largest := func(t *testing.T, fits func(ms *MemoryStore, n int) int64) (int, int64) {
		store := func() *MemoryStore {
			m, err := memory.NewUnifiedManager(memory.Config{SystemMemory: budget, ReservedMemory: storageNoReserve, Fraction: 1, NumCores: 1})
			require.NoError(t, err)
			ms, err := NewMemoryStore(m, NewBlockInfoManager(), nil, MemoryStoreConfig{})
			require.NoError(t, err)
			return ms
		}
		k := sort.Search(budget/8/step+1, func(k int) bool { return fits(store(), (k+1)*step) == 0 })
		n := k * step
		return n, fits(store(), n)
	}
	for _, tc := range []struct {
		name string
		fits func(ms *MemoryStore, n int) int64
	}{
		{"int64", func(ms *MemoryStore, n int) int64 {
			return putGenerated(t, ms, n, func(i int) int64 { return int64(i) })
		}},
		{"pair", func(ms *MemoryStore, n int) int64 {
			return putGenerated(t, ms, n, func(i int) Pair[int64, string] {
				return Pair[int64, string]{Key: int64(i), Value: fmt.Sprintf("value-%08x", i)}
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, size := largest(t, tc.fits)
			t.Logf("%s: %d values cached in %d bytes at a budget of %d bytes", tc.name, n, size, budget)
			require.GreaterOrEqual(t, size, int64(budget-2*valueChunkBytes))
		})
	}
}

// GetValues with another element type than the block's is an error naming both.
func TestGetValuesWrongType(t *testing.T) {
	ms := strictStore(t, 1<<20)
	id := RDDBlockID(0, 0)
	_, partial, err := PutIteratorAsValues(context.Background(), ms, msTask, id, SliceIterator([]int64{1, 2, 3}), memory.OnHeap)
	require.NoError(t, err)
	require.Nil(t, partial)
	_, ok, err := GetValues[string](ms, id)
	require.True(t, ok)
	require.EqualError(t, err, "storage: block rdd_0_0 holds *storage.ChunkedValues[int64], not *storage.ChunkedValues[string]")
	it, _, err := GetValues[int64](ms, id)
	require.NoError(t, err)
	got, err := Collect(it)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3}, got)
	require.True(t, ms.Remove(id))
	require.Zero(t, ms.MemoryUsed())
}

// Trimming a stored block's last chunk uses free memory only: it does not evict another block
// to save less than a chunk. 8,193 int64s fill seven chunks (8,128 values) and put 65 in an
// eighth of 8,192: trimmed, the block takes about 64 KiB, untrimmed about 128 KiB. Block a (300
// int64s, about 2.5 KiB) is cached first; the budget holds it and b untrimmed, and the trim's
// copy (1 KiB) only with extra free memory.
func TestStrictTrimDoesNotEvict(t *testing.T) {
	const n = 8193
	mk := func(i int) int64 { return int64(i) }
	trimmed := putGenerated(t, strictStore(t, 1<<30), n, mk)
	untrimmed := appendAll(t, n, mk).slots // what the unroll holds at its end
	for _, tc := range []struct {
		name  string
		extra int64 // the budget beyond block a and b's untrimmed values
		trim  bool
	}{
		{"no free memory", 0, false},
		{"free memory", 8 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := RDDBlockID(1, 0), RDDBlockID(2, 0)
			aVals := SliceIterator(make([]int64, 300))
			aSize := putGenerated(t, strictStore(t, 1<<30), 300, func(int) int64 { return 0 })
			ms := strictStore(t, aSize+untrimmed+tc.extra)
			_, ok, err := ms.info.LockNewBlockForWriting(context.Background(), msTask, a, MemoryOnly, false)
			require.NoError(t, err)
			require.True(t, ok)
			size, partial, err := PutIteratorAsValues(context.Background(), ms, msTask, a, aVals, memory.OnHeap)
			require.NoError(t, err)
			require.Nil(t, partial)
			require.Equal(t, aSize, size)
			ms.info.Unlock(msTask, a)
			i := 0
			size, partial, err = PutIteratorAsValues(context.Background(), ms, msTask, b, FuncIterator(func() (int64, bool, error) {
				if i == n {
					return 0, false, nil
				}
				i++
				return mk(i - 1), true, nil
			}, nil), memory.OnHeap)
			require.NoError(t, err)
			require.Nil(t, partial, "b not cached")
			require.True(t, ms.Contains(a), "block a was evicted")
			require.Equal(t, tc.trim, size == trimmed, "b stored in %d bytes, %d trimmed", size, trimmed)
		})
	}
}
