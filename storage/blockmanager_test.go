package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"weak"

	"github.com/dustin/go-humanize"
	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/estimator"
	"github.com/spillway/spillway/memory"
)

// The BlockManagerSuite harness (core/src/test/scala/org/apache/spark/storage/
// BlockManagerSuite.scala): makeBlockManager(maxMem) has fraction
// 1, storage fraction 0.999, no reserved memory, unroll threshold 512 and maxMem of off-heap
// memory. Blocks are put with putSingle (a one-element iterator).
//
// Spark's blocks are 4,000-byte arrays (≈ 4,040 bytes deserialized) so that two fit in 12,000
// bytes but a third needs one evicted. In Go the unroll vector starts with 64 slots (1,536
// bytes), so the unroll reservation after the first element is 1.5 × (1,536 + the element);
// bmElem = 3,456 bytes keeps both relations for values (a block is 3,480 bytes: 24-byte slot
// array + the 3,456-byte size class) and for the serialized levels (3,484 bytes with
// BytesCodec in the record format), see TestBMBlockSizes.
const (
	bmElem = 3456
	bmTask = memory.TaskID(7)
)

type bmHarness struct {
	t  testing.TB
	m  *memory.UnifiedManager
	bm *BlockManager
}

func newBMHarness(t testing.TB, maxMem int64, fs FS) *bmHarness {
	t.Helper()
	m := newTestUMM(t, maxMem, maxMem, 0.999)
	bm, err := NewBlockManager(Config{
		Memory:      m,
		DiskConfig:  DiskConfig{Dirs: []string{t.TempDir()}, FS: fs},
		MemoryStore: MemoryStoreConfig{UnrollMemoryThreshold: msUnrollThresh},
	})
	require.NoError(t, err)
	h := &bmHarness{t: t, m: m, bm: bm}
	t.Cleanup(func() { require.NoError(t, bm.Close()) })
	return h
}

var bytesCodec Codec[[]byte] = BytesCodec{}

func (h *bmHarness) putSingle(id BlockID, v []byte, level Level) bool {
	h.t.Helper()
	ok, err := PutIterator(context.Background(), h.bm, bmTask, id, SliceIterator([][]byte{v}), level, bytesCodec)
	require.NoError(h.t, err)
	return ok
}

// get is getSingleAndReleaseLock: the block's values, or nil if absent.
func (h *bmHarness) get(id BlockID) [][]byte {
	h.t.Helper()
	it, ok, err := GetLocalValues(context.Background(), h.bm, bmTask, id, bytesCodec)
	require.NoError(h.t, err)
	if !ok {
		return nil
	}
	vs, err := Collect(it)
	require.NoError(h.t, err)
	h.noLocks(id)
	return vs
}

func (h *bmHarness) getBytes(id BlockID) [][]byte {
	h.t.Helper()
	b, ok, err := GetLocalBytes(context.Background(), h.bm, bmTask, id, bytesCodec)
	require.NoError(h.t, err)
	if !ok {
		return nil
	}
	data, err := io.ReadAll(b)
	require.NoError(h.t, err)
	require.Equal(h.t, b.Size(), int64(len(data)))
	require.NoError(h.t, b.Close())
	h.noLocks(id)
	return readRecords(h.t, data)
}

func (h *bmHarness) noLocks(id BlockID) {
	h.t.Helper()
	readers, writer, _ := h.bm.BlockInfo().LockState(id)
	require.Zero(h.t, readers, "%s still read-locked", id)
	require.Equal(h.t, NoWriter, writer, "%s still write-locked", id)
}

func (h *bmHarness) inMemory(id BlockID) bool { return h.bm.MemoryStore().Contains(id) }

func (h *bmHarness) onDisk(id BlockID) bool { return h.bm.DiskStore().Contains(id) }

func bmArray(seed byte) []byte { return bytes.Repeat([]byte{seed}, bmElem) }

func TestBMBlockSizes(t *testing.T) {
	require.Equal(t, int64(24+3456), estimator.Estimate([][]byte{bmArray(1)}))
}

