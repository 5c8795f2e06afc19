package collection

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/spillway/spillway/storage"
)

// groupSource is one sorted input of the grouping merge, positioned on a key.
type groupSource[K comparable, V any] interface {
	// advance moves to the next key, skipping the unread values of the current one; false at
	// the end or on error (see err).
	advance() bool
	head() (hash uint64, enc []byte, key K)
	// nextValue returns the next value of the current key.
	nextValue() (V, bool)
	err() error
	close() error
}

// memGroupSource reads a sorted in-memory table; a forced spill moves its unread rest to disk
// (then it delegates to a diskGroupSource and holds no reference to the table).
type memGroupSource[K comparable, V any] struct {
	g       *ExternalGrouper[K, V]
	entries []groupEntry[K, V]
	pos     int
	key     K
	enc     []byte
	chunk   int // next chunk of the current list
	vi      int // next value in that chunk
	disk    *diskGroupSource[K, V]
	e       error
	done    bool
}

func (s *memGroupSource[K, V]) advance() bool {
	if s.disk != nil {
		return s.disk.advance()
	}
	if s.done {
		return false
	}
	if s.pos >= 0 && s.pos < len(s.entries) {
		s.entries[s.pos] = groupEntry[K, V]{}
	}
	s.pos++
	if s.pos >= len(s.entries) {
		s.finish()
		return false
	}
	e := &s.entries[s.pos]
	s.key, s.chunk, s.vi = e.key, 0, 0
	s.enc = e.enc
	if s.enc == nil {
		s.enc = s.g.keys.Append(s.enc[:0], e.key)
	}
	return true
}

func (s *memGroupSource[K, V]) head() (uint64, []byte, K) {
	if s.disk != nil {
		return s.disk.head()
	}
	return s.entries[s.pos].hash, s.enc, s.key
}

func (s *memGroupSource[K, V]) nextValue() (V, bool) {
	if s.disk != nil {
		return s.disk.nextValue()
	}
	var zero V
	if s.done || s.pos < 0 || s.pos >= len(s.entries) {
		return zero, false
	}
	l := s.entries[s.pos].list
	for s.chunk < len(l.chunks) {
		c := l.chunks[s.chunk]
		if s.vi < len(c) {
			v := c[s.vi]
			c[s.vi] = zero
			s.vi++
			return v, true
		}
		l.chunks[s.chunk] = nil // read: collectable
		s.chunk, s.vi = s.chunk+1, 0
	}
	return zero, false
}

func (s *memGroupSource[K, V]) err() error {
	if s.disk != nil {
		return errors.Join(s.e, s.disk.err())
	}
	return s.e
}

// finish drops the table and releases the grouper's memory, once.
func (s *memGroupSource[K, V]) finish() {
	s.entries, s.enc = nil, nil
	var zero K
	s.key = zero
	if !s.done {
		s.done = true
		if s.g.reading == s {
			s.g.reading = nil
			s.g.sp.ReleaseMemory()
		}
	}
}

func (s *memGroupSource[K, V]) close() error {
	s.finish()
	if s.disk != nil {
		return s.disk.close()
	}
	return nil
}

// spill writes the unread rest (from the current key on) to a spill file and reads on from it.
func (s *memGroupSource[K, V]) spill() (int64, bool, error) {
	if s.disk != nil || s.done {
		return 0, false, nil
	}
	started := s.pos >= 0
	f, err := s.g.writeSource(s, true)
	s.finish()
	if err != nil {
		s.e = err
		return 0, false, err
	}
	raw, err := openRawSpill(s.g.scope, f, s.g.sp.writerToReader(f.readCost))
	if err != nil {
		s.e = err
		return f.size, false, err
	}
	s.disk = &diskGroupSource[K, V]{g: s.g, r: raw}
	if started && !s.disk.advance() { // back on the key being read
		s.e = s.disk.err()
	}
	return f.size, true, nil
}

