package tungsten

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"unsafe"

	"github.com/spillway/spillway/internal/radix"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// An Aggregator whose keys and values are both Int64Key keeps them in the slots themselves: slot
// i of the map's array is [2i] = the key word, [2i+1] = the value, so an insert touches one slot
// and no page (a BytesToBytesMap lookup loads the slot, then the record it points to: two cache
// misses). The key word is Int64Key's encoding read as a big-endian number: the key's sort
// prefix, unsigned order being the keys' order. Word 0 marks an empty slot, so the one key
// encoded as 0 (math.MinInt64) is kept beside the array (inlineState.zero). Slots are probed
// linearly from a multiplicative hash of the key word, scaled to the number of slots (which need
// not be a power of 2).
//
// The array grows as the map's does, by doubling with the old and the new array held during the
// copy, and fills to aggregatorFullLoad once it cannot grow. Then a spill lays the slots out as
// (value, key word) pairs, radix-sorts them in the array and writes them in the page record
// format, so runs merge as the map's do. Under a budget, doubling stops at about a third of it
// (old and new array); so after a spill, with the array empty, the aggregator frees it and takes
// a new one of as many slots as the task grants up to twice as many, the doubling that failed,
// until a spill finds no more to be had.

// inlineWord is Int64Key's encoding of k as a number.
func inlineWord(k int64) uint64 { return uint64(k) ^ 1<<63 }

// asInt64 reinterprets v, whose type is int64 (its codec is Int64Key), as an int64.
func asInt64[T any](v T) int64 { return *(*int64)(unsafe.Pointer(&v)) }

// fromInt64 is asInt64's inverse.
func fromInt64[T any](x int64) T { return *(*T)(unsafe.Pointer(&x)) }

// inlineState is an Aggregator's state for inline slots.
type inlineState struct {
	on bool
	// merge is the Aggregator's merge function when its values are Int64Key (intValues), inline
	// slots or not: values then merge in place without their codec.
	merge     func(a, b int64) int64
	intValues bool
	seed      uint64
	zero      bool // key word 0 has a value, zeroVal
	zeroVal   int64
	// settled: a resize after a spill got no more slots than it had, so the array stays.
	settled bool
}

// initInline turns inline slots on when keys and values are both Int64Key.
func (a *Aggregator[K, V]) initInline() {
	if _, ok := any(a.values).(Int64Key); !ok {
		return
	}
	a.in.intValues, a.in.merge = true, any(a.merge).(func(a, b int64) int64) // V is int64: its codec is Int64Key
	if _, ok := any(a.keys).(Int64Key); ok {
		a.in.on, a.in.seed = true, maphash.Comparable(a.m.seed, 0)
	}
}

// pos is the first slot probed for key word w among n slots.
func (s *inlineState) pos(w uint64, n int) int {
	hi, _ := bits.Mul64((w^s.seed)*0x9e3779b97f4a7c15, uint64(n))
	return int(hi)
}

// insertInline merges v into the value of key word w.
func (a *Aggregator[K, V]) insertInline(ctx context.Context, w uint64, v int64) error {
	if w == 0 {
		if a.in.zero {
			a.in.zeroVal = a.in.merge(a.in.zeroVal, v)
		} else {
			a.in.zero, a.in.zeroVal = true, v
		}
		return nil
	}
	m := a.m
	s := m.array.a
	n := len(s) / 2
	pos := a.in.pos(w, n)
	for {
		x := uint64(s[2*pos])
		if x == w {
			s[2*pos+1] = a.in.merge(s[2*pos+1], v)
			return nil
		}
		if x == 0 {
			break
		}
		if pos++; pos == n {
			pos = 0
		}
	}
	if m.numKeys >= m.growthThreshold { // full, and it cannot grow
		if err := a.spill(ctx); err != nil {
			return err
		}
		return a.insertInline(ctx, w, v)
	}
	s[2*pos], s[2*pos+1] = int64(w), v
	m.numKeys++
	m.numValues++
	if m.numKeys >= m.growthThreshold && m.canGrowArray {
		if m.Capacity() >= MaxCapacity {
			m.cannotGrow()
			return nil
		}
		err := m.regrow(ctx, a.rehashInline)
		if err != nil {
			if !errors.Is(err, memory.ErrOutOfMemory) {
				return err
			}
			m.cannotGrow()
		}
	}
	return nil
}

// rehashInline moves the slots of old into the map's (empty) array.
func (a *Aggregator[K, V]) rehashInline(old []int64) {
	s := a.m.array.a
	n := len(s) / 2
	for i := 0; i < len(old); i += 2 {
		if w := old[i]; w != 0 {
			pos := a.in.pos(uint64(w), n)
			for s[2*pos] != 0 {
				if pos++; pos == n {
					pos = 0
				}
			}
			s[2*pos], s[2*pos+1] = w, old[i+1]
		}
	}
}

