package tungsten

import (
	"context"
	"encoding/binary"

	"github.com/spillway/spillway/internal/radix"
	"github.com/spillway/spillway/memory"
)

// A Sorter whose keys and values are both Int64Key keeps each pair in the sorter's array itself,
// as the Aggregator keeps them in its slots (inline.go): pair i is [2i] = the value, [2i+1] =
// the key word (Int64Key's encoding read as a big-endian number, its sort prefix), so a pair
// costs 16 bytes and no data page, where a record in a page costs its 16-byte array entry, a
// length header and the encoded record. The whole array holds pairs: it is sorted with the
// radix sort's scratch half when it is at most half full, else in place with the free tail as
// scratch (radix.SortKeyPrefixWithin). In descending order the array holds the complemented key
// words, so the sort is always ascending.
//
// The iterator's records are in the page record format, [4-byte key length 8][key][value] with
// the key word as prefix; runs store only the 16 bytes of each pair (an inline run, spill.go)
// and read back as those records, so spills merge as the other sorters' do. After a spill
// the array is allocated as large as the task grants, up to twice the array the spill freed: the
// doubling that failed (the pointer array of the page path restarts at InitialSize).

// inlineRecordBytes is the size of an inline pair's record: [4-byte length 8][key][value].
const inlineRecordBytes = uao + 16

// putInlineRecord formats the record of key word w and value v.
func putInlineRecord(rec *[inlineRecordBytes]byte, w uint64, v int64) {
	order.PutUint32(rec[:], 8)
	binary.BigEndian.PutUint64(rec[uao:], w)
	binary.BigEndian.PutUint64(rec[uao+8:], inlineWord(v))
}

// setInline turns inline pairs on, before any insert.
func (s *ExternalSorter) setInline() {
	s.inline = true
	if s.cfg.Prefix.Descending {
		s.flip = ^uint64(0)
	}
	s.inMem.inline = true
	s.inMem.setArray(s.inMem.array)
}

// insertInline adds the pair of key word w and value v (InsertRecord for inline pairs).
func (s *ExternalSorter) insertInline(ctx context.Context, w uint64, v int64) error {
	if err := s.beforeInsert(ctx, inlineRecordBytes); err != nil {
		return err
	}
	if err := s.growPointerArrayIfNecessary(ctx); err != nil {
		return err
	}
	s.inMem.insertRecord(v, int64(w^s.flip), false)
	return nil
}

// inlineRoom is how many more inline pairs can go straight into the array after an
// insertInline, with none of its checks due: none once the size threshold is reached, else the
// pairs the array holds before it must grow, and the record threshold allows. The spill writer's
// reservation already covers their record size, and nothing else changes between inserts.
func (s *ExternalSorter) inlineRoom() int {
	in := s.inMem
	if in.array == nil || s.Used() >= s.cfg.SizeInBytesForSpillThreshold {
		return 0
	}
	return max(0, min((in.usable-in.pos)/2, s.cfg.NumElementsForSpillThreshold-in.numRecords()))
}

// inlineSort sorts the n inline pairs of a by (possibly complemented) key word.
func inlineSort(a []int64, n int) []pair {
	if 4*n <= len(a) {
		start := radix.SortKeyPrefixArray(a, 0, n, 0, 7, false, false)
		return pairs(a[start : start+2*n])
	}
	radix.SortKeyPrefixWithin(a, n) // in place, the free tail of the array as scratch
	return pairs(a[:2*n])
}

// writeInlinePairs writes sorted inline pairs as records.
func (s *ExternalSorter) writeInlinePairs(w *spillWriter, ps []pair) error {
	for _, p := range ps {
		if err := w.writeInline(uint64(p.prefix)^s.flip, p.addr); err != nil {
			return err
		}
	}
	return nil
}

// firstArray allocates the pointer array when a spill freed it: 2·InitialSize longs, or with
// inline pairs as many as the task grants, at least that, up to twice the array the last spill
// freed.
func (s *ExternalSorter) firstArray(ctx context.Context) (*longArray, error) {
	least := 2 * s.cfg.InitialSize
	if !s.inline || s.lastArray <= least {
		return s.allocateArray(ctx, least)
	}
	return s.allocateArrayUpTo(ctx, min(2*s.lastArray, int(memory.MaxPageSize/8)&^1), least)
}
