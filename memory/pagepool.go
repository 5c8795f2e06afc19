package memory

import (
	"sync"
	"unsafe"
	"weak"

	"go.uber.org/zap"
)

// maxPooledPages bounds each mode's page pool: a sorter or map that spills frees its few pages
// and allocates as many again, and a longer list would only be searched for nothing.
const maxPooledPages = 16

// pagePool keeps the memory of pages freed through a manager's TaskManagers for the next page of
// the same size, so that a page is not zeroed (on-heap) or mapped and faulted in (off-heap) again
// on every allocation, the way Spark's HeapMemoryAllocator keeps freed large buffers
// (core/src/main/java/org/apache/spark/unsafe/memory/HeapMemoryAllocator.java). A reused page is
// not zeroed: AllocatePage never promised zeroes (Spark's allocate does not clear either).
//
// The budget stays the memory:
//   - on-heap, the pool holds weak pointers only, like Spark's WeakReferences: a freed page is
//     garbage the collector takes back at its next cycle whether or not it is pooled, and is
//     reused only if it is still there;
//   - off-heap, the pool holds the mappings, at most maxPooledPages, and only while the pooled
//     bytes fit in the off-heap memory nobody holds (the off-heap maximum less execution and
//     storage memory in use): every page allocation and free trims it back under that, so the
//     mapped memory stays within Config.OffHeapSize. UnifiedManager.Close unmaps the rest.
type pagePool struct {
	mu       sync.Mutex
	heap     []heapPage
	off      [][]byte
	offBytes int64
}

type heapPage struct {
	size int64
	ptr  weak.Pointer[byte]
}

// get returns pooled memory of exactly size bytes of mode, or nil.
func (p *pagePool) get(mode Mode, size int64) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if mode == OnHeap {
		for i := len(p.heap) - 1; i >= 0; i-- {
			e := p.heap[i]
			if e.size != size {
				continue
			}
			p.heap = append(p.heap[:i], p.heap[i+1:]...)
			if b := e.ptr.Value(); b != nil {
				return unsafe.Slice(b, size)
			}
		}
		return nil
	}
	for i := len(p.off) - 1; i >= 0; i-- {
		if b := p.off[i]; int64(len(b)) == size {
			p.off = append(p.off[:i], p.off[i+1:]...)
			p.offBytes -= size
			return b
		}
	}
	return nil
}

// put pools data, the memory of a freed page of mode, and returns the off-heap mappings to unmap:
// data itself when it does not fit, or the oldest pooled ones it pushes out. free is the off-heap
// memory nobody holds, data's bytes included.
func (p *pagePool) put(mode Mode, data []byte, free int64) (unmap [][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if mode == OnHeap {
		// Drop the oldest if the pool is full. Entries whose page the collector took are left
		// for get to skip: asking a weak pointer for its value while the collector marks keeps
		// the page alive for that cycle, so checking every entry here would make every pooled
		// page live again (the heap would hold the pool, up to maxPooledPages pages, beside the
		// budget).
		if len(p.heap) == maxPooledPages {
			p.heap = append(p.heap[:0], p.heap[1:]...)
		}
		p.heap = append(p.heap, heapPage{size: int64(len(data)), ptr: weak.Make(unsafe.SliceData(data))})
		return nil
	}
	size := int64(len(data))
	if size > free {
		return [][]byte{data}
	}
	p.off = append(p.off, data)
	p.offBytes += size
	return p.trimLocked(free)
}

// trim returns the oldest pooled mappings to unmap so that the pooled bytes fit in free and the
// pool in maxPooledPages.
func (p *pagePool) trim(free int64) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.trimLocked(free)
}

func (p *pagePool) trimLocked(free int64) [][]byte {
	n := 0
	for dropped := int64(0); n < len(p.off) && (p.offBytes-dropped > free || len(p.off)-n > maxPooledPages); n++ {
		dropped += int64(len(p.off[n]))
	}
	if n == 0 {
		return nil
	}
	out := append([][]byte(nil), p.off[:n]...)
	for _, b := range out {
		p.offBytes -= int64(len(b))
	}
	p.off = append(p.off[:0], p.off[n:]...)
	return out
}

// pooled is the off-heap bytes the pool holds.
func (p *pagePool) pooled() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offBytes
}

// offHeapFree is the off-heap memory nobody holds: the off-heap maximum less the execution,
// storage and unmanaged memory in use.
func (m *UnifiedManager) offHeapFree() int64 {
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	return m.max[OffHeap] - m.exec[OffHeap].used - m.storage[OffHeap].used - m.unmanaged.used(OffHeap)
}

// newTaskPage returns the memory of a new page of size bytes of mode, pooled if there is some.
func (m *UnifiedManager) newTaskPage(mode Mode, size int64) (*Page, error) {
	if data := m.pages.get(mode, size); data != nil {
		return &Page{mode: mode, number: NoPageNumber, size: size, data: data}, nil
	}
	if mode == OffHeap {
		// The acquisition may have taken memory the pool counted on.
		m.unmapAll(m.pages.trim(m.offHeapFree()))
	}
	return NewPage(mode, size)
}

// freeTaskPage gives a freed page's memory to the pool (or back to the system) once its
// execution memory has been released; p is marked FreedInAllocatorPageNumber.
func (m *UnifiedManager) freeTaskPage(p *Page) {
	data := p.data
	p.number, p.data = FreedInAllocatorPageNumber, nil
	if data == nil {
		return
	}
	free := int64(0)
	if p.mode == OffHeap {
		free = m.offHeapFree()
	}
	m.unmapAll(m.pages.put(p.mode, data, free))
}

// closePages unmaps every pooled off-heap page and forgets the on-heap ones.
func (m *UnifiedManager) closePages() {
	m.unmapAll(m.pages.trim(-1))
	m.pages.mu.Lock()
	m.pages.heap = nil
	m.pages.mu.Unlock()
}

func (m *UnifiedManager) unmapAll(maps [][]byte) {
	for _, b := range maps {
		if err := unmap(b); err != nil {
			m.log.Error("unmapping an off-heap page", zap.String("bytes", ibytes(int64(len(b)))), zap.Error(err))
		}
	}
}
