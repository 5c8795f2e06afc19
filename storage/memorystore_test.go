package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/spillway/spillway/estimator"
	"github.com/spillway/spillway/memory"
)

// The MemoryStoreSuite harness (core/src/test/scala/org/apache/spark/storage/
// MemoryStoreSuite.scala): UMM(12000) (fraction 1, no reserved
// memory, storage fraction 0.5, one core), a BlockInfoManager, the default eviction handler
// (evicted blocks are just dropped), unroll threshold 512.
//
// Go sizes differ from the JVM's, so the lists are chosen (with estimator.Estimate, see
// TestMSListSizes) so that the same fits / does-not-fit relations hold in this harness:
//   - smallList: 40 byte slices of 80 bytes, 4,224 bytes deserialized (a 40-slot [][]byte in a
//     1,024-byte size class + 40 × 80): two fit in 12,000 bytes together with the unroll memory
//     of a third, three do not. Serialized, 40 slices of 110 bytes (≈ 4.5 KB) play that part.
//   - bigList: 40 byte slices of 1,000 bytes (≈ 42 KB; 2,000 bytes when serialized, so that
//     its first reservation already needs an eviction): never fits.
const (
	msMaxHeap        = 12000
	msUnrollThresh   = 512
	msTask           = memory.TaskID(1)
	smallElem        = 80
	smallSerElem     = 110
	bigElem          = 1000
	bigSerElem       = 2000
	msListLen        = 40
	storageNoReserve = memory.NoReservedMemory
)

func byteList(n, size int, seed byte) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Repeat([]byte{seed + byte(i)}, size)
	}
	return out
}

// newTestUMM is the memory manager of the ported Spark scenarios. They count on Spark's unroll
// policy (a size check every UnrollMemoryCheckPeriod records), so it keeps Spark's allowances;
// strict accounting is tested by TestStrictUnroll* and by internal/heapbound.
func newTestUMM(t testing.TB, onHeap, offHeap int64, storageFraction float64) *memory.UnifiedManager {
	t.Helper()
	m, err := memory.NewUnifiedManager(memory.Config{
		SystemMemory: onHeap, ReservedMemory: storageNoReserve, Fraction: 1, StorageFraction: storageFraction,
		OffHeapSize: offHeap, NumCores: 1, Accounting: memory.SparkAllowances,
	})
	require.NoError(t, err)
	return m
}

type msHarness struct {
	t    testing.TB
	m    *memory.UnifiedManager
	info *BlockInfoManager
	ms   *MemoryStore
	logs *observer.ObservedLogs
}

func newMSHarness(t testing.TB, maxHeap int64) *msHarness {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	h := &msHarness{t: t, m: newTestUMM(t, maxHeap, 0, 0.5), info: NewBlockInfoManager(), logs: logs}
	ms, err := NewMemoryStore(h.m, h.info, nil, MemoryStoreConfig{UnrollMemoryThreshold: msUnrollThresh, Logger: zap.New(core)})
	require.NoError(t, err)
	h.ms = ms
	t.Cleanup(func() {
		if !t.Failed() {
			h.ms.Clear()
		}
	})
	return h
}

// putValues is the suite's putIteratorAsValues helper: lock the new block for writing, put,
// unlock (so the block is evictable later).
func (h *msHarness) putValues(name string, list [][]byte) (int64, *PartiallyUnrolledIterator[[]byte]) {
	h.t.Helper()
	id := TestBlockID(name)
	_, ok, err := h.info.LockNewBlockForWriting(context.Background(), msTask, id, MemoryOnly, false)
	require.NoError(h.t, err)
	require.True(h.t, ok, "block %s already exists", id)
	size, partial, err := PutIteratorAsValues(context.Background(), h.ms, msTask, id, SliceIterator(list), memory.OnHeap)
	require.NoError(h.t, err)
	h.info.Unlock(msTask, id)
	return size, partial
}

func (h *msHarness) putBytes(name string, list [][]byte) (int64, *PartiallySerializedBlock[[]byte]) {
	h.t.Helper()
	id := TestBlockID(name)
	_, ok, err := h.info.LockNewBlockForWriting(context.Background(), msTask, id, MemoryOnlySer, false)
	require.NoError(h.t, err)
	require.True(h.t, ok, "block %s already exists", id)
	size, partial, err := PutIteratorAsBytes(context.Background(), h.ms, msTask, id, SliceIterator(list), memory.OnHeap, Codec[[]byte](BytesCodec{}))
	require.NoError(h.t, err)
	h.info.Unlock(msTask, id)
	return size, partial
}

