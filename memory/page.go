package memory

// Page-table constants of Spark's TaskMemoryManager.
const (
	// PageNumberBits and OffsetBits split an encoded address (13 / 51 bits).
	PageNumberBits = 13
	OffsetBits     = 64 - PageNumberBits
	// PageTableSize is the number of pages a task can hold at once (8192).
	PageTableSize = 1 << PageNumberBits
	// MaxPageSize is MAXIMUM_PAGE_SIZE_BYTES: ((2^31) - 1) × 8 bytes.
	MaxPageSize int64 = ((1 << 31) - 1) * 8
	// offsetMask keeps the low OffsetBits of an address.
	offsetMask = (int64(1) << OffsetBits) - 1
)
