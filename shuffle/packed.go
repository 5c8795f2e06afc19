package shuffle

import (
	"fmt"

	"github.com/spillway/spillway/memory"
)

// The packed record pointer of the serialized shuffle (Spark's PackedRecordPointer,
// core/src/main/java/org/apache/spark/shuffle/sort/PackedRecordPointer.java): one 64-bit word
// per record holding, most significant first, the record's reduce partition (24 bits), the
// number of the page it is stored in (13 bits, memory.PageNumberBits) and its offset in that
// page (27 bits). Sorting the words as integers sorts the records by partition, and a radix
// sort needs only the three partition bytes (bytes 5 to 7 of the little-endian word).
const (
	// MaxSerializedPartitions is the most reduce partitions the SerializedWriter can write
	// (Spark's MAX_SHUFFLE_OUTPUT_PARTITIONS_FOR_SERIALIZED_MODE, 2^24).
	MaxSerializedPartitions = 1 << packedPartitionBits
	// maxPackedPageSize is the largest page whose every offset can be packed (2^27 bytes,
	// Spark's PackedRecordPointer.MAXIMUM_PAGE_SIZE_BYTES). A larger page holds one record, at
	// offset 0.
	maxPackedPageSize = 1 << packedOffsetBits

	packedPartitionBits = 24
	packedOffsetBits    = 27
	packedPartitionBase = memory.PageNumberBits + packedOffsetBits // 40: lowest bit of the partition
	// packedPartitionFirstByte and packedPartitionLastByte are the bytes the radix sort reads.
	packedPartitionFirstByte = packedPartitionBase / 8
	packedPartitionLastByte  = 7
	packedOffsetMask         = 1<<packedOffsetBits - 1
	packedPageMask           = memory.PageTableSize - 1
)

// packedPointer is one packed record pointer.
type packedPointer uint64

// packPointer packs a task memory address (memory.EncodePageNumberAndOffset) and a partition id.
// Spark silently drops offset bits past the 27th and only asserts the partition id; here an
// offset of 2^27 or more, or a partition outside [0, 2^24), is programmer misuse and panics, so a
// pointer never reads another record.
func packPointer(address int64, partition int) packedPointer {
	if partition < 0 || partition >= MaxSerializedPartitions {
		panic(fmt.Sprintf("shuffle: partition id %d outside [0, %d) of a packed record pointer", partition, MaxSerializedPartitions))
	}
	page, offset := memory.DecodePageNumber(address), memory.DecodeOffset(address)
	if offset >= maxPackedPageSize {
		panic(fmt.Sprintf("shuffle: offset %d in page %d does not fit the 27 bits of a packed record pointer (pages of at most %d bytes)",
			offset, page, maxPackedPageSize))
	}
	return packedPointer(uint64(partition)<<packedPartitionBase | uint64(page)<<packedOffsetBits | uint64(offset))
}

// partition is the record's reduce partition (getPartitionId).
func (p packedPointer) partition() int { return int(p >> packedPartitionBase) }

// pageNumber is the number of the page holding the record.
func (p packedPointer) pageNumber() int { return int(p>>packedOffsetBits) & packedPageMask }

// offset is the record's offset in its page.
func (p packedPointer) offset() int64 { return int64(p & packedOffsetMask) }

// recordPointer is the task memory address the pointer was packed from (getRecordPointer).
func (p packedPointer) recordPointer() int64 {
	return memory.EncodePageNumberAndOffset(p.pageNumber(), p.offset())
}