// remove is the suite's "lock for writing, remove, removeBlock".
func (h *msHarness) remove(name string) {
	h.t.Helper()
	id := TestBlockID(name)
	_, ok, err := h.info.LockForWriting(context.Background(), msTask, id, true)
	require.NoError(h.t, err)
	require.True(h.t, ok)
	h.ms.Remove(id)
	h.info.RemoveBlock(msTask, id)
}

func (h *msHarness) contains(name string) bool { return h.ms.Contains(TestBlockID(name)) }

func (h *msHarness) unroll() int64 { return h.ms.CurrentUnrollMemoryForTask(msTask, memory.OnHeap) }

func (h *msHarness) values(name string) [][]byte {
	h.t.Helper()
	it, ok, err := GetValues[[]byte](h.ms, TestBlockID(name))
	require.NoError(h.t, err)
	require.True(h.t, ok)
	vs, err := Collect(it)
	require.NoError(h.t, err)
	return vs
}

// TestMSListSizes pins the Go sizes the MS scenarios rely on (the JVM's differ; see the
// harness comment).
func TestMSListSizes(t *testing.T) {
	small, big := byteList(msListLen, smallElem, 0), byteList(msListLen, bigElem, 0)
	require.Equal(t, int64(1024+40*80), estimator.Estimate(small)) // 40 × 24-byte headers in a 1,024-byte size class
	require.Greater(t, estimator.Estimate(big), int64(msMaxHeap))
	t.Logf("small %d big %d", estimator.Estimate(small), estimator.Estimate(big))
}

// MS-01 — MemoryStoreSuite "reserve/release unroll memory".
func TestMS01ReserveReleaseUnrollMemory(t *testing.T) {
	h := newMSHarness(t, msMaxHeap)
	ms, id := h.ms, TestBlockID("b")
	require.Zero(t, ms.CurrentUnrollMemory())
	require.Zero(t, h.unroll())
	steps := []struct {
		reserve, release int64 // release < 0: release all
		ok               bool
		want             int64
	}{
		{reserve: 100, ok: true, want: 100},
		{reserve: 200, ok: true, want: 300},
		{reserve: 500, ok: true, want: 800},
		{reserve: 1000000, ok: false, want: 800},
		{release: 100, want: 700},
		{release: 100, want: 600},
		{reserve: 4400, ok: true, want: 5000},
		{reserve: 20000, ok: false, want: 5000},
		{release: 1000, want: 4000},
		{release: -1, want: 0},
	}
	for i, s := range steps {
		switch {
		case s.reserve > 0:
			ok, err := ms.ReserveUnrollMemoryForThisTask(msTask, id, s.reserve, memory.OnHeap)
			require.NoError(t, err)
			require.Equal(t, s.ok, ok, "step %d", i)
		case s.release < 0:
			ms.ReleaseUnrollMemoryForThisTask(msTask, memory.OnHeap, 1<<62)
		default:
			ms.ReleaseUnrollMemoryForThisTask(msTask, memory.OnHeap, s.release)
		}
		require.Equal(t, s.want, h.unroll(), "step %d", i)
		require.Equal(t, s.want, ms.CurrentUnrollMemory(), "step %d", i)
		require.Equal(t, s.want, h.m.StorageUsed(), "step %d", i)
	}
	require.Zero(t, ms.NumTasksUnrolling())
}

// MS-02 — MemoryStoreSuite "safely unroll blocks".
func TestMS02SafelyUnrollBlocks(t *testing.T) {
	h := newMSHarness(t, msMaxHeap)
	small := func() [][]byte { return byteList(msListLen, smallElem, 1) }
	big := byteList(msListLen, bigElem, 2)

	// 1. Unroll with all the space in the world.
	size, partial := h.putValues("unroll", small())
	require.Nil(t, partial)
	require.Positive(t, size)
	require.Zero(t, h.unroll())
	require.Equal(t, small(), h.values("unroll"))
	h.remove("unroll")

	// 2. Unroll with not enough space: someBlock1 (least recently used) is evicted.
	for _, name := range []string{"someBlock1", "someBlock2", "unroll"} {
		_, partial := h.putValues(name, small())
		require.Nil(t, partial, name)
		require.Zero(t, h.unroll())
	}
	require.True(t, h.contains("someBlock2"))
	require.False(t, h.contains("someBlock1"))
	require.Equal(t, small(), h.values("someBlock2"))
	require.Equal(t, small(), h.values("unroll"))
	h.remove("unroll")

	// 3. A block that never fits: an iterator comes back, someBlock2 was evicted on the way.
	_, partial = h.putValues("someBlock3", small())
	require.Nil(t, partial)
	_, partial = h.putValues("unroll", big)
	require.NotNil(t, partial)
	require.Positive(t, h.unroll(), "the returned iterator holds unroll memory")
	require.False(t, h.contains("someBlock2"))
	got, err := Collect[[]byte](partial)
	require.NoError(t, err)
	require.Equal(t, big, got)
	require.Zero(t, h.unroll())
}