// diskGroupSource reads a grouping spill file: records of (key, count, values), a key's records
// consecutive.
type diskGroupSource[K comparable, V any] struct {
	g       *ExternalGrouper[K, V]
	r       *rawSpillReader
	rec     []byte // values of the current record not yet read (aliases the reader's buffer)
	left    int    // values left in rec
	pending []byte // the first record of the next key, read ahead
	hash    uint64
	key     K
	enc     []byte // the current key's encoding (owned copy)
	e       error
	ended   bool // no more records
}

// read returns the next record, or nil at the end or on error.
func (s *diskGroupSource[K, V]) read() []byte {
	if s.ended || s.e != nil {
		return nil
	}
	rec, ok, err := s.r.next()
	if !ok {
		s.ended, s.e = true, err
		return nil
	}
	return rec
}

// appendGroupRecord appends a record of a grouping spill file: the key's encoding, the number of
// values n as a uvarint, and the n values' encodings.
func appendGroupRecord(dst, key []byte, n int, vals []byte) []byte {
	dst = append(dst, key...)
	dst = binary.AppendUvarint(dst, uint64(n))
	return append(dst, vals...)
}

// open parses rec as a record of the current key, or of a new key when newKey (see
// appendGroupRecord). The values are decoded later, by nextValue.
func (s *diskGroupSource[K, V]) open(rec []byte, newKey bool) bool {
	k, n, err := s.g.keys.Decode(rec)
	if err != nil {
		s.e = fmt.Errorf("collection: decoding a key of spill file %s: %w", s.r.file.id, err)
		return false
	}
	if newKey {
		if s.g.keep != nil {
			k = s.g.keep(k, rec)
		}
		s.key, s.hash = k, s.g.hasher.Hash(k)
		s.enc = append(s.enc[:0], rec[:n]...)
	}
	cnt, m := binary.Uvarint(rec[n:])
	rest := rec[n+max(m, 0):]
	switch {
	case m <= 0 || m != uvarintLen(cnt):
		s.e = fmt.Errorf("collection: bad value count in a %d-byte record of spill file %s: %w", len(rec), s.r.file.id, storage.ErrCorrupt)
	case cnt > math.MaxInt32: // values may encode to no bytes, so the count is not bounded by the length
		s.e = fmt.Errorf("collection: a record of spill file %s counts %d values: %w", s.r.file.id, cnt, storage.ErrCorrupt)
	case cnt == 0 && len(rest) > 0:
		s.e = fmt.Errorf("collection: a record of spill file %s has %d bytes after its 0 values: %w", s.r.file.id, len(rest), storage.ErrCorrupt)
	}
	if s.e != nil {
		return false
	}
	s.rec, s.left = rest, int(cnt)
	return true
}

// uvarintLen is the length of x's canonical (shortest) uvarint encoding.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// sameKey reports whether rec belongs to the current key.
func (s *diskGroupSource[K, V]) sameKey(rec []byte) bool {
	return len(rec) >= len(s.enc) && bytes.Equal(rec[:len(s.enc)], s.enc) && s.enc != nil
}

func (s *diskGroupSource[K, V]) advance() bool {
	for s.pending == nil {
		// Skip the rest of the current key.
		rec := s.read()
		if rec == nil {
			s.enc, s.rec, s.left = nil, nil, 0
			return false
		}
		if !s.sameKey(rec) {
			s.pending = rec
		}
	}
	rec := s.pending
	s.pending = nil
	return s.open(rec, true)
}

func (s *diskGroupSource[K, V]) head() (uint64, []byte, K) { return s.hash, s.enc, s.key }

