package memory

import "fmt"

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

// Special page numbers of MemoryBlock.
const (
	// NoPageNumber marks a page allocated directly with NewPage, outside any page table.
	NoPageNumber = -1
	// FreedInTaskManagerPageNumber marks a page removed from its task's page table.
	FreedInTaskManagerPageNumber = -2
	// FreedInAllocatorPageNumber marks a page whose memory has been given back.
	FreedInAllocatorPageNumber = -3
)

// Page is Spark's MemoryBlock as handed out by TaskMemoryManager.allocatePage: a block of memory
// of one mode. On-heap pages are Go []byte; off-heap pages are anonymous memory mappings outside
// the Go heap, invisible to the garbage collector, unmapped explicitly when freed.
type Page struct {
	data   []byte // nil once freed; off-heap: the whole mapping
	size   int64
	mode   Mode
	number int // index in the owner's page table, or one of the special page numbers
	owner  *TaskManager
}

// NewPage allocates a page directly, outside any task's accounting (MemoryAllocator.allocate:
// HEAP on-heap, UNSAFE off-heap). Its number is NoPageNumber; release it with Free. Off-heap
// allocation fails with ErrOffHeapUnsupported on non-unix platforms and with the mmap error when
// the system refuses.
func NewPage(mode Mode, size int64) (*Page, error) {
	mode.check()
	if size <= 0 || size > MaxPageSize {
		panic(fmt.Sprintf("memory: NewPage of %d bytes (must be in [1, %d])", size, MaxPageSize))
	}
	p := &Page{mode: mode, number: NoPageNumber, size: size}
	if mode == OnHeap {
		p.data = make([]byte, size)
		return p, nil
	}
	data, err := mapAnonymous(size)
	if err != nil {
		return nil, fmt.Errorf("memory: mapping an off-heap page of %s: %w", ibytes(size), err)
	}
	p.data = data
	return p, nil
}

// Bytes is the page's memory: a Go slice in both modes. Off-heap, it aliases a mapping that is
// unmapped when the page is freed; using it afterwards faults. It is nil once the page is freed.
func (p *Page) Bytes() []byte { return p.data }

// Size is the page's size in bytes (MemoryBlock.size); it stays valid after Free.
func (p *Page) Size() int64 { return p.size }

// Mode is the page's memory mode.
func (p *Page) Mode() Mode { return p.mode }

// Number is the page's index in its task's page table, or NoPageNumber,
// FreedInTaskManagerPageNumber or FreedInAllocatorPageNumber (MemoryBlock.pageNumber).
func (p *Page) Number() int { return p.number }

// Free gives back a page allocated with NewPage (MemoryAllocator.free). It panics for a page
// still in a task's page table (free those with TaskManager.FreePage) and for a page already freed.
func (p *Page) Free() {
	switch {
	case p.number == FreedInAllocatorPageNumber:
		panic("memory: Page.Free on a page that has already been freed")
	case p.number != NoPageNumber:
		panic("memory: Page.Free on a page of a TaskManager; free it with TaskManager.FreePage")
	}
	if err := p.release(); err != nil {
		panic(err.Error())
	}
}

// release returns the memory (drops the slice on-heap, unmaps it off-heap) and marks the page
// FreedInAllocatorPageNumber.
func (p *Page) release() error {
	data := p.data
	p.number = FreedInAllocatorPageNumber
	p.data = nil
	if p.mode == OffHeap && data != nil {
		if err := unmap(data); err != nil {
			return fmt.Errorf("memory: unmapping an off-heap page of %s: %w", ibytes(p.size), err)
		}
	}
	return nil
}

// EncodePageNumberAndOffset packs a page number (high 13 bits) and an offset (low 51 bits) into
// one address (TaskMemoryManager.encodePageNumberAndOffset); offset bits above 51 are dropped.
func EncodePageNumberAndOffset(pageNumber int, offset int64) int64 {
	if pageNumber < 0 || pageNumber >= PageTableSize {
		panic(fmt.Sprintf("memory: page number %d outside [0, %d)", pageNumber, PageTableSize))
	}
	return int64(pageNumber)<<OffsetBits | offset&offsetMask
}

// DecodePageNumber is the page number of an address (decodePageNumber).
func DecodePageNumber(address int64) int { return int(uint64(address) >> OffsetBits) }

// DecodeOffset is the offset part of an address (decodeOffset).
func DecodeOffset(address int64) int64 { return address & offsetMask }