// MS-03 — MemoryStoreSuite "safely unroll blocks through putIteratorAsValues", and MS-04 —
// "safely unroll blocks through putIteratorAsBytes". The serialized lists use 110-byte (small)
// and 2,000-byte (big) elements so the relations hold with BytesCodec's encoding in the record
// format (a small list serializes to about 4.5 KB).
func TestMS03MS04SafelyUnrollBlocks(t *testing.T) {
	for _, tc := range []struct {
		name       string
		small, big int
		// put stores a list; release ends a failed put's partial result.
		put func(h *msHarness, name string, list [][]byte) (release func() error, failed bool)
	}{
		{"MS-03 putIteratorAsValues", smallElem, bigElem, func(h *msHarness, name string, list [][]byte) (func() error, bool) {
			_, partial := h.putValues(name, list)
			if partial == nil {
				return nil, false
			}
			return partial.Close, true
		}},
		{"MS-04 putIteratorAsBytes", smallSerElem, bigSerElem, func(h *msHarness, name string, list [][]byte) (func() error, bool) {
			_, partial := h.putBytes(name, list)
			if partial == nil {
				return nil, false
			}
			return partial.Discard, true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newMSHarness(t, msMaxHeap)
			putSmall := func(name string) {
				_, failed := tc.put(h, name, byteList(msListLen, tc.small, 1))
				require.False(t, failed, name)
			}
			putSmall("b1")
			putSmall("b2")
			require.True(t, h.contains("b1"))
			require.True(t, h.contains("b2"))
			require.Zero(t, h.unroll())
			for _, b := range []string{"b1", "b2"} { // re-put through the locking helper
				h.remove(b)
				putSmall(b)
			}
			putSmall("b3")
			require.False(t, h.contains("b1"))
			require.True(t, h.contains("b2"))
			require.True(t, h.contains("b3"))
			require.Zero(t, h.unroll())
			h.remove("b3")
			putSmall("b3")

			release, failed := tc.put(h, "b4", byteList(msListLen, tc.big, 2))
			require.True(t, failed)
			require.False(t, h.contains("b1"))
			require.False(t, h.contains("b2"))
			require.True(t, h.contains("b3"))
			require.False(t, h.contains("b4"))
			require.Positive(t, h.unroll())
			require.NoError(t, release())
			require.Zero(t, h.unroll())
			require.NoError(t, release(), "Close and Discard are idempotent")
		})
	}
}

// MS-05 — MemoryStoreSuite "PartiallySerializedBlock.valuesIterator".
func TestMS05PartiallySerializedBlockValuesIterator(t *testing.T) {
	h := newMSHarness(t, msMaxHeap)
	big := byteList(msListLen, bigSerElem, 3)
	_, partial := h.putBytes("b1", big)
	require.NotNil(t, partial)
	require.Positive(t, h.unroll())
	got, err := Collect(partial.ValuesIterator())
	require.NoError(t, err)
	require.Equal(t, big, got)
	require.Zero(t, h.unroll())
	require.PanicsWithValue(t, "storage: can only call one of FinishWritingToStream or ValuesIterator, and only once",
		func() { partial.ValuesIterator() })
	require.PanicsWithValue(t, "storage: can only call one of FinishWritingToStream or ValuesIterator, and only once",
		func() { _ = partial.FinishWritingToStream(io.Discard) })
}

// MS-06 — MemoryStoreSuite "PartiallySerializedBlock.finishWritingToStream".
func TestMS06PartiallySerializedBlockFinishWritingToStream(t *testing.T) {
	h := newMSHarness(t, msMaxHeap)
	big := byteList(msListLen, bigSerElem, 4)
	_, partial := h.putBytes("b1", big)
	require.NotNil(t, partial)
	var out bytes.Buffer
	require.NoError(t, partial.FinishWritingToStream(&out))
	require.Zero(t, h.unroll())
	got := readRecords(t, out.Bytes())
	require.Equal(t, big, got)

	require.NoError(t, partial.Discard())
	require.PanicsWithValue(t, "storage: cannot call methods on a discarded PartiallySerializedBlock",
		func() { partial.ValuesIterator() })
}

