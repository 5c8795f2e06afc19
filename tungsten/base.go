package tungsten

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// uao is Spark's UnsafeAlignedOffset.getUaoSize() fixed at 4: the width of the length words
// inside pages (native byte order, little-endian on every platform Go runs this on fast).
const uao = 4

// order is the byte order of length words inside pages.
var order = binary.LittleEndian

// base is the memory half of Spark's MemoryConsumer in Tungsten mode: it allocates pages and
// long arrays from the task's TaskManager, keeps Used exact (the bytes of the pages and arrays it
// holds) and keeps a local page table so that an encoded address resolves to its bytes without
// taking the TaskManager's lock.
//
// The owner goroutine allocates; forced spills free under the owner's iterator lock. Nothing
// here holds a lock while acquiring memory.
type base struct {
	tm       *memory.TaskManager
	self     memory.Consumer
	name     string
	pageSize int64
	used     atomic.Int64
	peak     atomic.Int64
	table    [][]byte // page number -> data, for the data pages this consumer holds
	touched  byte     // keeps touch's loads
	// spill is the spill files' configuration (BatchBytes defaulted), writer the reservation of
	// the one spill writer, on the consumer of the spill files' buffers (writer.io).
	spill  storage.RecordWriterConfig
	writer spillWriterMemory
}

func (b *base) init(tm *memory.TaskManager, self memory.Consumer, name string, pageSize int64, spill storage.RecordWriterConfig) {
	if pageSize == 0 {
		pageSize = tm.Manager().PageSize()
	}
	b.tm, b.self, b.name, b.pageSize = tm, self, name, pageSize
	b.spill = spillDefaults(spill, tm.Manager())
	b.writer.io.Init(tm, name)
	b.writer.record = -1
}

// reserveWriter makes the spill writer's reservation cover records of n bytes (memory.Strict)
// before the collection holds one, and reports whether it does (see spillWriterMemory.reserve).
func (b *base) reserveWriter(ctx context.Context, n int64) (bool, error) {
	if n <= b.writer.record {
		return true, nil
	}
	return b.writer.reserve(ctx, b.spill, n)
}

// isSpillIO reports whether c is this collection's spill I/O consumer, whose acquisitions
// spill the collection as its own do.
func (b *base) isSpillIO(c memory.Consumer) bool {
	return c == memory.Consumer(&b.writer.io.IOConsumer)
}

// Used is the bytes of the pages and arrays held (MemoryConsumer.getUsed).
func (b *base) Used() int64 { return b.used.Load() }

// Mode is the task's Tungsten memory mode, in which every page is allocated.
func (b *base) Mode() memory.Mode { return b.tm.Manager().TungstenMode() }

// String is the consumer's name.
func (b *base) String() string { return b.name }

func (b *base) updatePeak() {
	for u := b.used.Load(); ; {
		p := b.peak.Load()
		if u <= p || b.peak.CompareAndSwap(p, u) {
			return
		}
	}
}

// allocatePage is MemoryConsumer.allocatePage: a data page of max(pageSize, required) bytes,
// registered in the local page table. Less than required is an error wrapping
// memory.ErrOutOfMemory (Spark's SparkOutOfMemoryError); ErrPageTooLarge passes through.
func (b *base) allocatePage(ctx context.Context, required int64) (*memory.Page, error) {
	p, err := b.rawPage(ctx, max(b.pageSize, required), required)
	if err != nil {
		return nil, err
	}
	n := p.Number()
	if n >= len(b.table) {
		b.table = append(b.table, make([][]byte, n+1-len(b.table))...)
	}
	b.table[n] = p.Bytes()
	return p, nil
}

func (b *base) rawPage(ctx context.Context, size, required int64) (*memory.Page, error) {
	p, err := b.tm.AllocatePage(ctx, size, b.self)
	if err != nil {
		return nil, fmt.Errorf("tungsten: %s: unable to acquire %d bytes of memory: %w", b.name, required, err)
	}
	if p.Size() < required {
		got := p.Size()
		b.tm.FreePage(p, b.self)
		return nil, fmt.Errorf("tungsten: %s: unable to acquire %d bytes of memory, got %d: %w\n%s",
			b.name, required, got, memory.ErrOutOfMemory, b.tm.UsageReport())
	}
	b.used.Add(p.Size())
	b.updatePeak()
	return p, nil
}

// freePage frees a data page and forgets its number.
func (b *base) freePage(p *memory.Page) {
	b.table[p.Number()] = nil
	b.release(p)
}

func (b *base) release(p *memory.Page) {
	size := p.Size()
	b.tm.FreePage(p, b.self)
	b.used.Add(-size)
}

// longArray is Spark's LongArray over a page of exactly 8·n bytes (MemoryConsumer.allocateArray):
// on-heap a Go []byte, off-heap an anonymous mapping, viewed as []int64.
type longArray struct {
	page *memory.Page
	a    []int64
}

// allocateArray allocates an array of n longs (not zeroed).
func (b *base) allocateArray(ctx context.Context, n int) (*longArray, error) {
	if n <= 0 {
		panic(fmt.Sprintf("tungsten: allocateArray of %d longs", n))
	}
	p, err := b.rawPage(ctx, 8*int64(n), 8*int64(n))
	if err != nil {
		return nil, err
	}
	return &longArray{page: p, a: longs(p.Bytes())}, nil
}

// longs views a page's bytes as longs. Pages are 8-byte aligned: Go allocates large []byte on
// size-class (≥ 8) boundaries and off-heap pages are mmap'ed on OS page boundaries.
func longs(data []byte) []int64 {
	return unsafe.Slice((*int64)(unsafe.Pointer(unsafe.SliceData(data))), len(data)/8)
}

// growArray grows a to n longs keeping its contents (memory.TaskManager.GrowPage: off-heap
// without a copy). It returns false, a unchanged, when the task grants too little or the
// acquisition spilled this consumer and so freed a.
func (b *base) growArray(ctx context.Context, a *longArray, n int) (bool, error) {
	old := a.page.Size()
	ok, err := b.tm.GrowPage(ctx, a.page, 8*int64(n), b.self)
	if !ok {
		return false, err
	}
	b.used.Add(a.page.Size() - old)
	b.updatePeak()
	a.a = longs(a.page.Bytes())
	return true, nil
}

func (b *base) freeArray(a *longArray) {
	a.a = nil
	b.release(a.page)
}

func (a *longArray) size() int { return len(a.a) }

func (a *longArray) bytes() int64 { return 8 * int64(len(a.a)) }

// record resolves an encoded address of a [uao length][bytes] record to its bytes. An address
// whose page this consumer does not hold, or whose record does not fit its page, panics: it is a
// bug, never a wrong read.
func (b *base) record(addr int64) []byte {
	page, off := memory.DecodePageNumber(addr), memory.DecodeOffset(addr)
	var data []byte
	if page < len(b.table) {
		data = b.table[page]
	}
	if data == nil {
		panic(fmt.Sprintf("tungsten: %s: address %#x points into page %d, which is not held", b.name, addr, page))
	}
	if off+uao > int64(len(data)) {
		panic(fmt.Sprintf("tungsten: %s: address %#x: offset %d past the end of page %d (%d bytes)", b.name, addr, off, page, len(data)))
	}
	n := int64(order.Uint32(data[off:]))
	if end := off + uao + n; end > int64(len(data)) {
		panic(fmt.Sprintf("tungsten: %s: address %#x: record of %d bytes at offset %d overruns page %d (%d bytes)",
			b.name, addr, n, off, page, len(data)))
	}
	return data[off+uao : off+uao+n : off+uao+n]
}
