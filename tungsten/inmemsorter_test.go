package tungsten

import (
	"encoding/binary"
	"hash/fnv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// uimsSorter is an in-memory sorter over a base of its own, as UnsafeInMemorySorterSuite builds
// one on a TaskMemoryManager and a TestMemoryConsumer.
func uimsSorter(t *testing.T, initial int, records RecordComparator, radix bool) (*base, *inMemorySorter) {
	tm := newTask(t, memory.OnHeap, 16*mib, 2048)
	c := &ExternalSorter{} // the consumer: only its base is used
	b := &c.base
	b.init(tm, c, "UnsafeInMemorySorter", 2048, storage.RecordWriterConfig{})
	a, err := b.allocateArray(ctx, 2*initial)
	require.NoError(t, err)
	s := newInMemorySorter(b, a, initial, PrefixLong, records, radix)
	t.Cleanup(s.freeMemory)
	return b, s
}

// UIMS-01 testSortingEmptyInput.
func TestUIMS01SortingEmptyInput(t *testing.T) {
	for _, radix := range []bool{false, true} {
		_, s := uimsSorter(t, 100, func(a, b []byte) int { return 0 }, radix)
		first, second := s.sortedPairs()
		require.Empty(t, first)
		require.Empty(t, second)
	}
}

// UIMS-02 testSortingOnlyByIntegerPrefix: nine strings in one 2048-byte page, prefixed by their
// partition under a hash partitioner of 4, in an array grown from 9 records.
func TestUIMS02SortingOnlyByIntegerPrefix(t *testing.T) {
	words := []string{"Boba", "Pearls", "Tapioca", "Taho", "Condensed Milk", "Jasmine", "Milk Tea", "Lychee", "Mango"}
	partition := func(s string) int64 {
		h := fnv.New32a()
		h.Write([]byte(s))
		return int64(h.Sum32() % 4)
	}
	for _, radix := range []bool{false, true} {
		b, s := uimsSorter(t, 9, func(a, b []byte) int { return 0 }, radix)
		page, err := b.allocatePage(ctx, 2048)
		require.NoError(t, err)
		defer b.freePage(page)
		data := page.Bytes()
		off := int64(0)
		for _, w := range words {
			if !s.hasSpaceForAnotherRecord() {
				a, err := b.allocateArray(ctx, int(s.memoryUsage()/8*2))
				require.NoError(t, err)
				s.expandPointerArray(a)
			}
			binary.LittleEndian.PutUint32(data[off:], uint32(len(w)))
			copy(data[off+uao:], w)
			s.insertRecord(memory.EncodePageNumberAndOffset(page.Number(), off), partition(w), false)
			off += uao + int64(len(w))
		}
		first, second := s.sortedPairs()
		var got []string
		last := int64(-1)
		for _, p := range append(first, second...) {
			require.GreaterOrEqual(t, p.prefix, last)
			last = p.prefix
			w := string(b.record(p.addr))
			require.Equal(t, partition(w), p.prefix)
			got = append(got, w)
		}
		require.ElementsMatch(t, words, got)
	}
}

// UIMS-03 freeAfterOOM (newest API): freeMemory needs no memory and may run twice; the sorter
// then has no array and no records.
func TestUIMS03FreeAfterOOM(t *testing.T) {
	b, s := uimsSorter(t, 100, func(a, b []byte) int { return 0 }, true)
	s.insertRecord(1, 1, false)
	s.freeMemory()
	s.freeMemory()
	require.Zero(t, s.numRecords())
	require.Zero(t, s.memoryUsage())
	require.Zero(t, b.Used())
	require.False(t, s.hasSpaceForAnotherRecord())
}
