package storage

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/memory/memtest"
)

// blockContent is n bytes depending on seed.
func blockContent(seed, n int) []byte {
	b := make([]byte, n)
	x := uint64(seed)*0x9e3779b97f4a7c15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// TestMemoryStoreOffHeapBlocks: OFF_HEAP blocks are charged to the off-heap storage pool and kept
// in off-heap pages, so storing 32 MiB of them leaves the live Go heap as it was (on-heap, the
// same blocks are live heap); reading returns their bytes; removal, eviction and Clear unmap the
// pages and release the memory.
func TestMemoryStoreOffHeapBlocks(t *testing.T) {
	const blocks, size = 16, 2 << 20
	for _, mode := range []memory.Mode{memory.OffHeap, memory.OnHeap} {
		t.Run(mode.String(), func(t *testing.T) {
			m := newTestUMM(t, 40<<20, 40<<20, 0.5)
			info := NewBlockInfoManager()
			ms, err := NewMemoryStore(m, info, nil, MemoryStoreConfig{})
			require.NoError(t, err)
			put := func(i, n int) {
				t.Helper()
				id := TestBlockID(fmt.Sprint(i))
				_, ok, err := info.LockNewBlockForWriting(context.Background(), msTask, id, OffHeap, false)
				require.NoError(t, err)
				require.True(t, ok)
				ok, err = ms.PutBytes(id, int64(n), mode, func() (*ChunkedBuffer, error) {
					return NewChunkedBuffer(blockContent(i, n/2), blockContent(-i, n-n/2)), nil
				})
				require.NoError(t, err)
				require.True(t, ok)
				info.Unlock(msTask, id)
			}
			before := memtest.LiveHeap()
			for i := range blocks {
				put(i, size)
			}
			growth := memtest.LiveHeap() - before
			t.Logf("%d blocks of %d bytes %s: live heap growth %d bytes", blocks, size, mode, growth)
			require.Equal(t, int64(blocks*size), m.StorageUsed())
			if mode == memory.OnHeap {
				require.Greater(t, growth, int64(blocks*size*9/10), "on-heap blocks are live heap")
				ms.Clear()
				return
			}
			require.Less(t, growth, int64(4<<20), "off-heap blocks do not grow the Go heap")
			mode, ok := ms.Mode(TestBlockID("0"))
			require.True(t, ok)
			require.Equal(t, memory.OffHeap, mode)

			// Reading gives the bytes, as views of the pages.
			b, ok, err := ms.GetBytes(TestBlockID("3"))
			require.NoError(t, err)
			require.True(t, ok)
			got, err := b.Bytes(size)
			require.NoError(t, err)
			require.Equal(t, append(blockContent(3, size/2), blockContent(-3, size/2)...), got)
			require.Len(t, b.pages, 1)
			require.Equal(t, memory.OffHeap, b.pages[0].Mode())

			// Remove unmaps the pages.
			first, _, err := ms.GetBytes(TestBlockID("0"))
			require.NoError(t, err)
			pages := first.pages
			_, ok, err = info.LockForWriting(context.Background(), msTask, TestBlockID("0"), true)
			require.NoError(t, err)
			require.True(t, ok)
			require.True(t, ms.Remove(TestBlockID("0")))
			info.RemoveBlock(msTask, TestBlockID("0"))
			require.Equal(t, memory.FreedInAllocatorPageNumber, pages[0].Number())
			require.Equal(t, int64((blocks-1)*size), m.StorageUsed())

			// A block that needs the space of three others evicts the least recently used
			// (1, 2 and 4: block 3 was read), unmapping their pages; Clear unmaps the rest.
			pagesOf := func(name string) []*memory.Page {
				ms.mu.Lock()
				defer ms.mu.Unlock()
				return ms.entries[TestBlockID(name)].bytes.pages
			}
			var victims, rest []*memory.Page
			for i := 1; i < blocks; i++ {
				if i <= 4 && i != 3 {
					victims = append(victims, pagesOf(fmt.Sprint(i))...)
				} else {
					rest = append(rest, pagesOf(fmt.Sprint(i))...)
				}
			}
			put(100, 16<<20)
			for _, p := range victims {
				require.Equal(t, memory.FreedInAllocatorPageNumber, p.Number(), "evicted")
			}
			for _, p := range rest {
				require.Equal(t, memory.NoPageNumber, p.Number(), "still stored")
			}
			require.Equal(t, int64((blocks-4)*size+16<<20), m.StorageUsed())
			ms.Clear()
			for _, p := range rest {
				require.Equal(t, memory.FreedInAllocatorPageNumber, p.Number(), "cleared")
			}
			require.Zero(t, m.StorageUsed())
		})
	}
}