var bmMemoryLevels = []Level{MemoryOnly, MemoryOnlySer, OffHeap}

// BM-01 — BlockManagerSuite "in-memory LRU storage" (and its MEMORY_ONLY_SER and OFF_HEAP
// variants).
func TestBM01InMemoryLRUStorage(t *testing.T) {
	for _, level := range []Level{MemoryOnly, MemoryOnlySer, NewLevel(false, true, true, false, 1)} {
		t.Run(level.String(), func(t *testing.T) {
			h := newBMHarness(t, 12000, nil)
			a1, a2, a3 := TestBlockID("a1"), TestBlockID("a2"), TestBlockID("a3")
			require.True(t, h.putSingle(a1, bmArray(1), level))
			require.True(t, h.putSingle(a2, bmArray(2), level))
			require.True(t, h.putSingle(a3, bmArray(3), level))
			require.Equal(t, [][]byte{bmArray(2)}, h.get(a2), "a2 was not in store")
			require.Equal(t, [][]byte{bmArray(3)}, h.get(a3), "a3 was not in store")
			require.Nil(t, h.get(a1), "a1 was in store")
			require.NotNil(t, h.get(a2), "a2 was not in store")
			// At this point a2 was gotten last, so LRU will getSingle a3.
			require.True(t, h.putSingle(a1, bmArray(1), level))
			require.NotNil(t, h.get(a1), "a1 was not in store")
			require.NotNil(t, h.get(a2), "a2 was not in store")
			require.Nil(t, h.get(a3), "a3 was in store")
			mode := modeOf(level)
			require.Equal(t, h.bm.MemoryStore().Size(a1)+h.bm.MemoryStore().Size(a2), h.m.Metrics().Pools[mode].StorageUsed)
			// a1 and then a3 were evicted, and no level here keeps them on disk.
			ms := h.bm.MemoryStore().Metrics()
			require.Equal(t, int64(2), ms.EvictedBlocks)
			require.Equal(t, 2*h.bm.MemoryStore().Size(a1), ms.EvictedBytes, "a1 and a3 are the same size")
			require.Zero(t, ms.DroppedToDisk)
		})
	}
}

// BM-03 — BlockManagerSuite "in-memory LRU for partitions of multiple RDDs".
func TestBM03InMemoryLRUForPartitionsOfMultipleRDDs(t *testing.T) {
	h := newBMHarness(t, 12000, nil)
	rdd := RDDBlockID
	require.True(t, h.putSingle(rdd(0, 1), bmArray(1), MemoryOnly))
	require.True(t, h.putSingle(rdd(0, 2), bmArray(2), MemoryOnly))
	require.True(t, h.putSingle(rdd(1, 1), bmArray(3), MemoryOnly))
	// At this point rdd_1_1 should've replaced rdd_0_1.
	require.True(t, h.inMemory(rdd(1, 1)), "rdd_1_1 was not in store")
	require.False(t, h.inMemory(rdd(0, 1)), "rdd_0_1 was in store")
	require.True(t, h.inMemory(rdd(0, 2)), "rdd_0_2 was not in store")
	// Do a get() on rdd_0_2 so that it is the most recently used item.
	require.NotNil(t, h.get(rdd(0, 2)))
	// Put in more partitions from RDD 0; they should replace rdd_1_1.
	require.True(t, h.putSingle(rdd(0, 3), bmArray(4), MemoryOnly))
	// Now rdd_1_1 should be dropped to add rdd_0_3, but then rdd_0_2 should *not* be dropped
	// when we try to add rdd_0_4.
	require.False(t, h.putSingle(rdd(0, 4), bmArray(5), MemoryOnly))
	require.False(t, h.inMemory(rdd(1, 1)), "rdd_1_1 was in store")
	require.False(t, h.inMemory(rdd(0, 1)), "rdd_0_1 was in store")
	require.False(t, h.inMemory(rdd(0, 4)), "rdd_0_4 was in store")
	require.True(t, h.inMemory(rdd(0, 2)), "rdd_0_2 was not in store")
	require.True(t, h.inMemory(rdd(0, 3)), "rdd_0_3 was not in store")
	require.False(t, h.bm.Contains(rdd(0, 4)), "a block that was not stored has no info")
	require.Zero(t, h.bm.MemoryStore().CurrentUnrollMemory())
}