func readRecords(t testing.TB, b []byte) [][]byte {
	t.Helper()
	tr := NewTypedReader(NewRecordReader(bytes.NewReader(b), int64(len(b))), Codec[[]byte](BytesCodec{}))
	var got [][]byte
	for v, err := range tr.All() {
		require.NoError(t, err)
		got = append(got, v)
	}
	return got
}

// MS-09 — MemoryStoreSuite "put a small ByteBuffer to MemoryStore".
func TestMS09PutSmallByteBuffer(t *testing.T) {
	h := newMSHarness(t, msMaxHeap)
	id := RDDBlockID(3, 10)
	calls := 0
	ok, err := h.ms.PutBytes(id, 10000, memory.OnHeap, func() (*ChunkedBuffer, error) {
		calls++
		return NewChunkedBuffer(make([]byte, 4096), make([]byte, 4096), make([]byte, 1808)), nil
	})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 1, calls)
	require.Equal(t, int64(10000), h.ms.Size(id))
	buf, ok, err := h.ms.GetBytes(id)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(10000), buf.Size())

	// A block that cannot fit: the producer is never called (SPARK-6076).
	ok, err = h.ms.PutBytes(RDDBlockID(3, 11), 20000, memory.OnHeap, func() (*ChunkedBuffer, error) {
		calls++
		return nil, errors.New("must not be called")
	})
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, 1, calls)

	// Errors: a producer failure and a wrong size release the memory.
	boom := errors.New("boom")
	_, err = h.ms.PutBytes(RDDBlockID(3, 12), 100, memory.OnHeap, func() (*ChunkedBuffer, error) { return nil, boom })
	require.ErrorIs(t, err, boom)
	_, err = h.ms.PutBytes(RDDBlockID(3, 13), 100, memory.OnHeap, func() (*ChunkedBuffer, error) {
		return NewChunkedBuffer(make([]byte, 99)), nil
	})
	require.ErrorContains(t, err, "made 99 bytes, not the 100 announced")
	_, err = h.ms.PutBytes(id, 1, memory.OnHeap, nil)
	require.ErrorIs(t, err, ErrBlockExists)
	require.Equal(t, int64(10000), h.m.StorageUsed())

	_, _, err = GetValues[[]byte](h.ms, id)
	require.ErrorContains(t, err, "should only call GetValues on deserialized blocks")
	require.True(t, h.ms.Remove(id))
	require.False(t, h.ms.Remove(id))
	require.Zero(t, h.m.StorageUsed())
}

// closer records Close calls; it fails when told to.
type closer struct {
	closed *int
	fail   bool
}

func (c closer) Close() error {
	*c.closed++
	if c.fail {
		return errors.New("close failed")
	}
	return nil
}

// MS-11 — values implementing io.Closer are closed on Remove and Clear; close failures are
// logged, not returned [derived from MemoryStore.remove / clear].
func TestMS11CloseableValuesAreClosed(t *testing.T) {
	h := newMSHarness(t, msMaxHeap)
	closed := 0
	put := func(name string, vs ...closer) {
		_, partial, err := PutIteratorAsValues(context.Background(), h.ms, msTask, TestBlockID(name), SliceIterator(vs), memory.OnHeap)
		require.NoError(t, err)
		require.Nil(t, partial)
	}
	put("a", closer{closed: &closed}, closer{closed: &closed, fail: true})
	put("b", closer{closed: &closed})
	put("c", closer{closed: &closed})
	require.True(t, h.ms.Remove(TestBlockID("a")))
	require.Equal(t, 2, closed)
	require.Equal(t, 1, h.logs.FilterMessage("Error closing a value of a removed block").Len())
	h.ms.Clear()
	require.Equal(t, 4, closed)
	require.Zero(t, h.m.StorageUsed())
	require.Zero(t, h.ms.Len())
	_, ok, err := h.ms.GetBytes(TestBlockID("b"))
	require.NoError(t, err)
	require.False(t, ok)
}