// resizeInline runs after a spill, the array empty: unless settled, it frees the array and takes
// one of as many slots as the task grants, up to twice as many, at least 64.
func (a *Aggregator[K, V]) resizeInline(ctx context.Context) error {
	m := a.m
	if a.in.settled || m.Capacity() >= MaxCapacity/2 {
		return nil
	}
	old := m.Capacity()
	m.freeArray(m.array)
	m.array = nil
	arr, err := m.allocateArrayUpTo(ctx, 4*old, 128)
	if err != nil {
		return err
	}
	clear(arr.a)
	n := len(arr.a) / 2
	a.in.settled = n <= old
	m.array, m.mask = arr, n-1
	m.canGrowArray = true
	m.growthThreshold = int(float64(n) * m.cfg.LoadFactor)
	return nil
}

// allocateArrayUpTo allocates an array of as many longs as the task grants, up to want and at
// least least (both even), rounded down to an even number (not zeroed).
func (b *base) allocateArrayUpTo(ctx context.Context, want, least int) (*longArray, error) {
	p, err := b.rawPage(ctx, 8*int64(want), 8*int64(least))
	if err != nil {
		return nil, err
	}
	data := p.Bytes()
	n := int(p.Size()/16) * 2
	return &longArray{page: p, a: unsafe.Slice((*int64)(unsafe.Pointer(unsafe.SliceData(data))), n)}, nil
}