// BM-05 — BlockManagerSuite "disk and memory storage" with MEMORY_AND_DISK,
// MEMORY_AND_DISK_SER and OFF_HEAP, reading values or bytes.
func TestBM05DiskAndMemoryStorage(t *testing.T) {
	for _, tc := range []struct {
		level      Level
		bytes      bool // read a1 with GetLocalBytes
		cachedBack bool
	}{
		{MemoryAndDisk, false, true},
		{MemoryAndDisk, true, false}, // "with getLocalBytes": not cached back
		{MemoryAndDiskSer, false, true},
		{MemoryAndDiskSer, true, true},
		{OffHeap, false, true},
		{OffHeap, true, true},
	} {
		t.Run(fmt.Sprintf("%s/bytes=%v", tc.level, tc.bytes), func(t *testing.T) {
			h := newBMHarness(t, 12000, nil)
			a1, a2, a3 := TestBlockID("a1"), TestBlockID("a2"), TestBlockID("a3")
			require.True(t, h.putSingle(a1, bmArray(1), tc.level))
			require.True(t, h.putSingle(a2, bmArray(2), tc.level))
			require.True(t, h.putSingle(a3, bmArray(3), tc.level))
			require.False(t, h.inMemory(a1), "a1 stayed in memory")
			require.True(t, h.onDisk(a1), "a1 was not dropped to disk")
			ms := h.bm.MemoryStore().Metrics()
			require.Equal(t, MemoryStoreMetrics{EvictedBlocks: 1, EvictedBytes: ms.EvictedBytes, DroppedToDisk: 1}, ms)
			require.Positive(t, ms.EvictedBytes)
			require.Equal(t, [][]byte{bmArray(2)}, h.get(a2), "a2 was not in store")
			require.Equal(t, [][]byte{bmArray(3)}, h.get(a3), "a3 was not in store")
			if tc.bytes {
				require.Equal(t, [][]byte{bmArray(1)}, h.getBytes(a1), "a1 was not in store")
			} else {
				require.Equal(t, [][]byte{bmArray(1)}, h.get(a1), "a1 was not in store")
			}
			require.Equal(t, tc.cachedBack, h.inMemory(a1), "a1 cached back in memory")
			if tc.cachedBack {
				require.Equal(t, tc.level.Deserialized(), h.bm.MemoryStore().Deserialized(a1))
			}
			// Every block is still readable, wherever it is.
			for i, id := range []BlockID{a1, a2, a3} {
				require.Equal(t, [][]byte{bmArray(byte(i + 1))}, h.get(id))
				require.Equal(t, [][]byte{bmArray(byte(i + 1))}, h.getBytes(id))
			}
		})
	}
}

// BM-07 — BlockManagerSuite "on-disk storage".
func TestBM07OnDiskStorage(t *testing.T) {
	h := newBMHarness(t, 1200, nil)
	ids := []BlockID{TestBlockID("a1"), TestBlockID("a2"), TestBlockID("a3")}
	for i, id := range ids {
		require.True(t, h.putSingle(id, bytes.Repeat([]byte{byte(i)}, 400), DiskOnly))
	}
	for i, id := range ids {
		require.Equal(t, [][]byte{bytes.Repeat([]byte{byte(i)}, 400)}, h.get(id), "%s was not in store", id)
		require.Equal(t, [][]byte{bytes.Repeat([]byte{byte(i)}, 400)}, h.getBytes(id))
		require.False(t, h.inMemory(id))
		st, ok := h.bm.Status(id)
		require.True(t, ok)
		require.True(t, st.OnDisk)
		require.Positive(t, st.DiskSize)
	}
	require.Zero(t, h.m.StorageUsed())
}