// cancelAt yields list and cancels ctx while producing element k (1-based).
func cancelAt[T any](list []T, k int, cancel context.CancelFunc) Iterator[T] {
	i := 0
	return FuncIterator(func() (T, bool, error) {
		if i == len(list) {
			var zero T
			return zero, false, nil
		}
		i++
		if i == k {
			cancel()
		}
		return list[i-1], true, nil
	}, nil)
}

// MS-12 — interruption during unroll (SPARK-45025) [derived from MemoryStore.putIterator]: a
// cancelled ctx stops the unrolling; the values put returns the partial iterator (holding the
// unroll memory reserved so far, released when it is consumed), the bytes put also returns
// ctx.Err().
func TestMS12InterruptionDuringUnroll(t *testing.T) {
	list := byteList(100, 8, 5)
	t.Run("values", func(t *testing.T) {
		h := newMSHarness(t, msMaxHeap)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		size, partial, err := PutIteratorAsValues(ctx, h.ms, msTask, TestBlockID("v"), cancelAt(list, 20, cancel), memory.OnHeap)
		require.NoError(t, err)
		require.Zero(t, size)
		require.NotNil(t, partial)
		require.False(t, h.contains("v"))
		require.Positive(t, h.unroll())
		require.Equal(t, partial.UnrollMemory(), h.unroll())
		require.Equal(t, 1, h.logs.FilterMessage("Failed to unroll block since the task was interrupted").Len())
		got, err := Collect[[]byte](partial)
		require.NoError(t, err)
		require.Equal(t, list, got)
		require.Zero(t, h.unroll())
		require.Zero(t, h.m.StorageUsed())
	})
	t.Run("bytes", func(t *testing.T) {
		h := newMSHarness(t, msMaxHeap)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, partial, err := PutIteratorAsBytes(ctx, h.ms, msTask, TestBlockID("b"), cancelAt(list, 20, cancel), memory.OnHeap, Codec[[]byte](BytesCodec{}))
		require.ErrorIs(t, err, context.Canceled)
		require.NotNil(t, partial)
		require.Positive(t, h.unroll())
		require.NoError(t, partial.Discard())
		require.Zero(t, h.unroll())
		require.Zero(t, h.m.StorageUsed())
	})
	t.Run("bytes values iterator after interruption", func(t *testing.T) {
		h := newMSHarness(t, msMaxHeap)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, partial, err := PutIteratorAsBytes(ctx, h.ms, msTask, TestBlockID("b"), cancelAt(list, 50, cancel), memory.OnHeap, Codec[[]byte](BytesCodec{}))
		require.ErrorIs(t, err, context.Canceled)
		got, err := Collect(partial.ValuesIterator())
		require.NoError(t, err)
		require.Equal(t, list, got)
		require.Zero(t, h.unroll())
	})
}

// failingIterator yields n values of list, then fails.
func failingIterator[T any](list []T, n int, err error) Iterator[T] {
	i := 0
	return FuncIterator(func() (T, bool, error) {
		if i == n {
			var zero T
			return zero, false, err
		}
		i++
		return list[i-1], true, nil
	}, nil)
}

// An input error during unrolling releases the unroll memory and is returned.
func TestMSInputErrorReleasesUnrollMemory(t *testing.T) {
	boom := errors.New("boom")
	list := byteList(100, 8, 5)
	h := newMSHarness(t, msMaxHeap)
	_, partial, err := PutIteratorAsValues(context.Background(), h.ms, msTask, TestBlockID("v"), failingIterator(list, 50, boom), memory.OnHeap)
	require.ErrorIs(t, err, boom)
	require.Nil(t, partial)
	_, partialB, err := PutIteratorAsBytes(context.Background(), h.ms, msTask, TestBlockID("b"), failingIterator(list, 50, boom), memory.OnHeap, Codec[[]byte](BytesCodec{}))
	require.ErrorIs(t, err, boom)
	require.Nil(t, partialB)
	require.Zero(t, h.unroll())
	require.Zero(t, h.m.StorageUsed())
	require.Zero(t, h.ms.Len())

	// A partial iterator whose rest fails reports the error after the unrolled values.
	_, partial, err = PutIteratorAsValues(context.Background(), h.ms, msTask, TestBlockID("v"),
		failingIterator(byteList(100, bigElem, 1), 60, boom), memory.OnHeap)
	require.NoError(t, err)
	require.NotNil(t, partial)
	got, err := Collect[[]byte](partial)
	require.ErrorIs(t, err, boom)
	require.Len(t, got, 60)
	require.Zero(t, h.unroll())
}

