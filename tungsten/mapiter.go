package tungsten

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// MapIterator yields every record of a BytesToBytesMap, each value of a key separately, in
// insertion order: pages in order, records in page order (Spark's MapIterator). A destructive
// one frees the slot array at once and each page as it leaves it; pages a forced spill wrote to
// disk come back after the in-memory ones, the last spilled first. Reading a spilled page holds
// one reader at a time, within the map's spill writer reservation.
type MapIterator struct {
	ctx         context.Context
	n           int // records returned, for the periodic check of ctx
	m           *BytesToBytesMap
	destructive bool
	started     bool
	page        *memory.Page // current in-memory page
	data        []byte
	off         int64
	left        int // records left in the current page
	reader      *spillReader
	key, value  []byte
	err         error
	done        bool
}

// Iterator returns a non-destructive iterator (iterator); the map must not change while it runs.
// It stops with ctx's error when ctx is done.
func (m *BytesToBytesMap) Iterator(ctx context.Context) *MapIterator {
	return &MapIterator{ctx: ctx, m: m}
}

// DestructiveIterator returns the destructive iterator (destructiveIterator): it frees the slot
// array now, so no other call but Close is legal on the map afterwards, and each page once read.
// It stops with ctx's error when ctx is done.
func (m *BytesToBytesMap) DestructiveIterator(ctx context.Context) *MapIterator {
	m.updatePeak()
	it := &MapIterator{ctx: ctx, m: m, destructive: true}
	if m.array != nil {
		m.freeArray(m.array)
		m.array = nil
	}
	m.mu.Lock()
	m.destructive = it
	m.mu.Unlock()
	return it
}

// Next advances to the next live record.
func (it *MapIterator) Next() bool {
	if it.n++; it.n&1023 == 0 && !it.done {
		if it.err = it.ctx.Err(); it.err != nil {
			it.done = true
		}
	}
	for !it.done {
		if it.left > 0 {
			if it.readInPage() {
				return true
			}
			continue
		}
		if it.reader != nil {
			if it.readSpilled() {
				return true
			}
			continue
		}
		it.advance()
	}
	return false
}

func (it *MapIterator) readInPage() bool {
	data, off := it.data, it.off
	total := int64(order.Uint32(data[off:]))
	klenWord := order.Uint32(data[off+uao:])
	it.off += uao + total + it.m.link
	it.left--
	if klenWord&deadKey != 0 {
		return false
	}
	klen := int64(klenWord)
	ks := off + 2*uao
	it.key, it.value = data[ks:ks+klen:ks+klen], data[ks+klen:off+uao+total:off+uao+total]
	return true
}

func (it *MapIterator) readSpilled() bool {
	if !it.reader.next() {
		if it.err = it.reader.err; it.err != nil {
			it.done = true
		}
		it.reader = nil
		return false
	}
	rec := it.reader.rec
	if len(rec) < uao || int64(order.Uint32(rec)) > int64(len(rec)-uao) {
		it.err = fmt.Errorf("%w: tungsten: spilled map record of %d bytes with a bad key length", storage.ErrCorrupt, len(rec))
		it.done = true
		return false
	}
	klen := int(order.Uint32(rec))
	it.key, it.value = rec[uao:uao+klen:uao+klen], rec[uao+klen:]
	return true
}

// advance moves to the next page (freeing the one left if destructive), or to the next spill
// file once the pages are done (advanceToNextPage).
func (it *MapIterator) advance() {
	m := it.m
	var toFree *memory.Page
	m.mu.Lock()
	defer m.mu.Unlock()
	next := len(m.dataPages) // past the pages: reading spills
	switch {
	case it.page != nil:
		for i, p := range m.dataPages {
			if p == it.page {
				next = i + 1
				break
			}
		}
		if it.destructive {
			m.dataPages = append(m.dataPages[:next-1], m.dataPages[next:]...)
			toFree, next = it.page, next-1
		}
	case !it.started:
		next, it.started = 0, true
	}
	if toFree != nil {
		if m.cur == toFree {
			m.cur, m.cursor = nil, 0
		}
		m.freePage(toFree)
	}
	if next < len(m.dataPages) {
		it.page = m.dataPages[next]
		it.data = it.page.Bytes()
		it.left, it.off = int(order.Uint32(it.data)), uao
		return
	}
	it.page, it.data = nil, nil
	if !it.destructive || len(m.spills) == 0 {
		it.done = true
		return
	}
	f := m.spills[0]
	m.spills = m.spills[1:]
	r, err := openSpill(m.scope, f, true, nil)
	if err != nil {
		it.err, it.done = errors.Join(err, f.remove(m.scope)), true
		return
	}
	it.reader = r
}

// Key is the current record's key; Value its value. Both alias a page or a read buffer and are
// valid until the next call to Next.
func (it *MapIterator) Key() []byte   { return it.key }
func (it *MapIterator) Value() []byte { return it.value }

// Err is the error that stopped the iteration: a spill file read (wrapping storage.ErrCorrupt
// when a file is damaged) or ctx's error.
func (it *MapIterator) Err() error { return it.err }

// Spill writes the unread in-memory pages, last first, to spill files until numBytes are freed,
// never the page being read (MapIterator.spill). It returns 0 for a non-destructive iterator or
// with one page left.
func (it *MapIterator) Spill(numBytes int64) (int64, error) {
	m := it.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if !it.destructive || m.closed || len(m.dataPages) <= 1 {
		return 0, nil
	}
	m.updatePeak()
	var released int64
	for len(m.dataPages) > 0 {
		last := m.dataPages[len(m.dataPages)-1]
		if last == it.page {
			break
		}
		f, err := m.spillPage(last)
		if err != nil {
			return released, err
		}
		m.spills = append(m.spills, f)
		m.metrics.Spills++
		m.metrics.ForcedSpills++
		m.metrics.DiskBytesSpilled += f.size
		m.metrics.MemoryBytesSpilled += last.Size()
		m.dataPages = m.dataPages[:len(m.dataPages)-1]
		released += last.Size()
		if m.cur == last {
			m.cur, m.cursor = nil, 0
		}
		m.freePage(last)
		if released >= numBytes {
			break
		}
	}
	return released, nil
}

// spillPage writes a page's live records as [4-byte key length][key][value] with prefix 0.
func (m *BytesToBytesMap) spillPage(p *memory.Page) (spillFile, error) {
	w, err := newSpillWriter(m.scope, m.spill)
	if err != nil {
		return spillFile{}, err
	}
	for _, rec := range m.liveRecords(p) {
		if err := w.write(rec, 0); err != nil {
			return spillFile{}, errors.Join(err, w.Abort())
		}
	}
	return w.commit()
}

// liveRecords yields the records of data page p whose key is live, each as the offset of its
// total-length word and its [4-byte key length][key][value] bytes (aliasing the page).
func (m *BytesToBytesMap) liveRecords(p *memory.Page) iter.Seq2[int64, []byte] {
	return func(yield func(int64, []byte) bool) {
		data := p.Bytes()
		off := int64(uao)
		for range order.Uint32(data) {
			total := int64(order.Uint32(data[off:]))
			if order.Uint32(data[off+uao:])&deadKey == 0 && !yield(off, data[off+uao:off+uao+total]) {
				return
			}
			off += uao + total + m.link
		}
	}
}

// Close releases a spill file being read. The map's Close calls it.
func (it *MapIterator) Close() error {
	it.done = true
	if it.reader != nil {
		err := it.reader.close()
		it.reader = nil
		return err
	}
	return nil
}