// BM-08 — getOrElseUpdate fallbacks [derived from BlockManager.getOrElseUpdate].
func TestBM08GetOrElseUpdateFallbacks(t *testing.T) {
	h := newBMHarness(t, 5000, nil)
	id := RDDBlockID(0, 0)
	value := bytes.Repeat([]byte{9}, 10000)
	computed := 0
	compute := func() (Iterator[[]byte], error) {
		computed++
		return SliceIterator([][]byte{value}), nil
	}
	ctx := context.Background()

	it, cached, err := GetOrElseUpdate(ctx, h.bm, bmTask, id, MemoryOnly, bytesCodec, compute)
	require.NoError(t, err)
	require.False(t, cached, "a MEMORY_ONLY block that does not fit is returned, not cached")
	got, err := Collect(it)
	require.NoError(t, err)
	require.Equal(t, [][]byte{value}, got)
	require.False(t, h.bm.Contains(id))
	require.Zero(t, h.m.StorageUsed())
	require.Empty(t, h.bm.BlockInfo().ReleaseAllLocksForTask(bmTask), "no locks held")

	it, cached, err = GetOrElseUpdate(ctx, h.bm, bmTask, id, MemoryAndDisk, bytesCodec, compute)
	require.NoError(t, err)
	require.True(t, cached, "MEMORY_AND_DISK falls back to disk")
	got, err = Collect(it)
	require.NoError(t, err)
	require.Equal(t, [][]byte{value}, got)
	require.False(t, h.inMemory(id))
	require.True(t, h.onDisk(id))
	h.noLocks(id)
	require.Equal(t, 2, computed)

	// The block exists now: no computation.
	it, cached, err = GetOrElseUpdate(ctx, h.bm, bmTask, id, MemoryAndDisk, bytesCodec, compute)
	require.NoError(t, err)
	require.True(t, cached)
	require.NoError(t, it.Close())
	h.noLocks(id)
	require.Equal(t, 2, computed)

	// A second MEMORY_ONLY call recomputes.
	id2 := RDDBlockID(0, 1)
	for range 2 {
		it, cached, err = GetOrElseUpdate(ctx, h.bm, bmTask, id2, MemoryOnly, bytesCodec, compute)
		require.NoError(t, err)
		require.False(t, cached)
		require.NoError(t, it.Close())
	}
	require.Equal(t, 4, computed)
	require.NoError(t, h.bm.EndTask(bmTask))
	require.Zero(t, h.m.StorageUsed())

	// A fitting block is cached and read back from memory.
	small := [][]byte{[]byte("x"), []byte("y")}
	it, cached, err = GetOrElseUpdate(ctx, h.bm, bmTask, RDDBlockID(0, 2), MemoryOnly, nil, func() (Iterator[[]byte], error) {
		return SliceIterator(small), nil
	})
	require.NoError(t, err)
	require.True(t, cached)
	got, err = Collect(it)
	require.NoError(t, err)
	require.Equal(t, small, got)
	require.True(t, h.inMemory(RDDBlockID(0, 2)))

	boom := errors.New("boom")
	_, _, err = GetOrElseUpdate(ctx, h.bm, bmTask, RDDBlockID(0, 3), MemoryOnly, nil, func() (Iterator[[]byte], error) { return nil, boom })
	require.ErrorIs(t, err, boom)
}

// Locks: readers hold a read lock until their iterator is drained or closed; EndTask reports
// what a task forgot.
func TestBMLocksAndLeakReport(t *testing.T) {
	h := newBMHarness(t, 12000, nil)
	id := TestBlockID("l")
	require.True(t, h.putSingle(id, []byte("v"), MemoryOnly))
	it, ok, err := GetLocalValues(context.Background(), h.bm, bmTask, id, bytesCodec)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 1, h.bm.BlockInfo().ReadLocks(bmTask, id))
	// A remover waits for the reader; its ctx bounds the wait.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	removed, err := h.bm.Remove(ctx, 99, id)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, removed)

	err = h.bm.EndTask(bmTask)
	require.ErrorIs(t, err, ErrLockLeak)
	require.Contains(t, err.Error(), id.String())
	require.NoError(t, it.Close())
	h.noLocks(id)

	removed, err = h.bm.Remove(context.Background(), bmTask, id)
	require.NoError(t, err)
	require.True(t, removed)
	require.False(t, h.bm.Contains(id))
	require.Zero(t, h.m.StorageUsed())
	removed, err = h.bm.Remove(context.Background(), bmTask, id)
	require.NoError(t, err)
	require.False(t, removed)
}