// recordingHandler is an EvictionHandler that records drops and can fail or keep blocks.
type recordingHandler struct {
	dropped []BlockID
	fail    map[BlockID]error
	keep    bool
}

func (r *recordingHandler) DropFromMemory(id BlockID, values any, bytes *ChunkedBuffer) (bool, error) {
	if err := r.fail[id]; err != nil {
		return false, err
	}
	r.dropped = append(r.dropped, id)
	return r.keep, nil
}

// Eviction rules of Spark's MemoryStore.evictBlocksToFreeSpace: LRU order, same mode only, never blocks of the RDD being stored,
// never blocks locked for reading or writing, nothing unless the whole amount can be freed, and
// on a handler error every selected block not yet dropped is unlocked and stays.
func TestMSEvictionRules(t *testing.T) {
	const blockSize = 1000
	ids := []BlockID{RDDBlockID(0, 0), RDDBlockID(0, 1), RDDBlockID(1, 0), TestBlockID("t")}
	boom := errors.New("disk full")
	for _, tc := range []struct {
		name      string
		block     memory.Block
		space     int64
		mode      memory.Mode
		readLock  []BlockID
		fail      map[BlockID]error
		keep      bool
		wantFreed int64
		wantErr   error
		want      []BlockID // dropped, in order
	}{
		{name: "LRU order", space: 1500, wantFreed: 2000, want: ids[:2]},
		{name: "exact", space: 1000, wantFreed: 1000, want: ids[:1]},
		{name: "not the same RDD", block: RDDBlockID(0, 9), space: 1500, wantFreed: 2000, want: ids[2:]},
		{name: "not enough without the same RDD", block: RDDBlockID(0, 9), space: 2500, wantFreed: 0},
		{name: "other mode", space: 100, mode: memory.OffHeap, wantFreed: 0},
		{name: "skip read-locked", space: 1000, readLock: ids[:1], wantFreed: 1000, want: ids[1:2]},
		{name: "nothing unless all", space: 4500, wantFreed: 0},
		{name: "all", space: 4000, wantFreed: 4000, want: ids, keep: true},
		{name: "handler error", space: 3000, fail: map[BlockID]error{ids[1]: boom}, wantFreed: 1000, wantErr: boom, want: ids[:1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestUMM(t, 8000, 0, 0.5)
			info := NewBlockInfoManager()
			handler := &recordingHandler{fail: tc.fail, keep: tc.keep}
			ms, err := NewMemoryStore(m, info, handler, MemoryStoreConfig{})
			require.NoError(t, err)
			ctx := context.Background()
			for _, id := range ids {
				_, ok, err := info.LockNewBlockForWriting(ctx, msTask, id, MemoryOnlySer, false)
				require.NoError(t, err)
				require.True(t, ok)
				ok, err = ms.PutBytes(id, blockSize, memory.OnHeap, func() (*ChunkedBuffer, error) {
					return NewChunkedBuffer(make([]byte, blockSize)), nil
				})
				require.NoError(t, err)
				require.True(t, ok)
				info.Unlock(msTask, id)
			}
			for _, id := range tc.readLock {
				_, ok, err := info.LockForReading(ctx, 7, id, false)
				require.NoError(t, err)
				require.True(t, ok)
			}
			freed, err := ms.EvictBlocksToFreeSpace(tc.block, tc.space, tc.mode)
			require.ErrorIs(t, err, tc.wantErr)
			if tc.wantErr == nil {
				require.NoError(t, err)
			}
			require.Equal(t, tc.wantFreed, freed)
			require.Equal(t, tc.want, handler.dropped)
			for _, id := range ids {
				dropped := false
				for _, d := range handler.dropped {
					dropped = dropped || d == id
				}
				require.Equal(t, !dropped, ms.Contains(id), "%s in memory", id)
				readers, writer, exists := info.LockState(id)
				require.Equal(t, NoWriter, writer, "%s left write-locked", id)
				require.Equal(t, !dropped || tc.keep, exists, "%s info", id)
				if exists {
					want := 0
					for _, r := range tc.readLock {
						if r == id {
							want = 1
						}
					}
					require.Equal(t, want, readers)
				}
			}
			// What eviction freed is the caller's to release; Remove releases the rest.
			m.ReleaseStorage(freed, memory.OnHeap)
			for _, id := range ids {
				ms.Remove(id)
			}
			require.Zero(t, m.StorageUsed())
		})
	}
}