func (s *diskGroupSource[K, V]) nextValue() (V, bool) {
	var zero V
	for s.left == 0 {
		if s.pending != nil || s.e != nil {
			return zero, false
		}
		rec := s.read()
		if rec == nil {
			return zero, false
		}
		if !s.sameKey(rec) {
			s.pending = rec
			return zero, false
		}
		if !s.open(rec, false) {
			return zero, false
		}
	}
	v, n, err := s.g.vals.Decode(s.rec)
	if err != nil {
		s.e = fmt.Errorf("collection: decoding a value of spill file %s: %w", s.r.file.id, err)
		return zero, false
	}
	s.rec, s.left = s.rec[n:], s.left-1
	if s.left == 0 && len(s.rec) > 0 {
		s.e = fmt.Errorf("collection: a record of spill file %s has %d bytes after its values: %w", s.r.file.id, len(s.rec), storage.ErrCorrupt)
		return zero, false
	}
	return v, true
}

func (s *diskGroupSource[K, V]) err() error { return s.e }

// copyKey writes the current key's unread values and its further records to w as they are,
// stopping at the next key's first record; buf is scratch, returned for reuse.
func (s *diskGroupSource[K, V]) copyKey(w *spillWriter[[]byte], buf []byte) ([]byte, error) {
	buf = appendGroupRecord(buf[:0], s.enc, s.left, s.rec)
	s.rec, s.left = nil, 0
	if err := w.Write(buf); err != nil {
		return buf, err
	}
	for s.pending == nil {
		rec := s.read()
		if rec == nil {
			return buf, s.e
		}
		if !s.sameKey(rec) {
			s.pending = rec
			break
		}
		if err := w.Write(rec); err != nil {
			return buf, err
		}
	}
	return buf, nil
}

func (s *diskGroupSource[K, V]) close() error {
	s.rec, s.pending, s.enc = nil, nil, nil
	return s.r.close()
}

// groupIterator merges the grouper's sources by (hash, encoded key) in a loserTree, handing out
// each key once with a value iterator over the sources holding it.
//
// A source stays on its key while the key's values are read, so the sources of the current key
// are parked in the tree rather than advanced: a parked head sorts after every head of its key
// and before every greater key, so the parked sources are the tree's winners, one after the
// other, when the next Next advances them.
type groupIterator[K comparable, V any] struct {
	g       *ExternalGrouper[K, V]
	sources []groupSource[K, V] // nil once closed
	tree    loserTree[groupHead]
	group   []int // sources on the current key (parked in the tree)
	vals    *groupValues[K, V]
	cur     Group[K, V]
	err     error
	started bool
}

// groupHead is the key a source of a groupIterator is on, as the tree orders it.
type groupHead struct {
	hash   uint64
	enc    []byte // the source's encoded key; unchanged until the source advances
	parked bool
}

func compareGroupHeads(a, b groupHead) int {
	if c := cmp.Compare(a.hash, b.hash); c != 0 {
		return c
	}
	if c := bytes.Compare(a.enc, b.enc); c != 0 {
		return c
	}
	switch {
	case a.parked == b.parked:
		return 0
	case a.parked:
		return 1
	}
	return -1
}

// advance moves source i, the tree's winner, to its next key and queues it; false means an
// error stopped the merge.
func (it *groupIterator[K, V]) advance(i int) bool {
	s := it.sources[i]
	if s.advance() {
		h, enc, _ := s.head()
		it.tree.set(i, h, groupHead{hash: h, enc: enc})
		return true
	}
	it.tree.drop(i)
	if err := s.err(); err != nil {
		it.err = err
		return false
	}
	return true
}