// heapProbe samples the live heap: a full collection, then runtime/metrics'
// "/memory/classes/heap/objects:bytes", which after runtime.GC is the live heap (plus whatever
// was allocated since). It is called from inside the producing and consuming loops every
// probeEvery records, so the samples are deterministic.
type heapProbe struct {
	base, peak int64
	n          int
	sample     []metrics.Sample
}

const probeEvery = 1024

func newHeapProbe() *heapProbe {
	p := &heapProbe{sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
	p.base = p.read()
	return p
}

func (p *heapProbe) read() int64 {
	runtime.GC()
	metrics.Read(p.sample)
	return int64(p.sample[0].Value.Uint64())
}

// tick samples every probeEvery calls; a nil probe does nothing.
func (p *heapProbe) tick() {
	if p == nil {
		return
	}
	if p.n++; p.n%probeEvery == 0 {
		p.peak = max(p.peak, p.read()-p.base)
	}
}

// genRecord is record i of a generated partition: recSize bytes, i in the first 8, then i's
// low byte.
func genRecord(i, recSize int) []byte {
	r := bytes.Repeat([]byte{byte(i)}, recSize)
	binary.LittleEndian.PutUint64(r, uint64(i))
	return r
}

// genPartition yields n records made on demand (never all at once) and ticks the probe.
func genPartition(n, recSize int, probe *heapProbe) Iterator[[]byte] {
	i := 0
	return FuncIterator(func() ([]byte, bool, error) {
		if i == n {
			return nil, false, nil
		}
		probe.tick()
		i++
		return genRecord(i-1, recSize), true, nil
	}, nil)
}

// checkPartition drains it, checking every record against genRecord, and closes it.
func checkPartition(t testing.TB, it Iterator[[]byte], n, recSize int, probe *heapProbe) {
	t.Helper()
	i := 0
	for it.Next() {
		probe.tick()
		v := it.Value()
		if i >= n || !bytes.Equal(v, genRecord(i, recSize)) {
			require.FailNow(t, "wrong record", "record %d of %d", i, n)
		}
		i++
	}
	require.NoError(t, it.Err())
	require.NoError(t, it.Close())
	require.Equal(t, n, i)
}

// A partition of 40 MiB (10× the 4 MiB of storage memory) cached with each level completes, is
// read back intact (through GetOrElseUpdate's iterator, then again from the store), and the live
// heap never exceeds storage memory + 2 × the unroll threshold + slack.
//
// The slack (2 MiB) covers what is legitimately held outside the accounting: a record batch
// being written or read (the record format's 1 MiB BatchBytes plus one record), the 32 KiB
// buffers of the record writer, the disk writer and the reader, the unroll vector's doubling
// (its old and new slot arrays, 24 bytes per record), and the probe's own allocations.
// Materialising the partition would need 40 MiB.
func TestBMPartitionLargerThanMemory(t *testing.T) {
	const (
		storageMem = 4 << 20
		unrollMem  = 1 << 20
		recSize    = 1 << 10
		records    = 40 << 10 // 40 MiB of payload
		slack      = 2 << 20
	)
	levels := []Level{MemoryOnly, MemoryOnlySer, MemoryAndDisk, MemoryAndDiskSer, DiskOnly, OffHeap}
	for i, level := range levels {
		t.Run(level.String(), func(t *testing.T) {
			m := newTestUMM(t, storageMem, storageMem, 0.5)
			bm, err := NewBlockManager(Config{Memory: m, DiskConfig: DiskConfig{Dirs: []string{t.TempDir()}},
				MemoryStore: MemoryStoreConfig{UnrollMemoryThreshold: unrollMem}})
			require.NoError(t, err)
			defer func() { require.NoError(t, bm.Close()) }()
			id := RDDBlockID(i, 0)
			ctx := context.Background()

			probe := newHeapProbe()
			it, cached, err := GetOrElseUpdate(ctx, bm, bmTask, id, level, bytesCodec, func() (Iterator[[]byte], error) {
				return genPartition(records, recSize, probe), nil
			})
			require.NoError(t, err)
			require.Equal(t, level.UseDisk(), cached)
			checkPartition(t, it, records, recSize, probe)
			if level.UseDisk() {
				it, ok, err := GetLocalValues(ctx, bm, bmTask, id, bytesCodec)
				require.NoError(t, err)
				require.True(t, ok)
				checkPartition(t, it, records, recSize, probe)
				require.True(t, bm.DiskStore().Contains(id))
			} else {
				require.False(t, bm.Contains(id))
			}
			require.NoError(t, bm.EndTask(bmTask))
			require.Zero(t, bm.MemoryStore().CurrentUnrollMemory())
			bound := int64(storageMem + 2*unrollMem + slack)
			t.Logf("%s: peak live heap above baseline %s (bound %s, partition %s)", level,
				humanize.IBytes(uint64(probe.peak)), humanize.IBytes(uint64(bound)), humanize.IBytes(records*recSize))
			require.Positive(t, probe.peak)
			require.LessOrEqual(t, probe.peak, bound)
		})
	}
}

// filesUnder lists the regular files under dir.
func filesUnder(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, path)
		}
		return err
	}))
	return files
}