// BenchmarkUnrollPartition10x unrolls a partition 10× larger than storage memory (4 MiB of
// storage, 40 MiB of 1 KiB records) and then reads it back, with Spark's strategy
// (PutIteratorAsValues: unroll while memory is granted, hand back a partially unrolled
// iterator) and with the strategy Spark used before SPARK-1777 (materialise the whole partition
// in a slice, then estimate its size and find it does not fit). It reports the peak live heap
// of one extra probed run (runtime.GC before each sample, every 1,024 records).
func BenchmarkUnrollPartition10x(b *testing.B) {
	const (
		storageMem = 4 << 20
		recSize    = 1 << 10
		records    = 40 << 10
	)
	m := newTestUMM(b, storageMem, 0, 0.5)
	ms, err := NewMemoryStore(m, NewBlockInfoManager(), nil, MemoryStoreConfig{})
	require.NoError(b, err)
	id := RDDBlockID(0, 0)
	drain := func(it Iterator[[]byte], probe *heapProbe) {
		n := 0
		for it.Next() {
			probe.tick()
			n += len(it.Value())
		}
		require.NoError(b, it.Err())
		require.NoError(b, it.Close())
		require.Equal(b, records*recSize, n)
	}
	strategies := []struct {
		name string
		run  func(probe *heapProbe)
	}{
		{"spark", func(probe *heapProbe) {
			_, partial, err := PutIteratorAsValues(context.Background(), ms, msTask, id, genPartition(records, recSize, probe), memory.OnHeap)
			require.NoError(b, err)
			require.NotNil(b, partial)
			drain(partial, probe)
		}},
		{"materialise", func(probe *heapProbe) {
			var all [][]byte
			it := genPartition(records, recSize, probe)
			for it.Next() {
				all = append(all, it.Value())
			}
			size := estimator.Estimate(all)
			ok, err := m.AcquireStorage(id, size, memory.OnHeap)
			require.NoError(b, err)
			require.False(b, ok)
			drain((&ChunkedValues[[]byte]{chunks: [][][]byte{all}, n: len(all)}).draining(), probe)
		}},
	}
	for _, s := range strategies {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(records * recSize)
			for b.Loop() {
				s.run(nil) // timed runs are not probed
			}
			probe := newHeapProbe()
			s.run(probe)
			b.ReportMetric(float64(probe.peak), "peak-heap-bytes")
			require.Zero(b, m.StorageUsed())
		})
	}
}

// Randomized operations on a MemoryStore (puts of values and bytes that fit or not, reads,
// removes, execution memory reclaiming storage), with the accounting invariants checked after
// every step: the storage memory in use is the blocks' sizes plus the unroll memory, no lock is
// left behind, and partial results give their unroll memory back.
func TestMSRandomOperationsKeepAccounting(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	h := newMSHarness(t, 64<<10)
	ctx := context.Background()
	var execHeld int64
	for step := range 300 {
		name := fmt.Sprintf("b%d", rng.IntN(12))
		id := TestBlockID(name)
		switch op := rng.IntN(6); {
		case op <= 1 && !h.info.Contains(id):
			list := byteList(rng.IntN(200), rng.IntN(300)+1, byte(step))
			if op == 0 {
				_, partial := h.putValues(name, list)
				if partial != nil {
					got, err := Collect[[]byte](partial)
					require.NoError(t, err)
					require.Equal(t, len(list), len(got))
				}
			} else {
				_, partial := h.putBytes(name, list)
				if partial != nil {
					require.NoError(t, partial.Discard())
				}
			}
			if !h.contains(name) {
				_, ok, err := h.info.LockForWriting(ctx, msTask, id, false)
				require.NoError(t, err)
				require.True(t, ok)
				h.info.RemoveBlock(msTask, id)
			}
		case op == 2 && h.contains(name):
			h.remove(name)
		case op == 3 && h.contains(name):
			if h.ms.Deserialized(id) {
				h.values(name)
			} else {
				buf, ok, err := h.ms.GetBytes(id)
				require.NoError(t, err)
				require.True(t, ok)
				readRecords(t, mustBytes(t, buf))
			}
		case op == 4:
			got, err := h.m.AcquireExecution(ctx, int64(rng.IntN(32<<10)), 1, memory.OnHeap)
			require.NoError(t, err)
			execHeld += got
		case op == 5 && execHeld > 0:
			h.m.ReleaseExecution(execHeld, 1, memory.OnHeap)
			execHeld = 0
		}
		require.Equal(t, h.ms.BlocksMemoryUsed()+h.ms.CurrentUnrollMemory(), h.m.StorageUsed(), "step %d", step)
		require.Zero(t, h.ms.CurrentUnrollMemory(), "step %d", step)
		require.LessOrEqual(t, h.m.StorageUsed()+h.m.ExecutionUsed(), int64(64<<10), "step %d", step)
		require.Equal(t, h.ms.Len(), h.info.Len(), "step %d: blocks without info or info without blocks", step)
		for i := range 12 {
			readers, writer, _ := h.info.LockState(TestBlockID(fmt.Sprintf("b%d", i)))
			require.Zero(t, readers)
			require.Equal(t, NoWriter, writer)
		}
	}
}