func (it *groupIterator[K, V]) Next() bool {
	it.g.sp.Lock()
	defer it.g.sp.Unlock()
	it.cur = Group[K, V]{}
	if it.vals != nil {
		it.vals.stale = true
		it.vals = nil
	}
	if it.sources == nil || it.err != nil {
		return false
	}
	ok := true
	if !it.started {
		it.started = true
		it.tree = newLoserTree(len(it.sources), compareGroupHeads)
		for i := range it.sources {
			if ok = it.advance(i); !ok {
				break
			}
		}
	} else {
		for range it.group { // the parked sources are the winners
			if ok = it.advance(it.tree.winner()); !ok {
				break
			}
		}
	}
	it.group = it.group[:0]
	w := -1
	if ok {
		w = it.tree.winner()
	}
	if w < 0 {
		it.closeLocked()
		return false
	}
	first := it.tree.heads[w]
	shared := it.tree.winnerKeyShared() // else w is alone on its key, and still the winner when Next advances it
	for w >= 0 && !it.tree.heads[w].parked && compareGroupHeads(it.tree.heads[w], first) == 0 {
		it.group = append(it.group, w)
		if !shared {
			break
		}
		h := it.tree.heads[w]
		h.parked = true
		it.tree.set(w, h.hash, h)
		w = it.tree.winner()
	}
	_, _, key := it.sources[it.group[0]].head()
	it.vals = &groupValues[K, V]{it: it}
	it.cur = Group[K, V]{Key: key, Values: it.vals}
	return true
}

func (it *groupIterator[K, V]) Value() Group[K, V] { return it.cur }

func (it *groupIterator[K, V]) Err() error {
	it.g.sp.Lock()
	defer it.g.sp.Unlock()
	return it.err
}

func (it *groupIterator[K, V]) Close() error {
	it.g.sp.Lock()
	defer it.g.sp.Unlock()
	return it.closeLocked()
}

// abort ends the iteration with err unless it already ended (the grouper was closed under it),
// and closes its sources. Called with the lock held, possibly from another goroutine than the
// reader's: it leaves cur alone, which the reader's Value reads without the lock (the reader's
// next Next clears it).
func (it *groupIterator[K, V]) abort(err error) error {
	if it.sources != nil && it.err == nil {
		it.err = err
	}
	return it.closeSources()
}

// closeLocked drops the current group and closes the sources.
func (it *groupIterator[K, V]) closeLocked() error {
	it.cur = Group[K, V]{}
	return it.closeSources()
}

func (it *groupIterator[K, V]) closeSources() error {
	if it.vals != nil {
		it.vals.stale = true
		it.vals = nil
	}
	var errs []error
	for _, s := range it.sources {
		errs = append(errs, s.close())
	}
	it.sources, it.tree, it.group = nil, loserTree[groupHead]{}, nil
	return errors.Join(errs...)
}

// groupValues is the lazy value iterator of one Group: it reads the current key's values from
// each source of the group in turn.
type groupValues[K comparable, V any] struct {
	it    *groupIterator[K, V]
	i     int // source of the group being read
	cur   V
	stale bool // the outer iterator moved on
}

func (v *groupValues[K, V]) Next() bool {
	it := v.it
	it.g.sp.Lock()
	defer it.g.sp.Unlock()
	var zero V
	v.cur = zero
	if v.stale || it.err != nil {
		return false
	}
	for v.i < len(it.group) {
		s := it.sources[it.group[v.i]]
		if x, ok := s.nextValue(); ok {
			v.cur = x
			return true
		}
		if err := s.err(); err != nil {
			it.err = err
			return false
		}
		v.i++
	}
	return false
}

func (v *groupValues[K, V]) Value() V { return v.cur }

// Err returns the error of the grouper's iteration.
func (v *groupValues[K, V]) Err() error {
	v.it.g.sp.Lock()
	defer v.it.g.sp.Unlock()
	return v.it.err
}

// Close stops reading the values; the rest is skipped by the grouper's next Next.
func (v *groupValues[K, V]) Close() error {
	var zero V
	v.cur, v.stale = zero, true
	return nil
}

// rawCodec writes byte slices as they are (records built by the caller).
type rawCodec struct{}

func (rawCodec) Append(dst, v []byte) []byte { return append(dst, v...) }
func (rawCodec) Decode(src []byte) ([]byte, int, error) {
	return src, len(src), nil
}