// Faults: a write failure while writing a DISK_ONLY block, while falling back to disk, or while
// dropping an evicted block to disk returns a clear error; unroll and storage memory go back to
// zero once the surviving blocks are removed; no file is left behind.
func TestBMDiskWriteFaults(t *testing.T) {
	big := func(n int) Iterator[[]byte] { return genPartition(n, 1024, newHeapProbe()) }
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h *bmHarness, fail func(bool)) error
	}{
		{"DISK_ONLY put", func(t *testing.T, h *bmHarness, fail func(bool)) error {
			fail(true)
			_, err := PutIterator(context.Background(), h.bm, bmTask, TestBlockID("d"), big(200), DiskOnly, bytesCodec)
			require.False(t, h.bm.Contains(TestBlockID("d")))
			return err
		}},
		{"MEMORY_AND_DISK fallback", func(t *testing.T, h *bmHarness, fail func(bool)) error {
			fail(true)
			_, err := PutIterator(context.Background(), h.bm, bmTask, TestBlockID("f"), big(200), MemoryAndDisk, bytesCodec)
			return err
		}},
		{"MEMORY_AND_DISK_SER fallback", func(t *testing.T, h *bmHarness, fail func(bool)) error {
			fail(true)
			_, err := PutIterator(context.Background(), h.bm, bmTask, TestBlockID("f"), big(200), MemoryAndDiskSer, bytesCodec)
			return err
		}},
		{"drop to disk on eviction", func(t *testing.T, h *bmHarness, fail func(bool)) error {
			a1, a2, a3 := TestBlockID("a1"), TestBlockID("a2"), TestBlockID("a3")
			require.True(t, h.putSingle(a1, bmArray(1), MemoryAndDisk))
			require.True(t, h.putSingle(a2, bmArray(2), MemoryAndDisk))
			fail(true)
			_, err := PutIterator(context.Background(), h.bm, bmTask, a3, SliceIterator([][]byte{bmArray(3)}), MemoryAndDisk, bytesCodec)
			// The block that could not be dropped stays in memory, unlocked (SPARK-22083).
			require.True(t, h.inMemory(a1))
			require.True(t, h.inMemory(a2))
			h.noLocks(a1)
			require.False(t, h.bm.Contains(a3))
			fail(false)
			require.Equal(t, [][]byte{bmArray(1)}, h.get(a1))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failing := false
			fsys := &faultyFS{writeFault: func(name string, n int) error {
				if failing {
					return fmt.Errorf("%w: disk full writing %d bytes to %s", errInjected, n, filepath.Base(name))
				}
				return nil
			}}
			h := newBMHarness(t, 12000, fsys)
			err := tc.run(t, h, func(f bool) { failing = f })
			require.ErrorIs(t, err, errInjected)
			require.Contains(t, err.Error(), "storage: ")
			require.Contains(t, err.Error(), "to disk")
			t.Log(err)
			require.Zero(t, h.bm.MemoryStore().CurrentUnrollMemory())
			require.Zero(t, h.bm.DiskBlockManager().Files())
			for _, d := range h.bm.DiskBlockManager().LocalDirs() {
				require.Empty(t, filesUnder(t, d))
			}
			for _, name := range []string{"a1", "a2"} {
				_, err := h.bm.Remove(context.Background(), bmTask, TestBlockID(name))
				require.NoError(t, err)
			}
			require.Zero(t, h.m.StorageUsed())
			require.NoError(t, h.bm.EndTask(bmTask))
		})
	}
}