func mustBytes(t testing.TB, buf *ChunkedBuffer) []byte {
	t.Helper()
	b, err := buf.Bytes(1 << 30)
	require.NoError(t, err)
	return b
}

// probeIterator hands out values and, before each, records the unroll memory the task holds.
type probeIterator[T any] struct {
	vals     []T
	i        int
	reserved []int64 // the unroll memory held when value i was asked for
	read     func() int64
}

func (p *probeIterator[T]) Next() bool {
	if p.i >= len(p.vals) {
		return false
	}
	p.reserved = append(p.reserved, p.read())
	p.i++
	return true
}
func (p *probeIterator[T]) Value() T     { return p.vals[p.i-1] }
func (p *probeIterator[T]) Err() error   { return nil }
func (p *probeIterator[T]) Close() error { return nil }

// Under strict accounting the unroll reservation covers each new chunk of values before it is
// allocated, and a large record is charged before the next one is read.
func TestStrictUnrollAccountsGrowthAndLargeRecords(t *testing.T) {
	strictUMM := func(t *testing.T, heap int64) *memory.UnifiedManager {
		m, err := memory.NewUnifiedManager(memory.Config{
			SystemMemory: heap, ReservedMemory: storageNoReserve, Fraction: 1, NumCores: 1,
		})
		require.NoError(t, err)
		require.Equal(t, memory.Strict, m.Accounting())
		return m
	}
	t.Run("growth", func(t *testing.T) {
		m := strictUMM(t, 64<<20)
		ms, err := NewMemoryStore(m, NewBlockInfoManager(), nil, MemoryStoreConfig{UnrollMemoryThreshold: 1 << 10})
		require.NoError(t, err)
		p := &probeIterator[int64]{vals: make([]int64, 5000),
			read: func() int64 { return ms.CurrentUnrollMemoryForTask(msTask, memory.OnHeap) }}
		size, partial, err := PutIteratorAsValues(context.Background(), ms, msTask, TestBlockID("g"), p, memory.OnHeap)
		require.NoError(t, err)
		require.Nil(t, partial)
		require.Positive(t, size)
		// Value at is appended to full chunks holding at values: the next chunk is reserved
		// beside them before it is allocated, and nothing is ever copied.
		for at, c := 0, 64; at < len(p.vals); at, c = at+c, min(2*c, valueChunkBytes/8) {
			require.GreaterOrEqual(t, p.reserved[at], int64(at+c)*8, "before the chunk of %d values after %d", c, at)
		}
		ms.Clear()
	})
	t.Run("large records", func(t *testing.T) {
		const budget, record = 4 << 20, 1 << 20
		m := strictUMM(t, budget)
		ms, err := NewMemoryStore(m, NewBlockInfoManager(), nil, MemoryStoreConfig{})
		require.NoError(t, err)
		vals := make([][]byte, 31)
		for i := range vals {
			vals[i] = make([]byte, record)
		}
		p := &probeIterator[[]byte]{vals: vals,
			read: func() int64 { return ms.CurrentUnrollMemoryForTask(msTask, memory.OnHeap) }}
		_, partial, err := PutIteratorAsValues(context.Background(), ms, msTask, TestBlockID("l"), p, memory.OnHeap)
		require.NoError(t, err)
		require.NotNil(t, partial, "31 MiB cannot be cached in 4 MiB")
		for i, r := range p.reserved {
			require.GreaterOrEqual(t, r, int64(i)*record, "records held when value %d was asked for", i)
		}
		require.LessOrEqual(t, len(p.reserved), budget/record+1, "no more records read than the budget holds")
		require.NoError(t, partial.Close())
		require.Zero(t, ms.CurrentUnrollMemoryForTask(msTask, memory.OnHeap))
	})
}
