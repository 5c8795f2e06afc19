package tungsten

import (
	"context"
	"errors"
	"fmt"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// source is one sorted stream of records: the in-memory sorter's, a spill file's, a merge's.
// The record returned stays valid until the next call to next.
type source interface {
	next() bool
	record() []byte
	prefix() int64
	err() error
	close() error
}

// memIterator is Spark's SpillableIterator over the in-memory sorted pairs: another consumer may
// force the unread records to disk while it is read; the current record stays readable (its page
// is kept as lastPage until the next record is loaded).
type memIterator struct {
	s        *ExternalSorter
	runs     [2][]pair
	upstream *spillReader // after a forced spill
	lastPage *memory.Page
	curPage  int // page number of the current record, -1 if none or from a file
	rec      []byte
	pre      int64
	e        error
	// untouched counts the records left of the group touch loaded.
	untouched int
	buf       [inlineRecordBytes]byte // the current record of inline pairs
	// batch is the inline pairs taken out of the runs together, under one lock, and not yet
	// returned: a forced spill writes the runs only, and these 4 KiB (within the package's
	// stated slack) are served from here without the lock.
	batch    []pair
	batchBuf [inlineBatch]pair
}

// touchGroup is how many records the in-memory iterator loads at once (see touch).
const touchGroup = 16

// touch loads the first byte of the next touchGroup records of run in a tight loop and returns
// how many it touched. The records are read in sorted order, scattered over the pages: loads
// issued together miss the cache together (Go has no prefetch instruction), so the iterator then
// finds them in cache.
func (b *base) touch(run []pair) int {
	run = run[:min(touchGroup, len(run))]
	var sink byte
	for _, p := range run {
		n := memory.DecodePageNumber(p.addr)
		if n < len(b.table) {
			if data := b.table[n]; uint64(memory.DecodeOffset(p.addr)) < uint64(len(data)) {
				sink |= data[memory.DecodeOffset(p.addr)]
			}
		}
	}
	b.touched = sink
	return len(run)
}

func newMemIterator(s *ExternalSorter) *memIterator {
	it := &memIterator{s: s, curPage: -1}
	it.runs[0], it.runs[1] = s.inMem.sortedPairs()
	return it
}

func (it *memIterator) next() bool {
	if len(it.batch) > 0 {
		it.setInline(it.batch[0])
		it.batch = it.batch[1:]
		return true
	}
	s := it.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if it.lastPage != nil {
		s.freePage(it.lastPage)
		s.pages = nil
		it.lastPage = nil
	}
	it.rec, it.curPage = nil, -1
	if s.closed {
		it.e = ErrClosed
		return false
	}
	if it.upstream != nil {
		if !it.upstream.next() {
			it.e = it.upstream.err
			return false
		}
		it.rec, it.pre = it.upstream.rec, it.upstream.prefix
		return true
	}
	for len(it.runs[0]) == 0 {
		if len(it.runs[1]) == 0 {
			return false
		}
		it.runs[0], it.runs[1] = it.runs[1], nil
	}
	run := it.runs[0]
	if s.inline {
		n := copy(it.batchBuf[:], run)
		it.runs[0] = run[n:]
		it.batch = it.batchBuf[1:n]
		it.setInline(it.batchBuf[0])
		return true
	}
	if it.untouched == 0 {
		it.untouched = s.touch(run)
	}
	it.untouched--
	p := run[0]
	it.runs[0] = run[1:]
	it.rec, it.pre, it.curPage = s.record(p.addr), p.prefix, memory.DecodePageNumber(p.addr)
	return true
}

// setInline makes the inline pair p the current record.
func (it *memIterator) setInline(p pair) {
	w := uint64(p.prefix) ^ it.s.flip
	putInlineRecord(&it.buf, w, p.addr)
	it.rec, it.pre, it.curPage = it.buf[:], int64(w), -1
}

// spill writes the unread records to a file and reads on from it, freeing every page but the
// current record's, and the pointer array. A second spill returns 0. The writer, then the
// reader of its file, use the sorter's spill writer reservation.
func (it *memIterator) spill() (int64, error) {
	s := it.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.inMem == nil {
		return 0, nil
	}
	if len(it.runs[0])+len(it.runs[1]) > 0 {
		f, err := s.writeRun(it.runs[0], it.runs[1])
		if err != nil {
			return 0, err
		}
		s.temps = append(s.temps, f)
		s.metrics.DiskBytesSpilled += f.size
		if it.upstream, err = openSpill(s.scope, f, true, nil); err != nil {
			return 0, err
		}
	}
	it.runs = [2][]pair{}
	released := s.freePagesLocked(it.curPage)
	if len(s.pages) == 1 {
		it.lastPage = s.pages[0]
	}
	s.metrics.MemoryBytesSpilled += released
	released += s.inMem.memoryUsage()
	s.inMem.freeMemory()
	s.inMem = nil
	s.metrics.Spills++
	s.metrics.ForcedSpills++
	return released, nil
}

func (it *memIterator) record() []byte { return it.rec }
func (it *memIterator) prefix() int64  { return it.pre }
func (it *memIterator) err() error     { return it.e }
func (it *memIterator) close() error {
	if it.upstream != nil {
		return it.upstream.close()
	}
	return nil
}

// fileSource adapts a spillReader.
type fileSource struct{ *spillReader }

func (f fileSource) record() []byte { return f.rec }
func (f fileSource) prefix() int64  { return f.spillReader.prefix }
func (f fileSource) err() error     { return f.spillReader.err }

// merger is Spark's UnsafeSorterSpillMerger: a binary heap of sources ordered by prefix, then
// record comparator, holding each source at its current record. The source of the record last
// returned stays at the top and advances on the following call (its new record replacing it at
// the top), so that record stays valid until then. Each entry keeps its prefix as a number whose
// unsigned order is the prefix comparator's, so most comparisons touch no source.
type merger struct {
	heap    []mergeEntry
	xor     uint64 // an entry's key is its prefix XOR xor
	records RecordComparator
	cur     bool // heap[0] holds the record last returned
	e       error
	sorted  []source // all sources, for close
}

type mergeEntry struct {
	key uint64
	src source
}

func newMerger(prefix PrefixComparator, records RecordComparator, sources []source) (*merger, error) {
	m := &merger{sorted: sources, records: records}
	if prefix.Signed {
		m.xor = 1 << 63
	}
	if prefix.Descending {
		m.xor = ^m.xor
	}
	for _, s := range sources {
		if s.next() {
			m.push(s)
		} else if err := s.err(); err != nil {
			return m, err
		}
	}
	return m, nil
}

func (m *merger) less(a, b *mergeEntry) bool {
	if a.key != b.key {
		return a.key < b.key
	}
	return m.records != nil && m.records(a.src.record(), b.src.record()) < 0
}

func (m *merger) push(s source) {
	m.heap = append(m.heap, mergeEntry{key: uint64(s.prefix()) ^ m.xor, src: s})
	h := m.heap
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !m.less(&h[i], &h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

// down moves the top entry down to its place.
func (m *merger) down() {
	h := m.heap
	n := len(h)
	for i := 0; ; {
		l, r, least := 2*i+1, 2*i+2, i
		if l < n && m.less(&h[l], &h[least]) {
			least = l
		}
		if r < n && m.less(&h[r], &h[least]) {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}

func (m *merger) next() bool {
	if m.e != nil {
		return false
	}
	if m.cur {
		m.cur = false
		top := &m.heap[0]
		if top.src.next() {
			top.key = uint64(top.src.prefix()) ^ m.xor
		} else if m.e = top.src.err(); m.e != nil {
			return false
		} else {
			n := len(m.heap) - 1
			m.heap[0] = m.heap[n]
			m.heap[n] = mergeEntry{}
			m.heap = m.heap[:n]
		}
		if len(m.heap) > 1 {
			m.down()
		}
	}
	if len(m.heap) == 0 {
		return false
	}
	m.cur = true
	return true
}

func (m *merger) record() []byte { return m.heap[0].src.record() }
func (m *merger) prefix() int64  { return m.heap[0].src.prefix() }
func (m *merger) err() error     { return m.e }
func (m *merger) close() error {
	var errs []error
	for _, s := range m.sorted {
		errs = append(errs, s.close())
	}
	m.heap, m.cur, m.sorted = nil, false, nil
	return errors.Join(errs...)
}

// lazyFile reads a run opened at its first next, after acquiring its reader's buffers on io:
// a concat of runs holds one reader at a time.
type lazyFile struct {
	ctx   context.Context
	scope *storage.Scope
	io    *spillIO
	file  spillFile
	r     *spillReader
	e     error
	done  bool
}

func (l *lazyFile) next() bool {
	if l.r == nil && !l.done {
		l.done = true
		got, err := l.io.Acquire(l.ctx, l.file.readCost)
		if err == nil && got < l.file.readCost {
			l.io.Release(got)
			err = l.io.outOfMemory("a spill file's reader", l.file.readCost, got)
		}
		if err == nil {
			l.r, err = openSpill(l.scope, l.file, true, l.io.piece(got))
		}
		if err != nil {
			l.e = errors.Join(err, l.file.remove(l.scope))
			return false
		}
	}
	return l.r != nil && l.r.next()
}

func (l *lazyFile) record() []byte { return l.r.rec }
func (l *lazyFile) prefix() int64  { return l.r.prefix }
func (l *lazyFile) err() error {
	if l.r != nil {
		return l.r.err
	}
	return l.e
}
func (l *lazyFile) close() error {
	if l.r != nil {
		return l.r.close()
	}
	if !l.done { // never opened
		l.done = true
		return l.file.remove(l.scope)
	}
	return nil
}

// concat reads sources one after the other (insertion order).
type concat struct {
	srcs []source
	all  []source
	e    error
}

func (c *concat) next() bool {
	for len(c.srcs) > 0 && c.e == nil {
		if c.srcs[0].next() {
			return true
		}
		c.e = c.srcs[0].err()
		c.srcs = c.srcs[1:]
	}
	return false
}
func (c *concat) record() []byte { return c.srcs[0].record() }
func (c *concat) prefix() int64  { return c.srcs[0].prefix() }
func (c *concat) err() error     { return c.e }
func (c *concat) close() error {
	var errs []error
	for _, s := range c.all {
		errs = append(errs, s.close())
	}
	c.srcs, c.all = nil, nil
	return errors.Join(errs...)
}

// SortedIterator reads an ExternalSorter's records. Record and Prefix are valid after Next
// returned true, until the following Next; Record aliases a page or a read buffer (copy what you
// keep). Close it when done (the sorter's Close also closes it).
type SortedIterator struct {
	ctx  context.Context
	s    *ExternalSorter
	src  source
	mem  *memIterator // nil if no records were in memory
	e    error
	n    int
	done bool
}

// Next advances to the next record.
func (it *SortedIterator) Next() bool {
	if it.done {
		return false
	}
	if it.n++; it.n&1023 == 0 {
		if err := it.ctx.Err(); err != nil {
			it.e = err
			it.done = true
			return false
		}
	}
	if it.src.next() {
		return true
	}
	it.e = it.src.err()
	it.done = true
	return false
}

// Record is the current record's bytes.
func (it *SortedIterator) Record() []byte { return it.src.record() }

// Prefix is the current record's key prefix.
func (it *SortedIterator) Prefix() int64 { return it.src.prefix() }

// Err is the error that stopped the iteration: a spill file read (wrapping storage.ErrCorrupt
// when a file is damaged), ctx's error, or ErrClosed.
func (it *SortedIterator) Err() error { return it.e }

// Spill forces the unread in-memory records to disk now (SpillableIterator.spill), keeping the
// current record readable, and returns the bytes freed; 0 when nothing is left in memory.
func (it *SortedIterator) Spill() (int64, error) {
	if it.mem == nil {
		return 0, nil
	}
	return it.mem.spill()
}

// Close releases the files being read. It may be called more than once.
func (it *SortedIterator) Close() error {
	if it.src == nil {
		return nil
	}
	it.done = true
	err := it.src.close()
	it.src = nil
	return err
}

// SortedIterator returns the records in sorted order (getSortedIterator): the in-memory ones,
// merged with the spills if any (at most MergeFactor files at once; more are merged into
// intermediate files first). It may be called once.
func (s *ExternalSorter) SortedIterator(ctx context.Context) (*SortedIterator, error) {
	return s.iterator(ctx, true, 0)
}

// Iterator returns the records from the startIndex-th on in insertion order of the runs: each
// spill in spill order, then the in-memory records, sorted within each run (getIterator). It may
// be called once; a startIndex past the end is an error.
func (s *ExternalSorter) Iterator(ctx context.Context, startIndex int) (*SortedIterator, error) {
	return s.iterator(ctx, false, startIndex)
}

func (s *ExternalSorter) iterator(ctx context.Context, merge bool, skip int) (*SortedIterator, error) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, ErrClosed
	case s.read:
		s.mu.Unlock()
		return nil, ErrIterated
	}
	s.read = true
	s.updatePeak()
	it := &SortedIterator{ctx: ctx, s: s}
	if s.inMem.numRecords() > 0 {
		it.mem = newMemIterator(s)
		s.reading = it.mem
	}
	spills := append([]spillFile(nil), s.spills...)
	s.mu.Unlock()

	if merge && s.cfg.Records != nil {
		var passes int64
		plan := mergePlan{scope: s.scope, io: &s.writer.io, spill: s.spill, factor: s.cfg.MergeFactor, prefix: s.cfg.Prefix,
			records: s.cfg.Records}
		if s.inline { // the prefix is the whole key, and never null
			plan.records = nil
		}
		var extra source
		if it.mem != nil {
			extra = it.mem
		}
		src, err := plan.merge(ctx, spills, extra, &passes)
		s.mu.Lock()
		s.metrics.MergePasses += passes
		s.mu.Unlock()
		if err != nil {
			return nil, errors.Join(err, it.mem.closeIfAny())
		}
		it.src = src
	} else {
		var srcs []source
		for _, f := range spills {
			srcs = append(srcs, &lazyFile{ctx: ctx, scope: s.scope, io: &s.writer.io, file: f})
		}
		if it.mem != nil {
			srcs = append(srcs, it.mem)
		}
		it.src = &concat{srcs: srcs, all: srcs}
	}
	for i := range skip {
		if !it.src.next() {
			err := it.src.err()
			if err == nil {
				err = fmt.Errorf("tungsten: failed to move the iterator %d steps forward: only %d records", skip, i)
			}
			return nil, errors.Join(err, it.Close())
		}
	}
	s.mu.Lock()
	s.out = it
	s.mu.Unlock()
	return it, nil
}

func (m *memIterator) closeIfAny() error {
	if m == nil {
		return nil
	}
	return m.close()
}