// Weak-pointer test: the values of a removed or evicted block, and the values a partially
// unrolled iterator has handed out, become collectable.
func TestBMEvictedAndRemovedValuesAreCollectable(t *testing.T) {
	collectable := func(t *testing.T, wp weak.Pointer[byte]) {
		t.Helper()
		for range 20 {
			runtime.GC()
			if wp.Value() == nil {
				return
			}
		}
		require.FailNow(t, "value still reachable after 20 collections")
	}
	// putTracked stores one fresh value and returns a weak pointer to it.
	putTracked := func(t *testing.T, h *bmHarness, id BlockID, level Level) weak.Pointer[byte] {
		v := bmArray(1)
		wp := weak.Make(&v[0])
		require.True(t, h.putSingle(id, v, level))
		return wp
	}
	for _, level := range []Level{MemoryOnly, MemoryAndDisk} {
		t.Run("evicted "+level.String(), func(t *testing.T) {
			h := newBMHarness(t, 12000, nil)
			wp := putTracked(t, h, TestBlockID("a1"), level)
			require.NotNil(t, wp.Value())
			require.True(t, h.putSingle(TestBlockID("a2"), bmArray(2), level))
			require.True(t, h.putSingle(TestBlockID("a3"), bmArray(3), level))
			require.False(t, h.inMemory(TestBlockID("a1")))
			collectable(t, wp)
		})
	}
	t.Run("removed", func(t *testing.T) {
		h := newBMHarness(t, 12000, nil)
		wp := putTracked(t, h, TestBlockID("r"), MemoryOnly)
		runtime.GC()
		require.NotNil(t, wp.Value(), "the cached block keeps its values")
		removed, err := h.bm.Remove(context.Background(), bmTask, TestBlockID("r"))
		require.NoError(t, err)
		require.True(t, removed)
		collectable(t, wp)
	})
	t.Run("handed out by a partially unrolled iterator", func(t *testing.T) {
		h := newMSHarness(t, msMaxHeap)
		var wp weak.Pointer[byte]
		n := 0
		input := FuncIterator(func() ([]byte, bool, error) { // fresh values, not kept by the input
			if n == msListLen {
				return nil, false, nil
			}
			v := bytes.Repeat([]byte{1}, bigElem)
			if n++; n == 1 {
				wp = weak.Make(&v[0])
			}
			return v, true, nil
		}, nil)
		_, partial, err := PutIteratorAsValues(context.Background(), h.ms, msTask, TestBlockID("p"), input, memory.OnHeap)
		require.NoError(t, err)
		require.NotNil(t, partial)
		runtime.GC()
		require.NotNil(t, wp.Value(), "unrolled values are held until handed out")
		require.True(t, partial.Next())
		require.NotNil(t, partial.Value())
		require.True(t, partial.Next()) // the first value is no longer the current one
		collectable(t, wp)
		require.NoError(t, partial.Close())
	})
}