// insertAllInline is InsertAll with inline slots: groups of keys have their first slots loaded
// together, so that the cache misses overlap, before they are inserted.
func (a *Aggregator[K, V]) insertAllInline(ctx context.Context, records storage.Iterator[Pair[K, V]]) error {
	var (
		ws [insertGroup]uint64
		vs [insertGroup]int64
	)
	for done := false; !done; {
		n := 0
		for ; n < insertGroup; n++ {
			if !records.Next() {
				done = true
				break
			}
			p := records.Value()
			ws[n], vs[n] = inlineWord(asInt64(p.Key)), asInt64(p.Value)
		}
		if err := records.Err(); err != nil {
			return err
		}
		s := a.m.array.a
		var sink int64
		for _, w := range ws[:n] {
			sink |= s[2*a.in.pos(w, len(s)/2)]
		}
		a.m.base.touched = byte(sink)
		for i := range n {
			if err := a.insertInline(ctx, ws[i], vs[i]); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// inlineSource yields the keys in memory in key order (after sortInline) as key-value records
// of the page format, [4-byte key length 8][key][value] with the key as prefix, or as words.
type inlineSource struct {
	ps      []int64 // sorted (value, key word) pairs
	zero    bool    // key word 0 comes first, with zeroVal
	zeroVal int64
	rec     [uao + 16]byte
	w       uint64
	v       int64
}

// sortInline moves the aggregator's slots and its zero key into a source in key order. The
// array's slots are lost: reset the map before inserting again.
func (a *Aggregator[K, V]) sortInline() *inlineSource {
	var s []int64
	if a.m.array != nil {
		s = a.m.array.a
	}
	n := 0
	for i := range len(s) / 2 {
		if w := s[2*i]; w != 0 {
			s[2*n], s[2*n+1] = s[2*i+1], w
			n++
		}
	}
	src := &inlineSource{zero: a.in.zero, zeroVal: a.in.zeroVal}
	a.in.zero = false
	if 4*n <= len(s) {
		start := radix.SortKeyPrefixArray(s, 0, n, 0, 7, false, false)
		src.ps = s[start : start+2*n]
	} else {
		radix.SortKeyPrefixWithin(s, n) // the slots past the pairs are free: scratch
		src.ps = s[:2*n]
	}
	order.PutUint32(src.rec[:], 8)
	return src
}

// len is the number of keys left.
func (s *inlineSource) len() int {
	n := len(s.ps) / 2
	if s.zero {
		n++
	}
	return n
}

// nextWord moves to the next key word and value, without formatting a record.
func (s *inlineSource) nextWord() bool {
	switch {
	case s.zero:
		s.zero, s.w, s.v = false, 0, s.zeroVal
	case len(s.ps) > 0:
		s.v, s.w = s.ps[0], uint64(s.ps[1])
		s.ps = s.ps[2:]
	default:
		return false
	}
	return true
}

func (s *inlineSource) next() bool {
	if !s.nextWord() {
		return false
	}
	binary.BigEndian.PutUint64(s.rec[uao:], s.w)
	binary.BigEndian.PutUint64(s.rec[uao+8:], inlineWord(s.v))
	return true
}
func (s *inlineSource) record() []byte { return s.rec[:] }
func (s *inlineSource) prefix() int64  { return int64(s.w) }
func (s *inlineSource) err() error     { return nil }
func (s *inlineSource) close() error   { s.ps, s.zero = nil, false; return nil }

// inlinePairs yields the keys in memory in key order, without spills. Another consumer may
// force the keys not yet read to disk (BytesToBytesMap.Spill calls spill): they are written as a
// run, the array is freed, and reading goes on from the run. The array is freed once read.
type inlinePairs[K, V any] struct {
	a      *Aggregator[K, V]
	src    *inlineSource // nil once read or spilled; guarded by a.m.mu
	reader *spillReader  // the forced spill's run; guarded by a.m.mu
	batch  []int64       // (value, key word) pairs taken from src or reader
	buf    [2 * inlineBatch]int64
	cur    Pair[K, V]
	err    error
}

// inlineBatch is how many pairs an iterator of inline pairs (inlinePairs, and the Sorter's
// memIterator) takes from the array under one lock.
const inlineBatch = 256

func newInlinePairs[K, V any](a *Aggregator[K, V], src *inlineSource) *inlinePairs[K, V] {
	p := &inlinePairs[K, V]{a: a, src: src}
	a.m.mu.Lock()
	a.m.spillHook = p.spill
	a.m.mu.Unlock()
	return p
}

func (p *inlinePairs[K, V]) Next() bool {
	for len(p.batch) == 0 {
		if p.err != nil || !p.refill() {
			return false
		}
	}
	v, w := p.batch[0], uint64(p.batch[1])
	p.batch = p.batch[2:]
	p.cur = Pair[K, V]{Key: fromInt64[K](int64(inlineWord(int64(w)))), Value: fromInt64[V](v)}
	return true
}

// refill takes the next pairs from the array, or else from the forced spill's run; false at the
// end or on error.
func (p *inlinePairs[K, V]) refill() bool {
	m := p.a.m
	m.mu.Lock()
	if src := p.src; src != nil {
		p.batch = p.buf[:0]
		for len(p.batch) < len(p.buf) && src.nextWord() {
			p.batch = append(p.batch, src.v, int64(src.w))
		}
		if len(p.batch) > 0 {
			m.mu.Unlock()
			return true
		}
		p.src, m.spillHook = nil, nil
		m.updatePeak()
		m.freeArray(m.array)
		m.array = nil
	}
	r := p.reader
	m.mu.Unlock()
	if r == nil || !r.next() {
		if r != nil {
			p.err = r.err
		}
		return false
	}
	rec := r.rec
	if len(rec) != uao+16 || order.Uint32(rec) != 8 {
		p.err = fmt.Errorf("%w: tungsten: %s: spilled record of %d bytes, want an 8-byte key and value", storage.ErrCorrupt, m.name, len(rec))
		return false
	}
	p.batch = append(p.buf[:0], int64(inlineWord(int64(binary.BigEndian.Uint64(rec[uao+8:])))), int64(binary.BigEndian.Uint64(rec[uao:])))
	return true
}

// spill writes the keys not yet taken from the array to a run and frees the array, returning
// the bytes freed (MapIterator.spill's counterpart).
func (p *inlinePairs[K, V]) spill(int64) (int64, error) {
	m := p.a.m
	m.mu.Lock()
	defer m.mu.Unlock()
	src := p.src
	if src == nil || m.closed || src.len() == 0 {
		return 0, nil
	}
	w, err := newSpillWriter(m.scope, m.spill)
	if err != nil {
		return 0, err
	}
	for src.nextWord() {
		if err := w.writeInline(src.w, src.v); err != nil {
			return 0, errors.Join(err, w.Abort())
		}
	}
	f, err := w.commit()
	if err != nil {
		return 0, err
	}
	r, err := openSpill(m.scope, f, true, nil) // the writer's reservation covers its reader
	if err != nil {
		return 0, errors.Join(err, f.remove(m.scope))
	}
	p.src, p.reader, m.spillHook = nil, r, nil
	m.updatePeak()
	freed := m.array.page.Size()
	m.freeArray(m.array)
	m.array = nil
	m.metrics.Spills++
	m.metrics.ForcedSpills++
	m.metrics.DiskBytesSpilled += f.size
	m.metrics.MemoryBytesSpilled += freed
	return freed, nil
}

func (p *inlinePairs[K, V]) Value() Pair[K, V] { return p.cur }
func (p *inlinePairs[K, V]) Err() error        { return p.err }

// Close stops reading and deletes the forced spill's run; the aggregator's Close frees the array.
func (p *inlinePairs[K, V]) Close() error {
	m := p.a.m
	m.mu.Lock()
	r := p.reader
	p.src, p.reader, p.batch, m.spillHook = nil, nil, nil, nil
	m.mu.Unlock()
	if r != nil {
		return r.close()
	}
	return nil
}

// inlineIterator is Iterator with inline slots: the keys in key order, merged with the runs.
func (a *Aggregator[K, V]) inlineIterator(ctx context.Context) (storage.Iterator[Pair[K, V]], error) {
	if len(a.runs) == 0 {
		a.out = newInlinePairs(a, a.sortInline())
		return a.out, nil
	}
	rest, err := a.sortedRest(ctx)
	if err != nil {
		return nil, err
	}
	merged, err := mergeRuns(ctx, a.m.scope, &a.m.base, a.factor, a.runs, rest, true, &a.spills.MergePasses)
	a.runs = nil
	if err != nil {
		return nil, err
	}
	a.out = &combined[K, V]{ctx: ctx, a: a, src: merged}
	return a.out, nil
}
