package collection

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

const (
	// groupChunkBytes ends a record of a grouping spill once its encoded values reach this many
	// bytes: one key's values are spread over as many records as needed.
	groupChunkBytes = 32 << 10
	// maxListChunk is the largest chunk (in values) of an in-memory value list.
	maxListChunk = 1024
)

// Group is one key of an ExternalGrouper's output with its values. Values is read lazily, from
// memory and from every spill file holding the key; it is valid until the grouper's iterator
// moves on (Next or Close), which skips whatever was not read.
// Spark has no counterpart: groupByKey's combiner is one in-memory buffer per key (SPARK-1823).
type Group[K, V any] struct {
	Key    K
	Values Iterator[V]
}

// valueList is the in-memory combiner of a grouper: a key's values in chunks of growing size,
// so appending never copies a large array (Spark's CompactBuffer copies when it grows).
type valueList[V any] struct {
	chunks [][]V
	n      int
}

func (l *valueList[V]) add(v V) {
	if len(l.chunks) == 0 || len(l.chunks[len(l.chunks)-1]) == cap(l.chunks[len(l.chunks)-1]) {
		size := min(maxListChunk, max(4, l.n))
		l.chunks = append(l.chunks, make([]V, 0, size))
	}
	last := &l.chunks[len(l.chunks)-1]
	*last = append(*last, v)
	l.n++
}

// ExternalGrouper is groupByKey over a spillable collection, where one key's values may exceed
// memory: the case Spark's ExternalAppendOnlyMap cannot handle (SPARK-1823, reference §12.7),
// since it spills whole combiners and merges each key into one in-memory object.
//
// Values are kept in memory per key in chunked lists; when memory runs short the whole table is
// spilled, each key's values in records of at most 32 KiB of encoded values, so a key's values
// end up spread over any number of spill files. Reading merges the spill files and the
// in-memory rest by (key hash, encoded key) and hands out each key once with a lazily read
// value iterator that streams the key's values from every file and from memory, one record at a
// time: no key's values are ever materialised together.
//
// Memory while reading: the in-memory table (accounted, and force-spillable like the map's)
// plus, per spill file merged, one reader holding one batch: at most SpillConfig.BatchBytes of
// records plus one record (≤ 32 KiB of values and the key) uncompressed, and about as much
// compressed. With memory.Strict (the default) those readers and the spill and merge writers
// are execution memory of the task, and a merge opens only as many files as the task can hold
// readers for (see the package doc's "Merge memory and bounded merges"); each value inserted is
// counted, the bytes it references and its slot in its key's value list, so one huge key's
// chunks are accounted as they grow, and a value that can never fit is memory.ErrOutOfMemory.
// With memory.SparkAllowances, as in Spark, none of the readers' and writers' buffers are
// accounted (about 2 × (BatchBytes + 32 KiB) per spill file read at once), nor is the free
// initial threshold (5 MiB by default).
//
// Keys are ordered by their encoding among keys of equal hash, so the key codec must be
// deterministic (equal keys encode to equal bytes), as every storage codec except GobCodec of
// maps is. Like ExternalAppendOnlyMap it is a memory.Consumer; use Insert, then Iterator once,
// then Close.
type ExternalGrouper[K comparable, V any] struct {
	combiningTable[K, V, *valueList[V]] // the Spillable and the in-memory table
	keys                                storage.Codec[K]
	vals                                storage.Codec[V]
	keep                                func(K, []byte) K
	hasher                              Hasher[K]

	// Guarded by sp's lock.
	spills  []spillFile
	reading *memGroupSource[K, V]
	out     *groupIterator[K, V]
}

// groupingAggregator collects a key's values in a valueList.
func groupingAggregator[K comparable, V any]() Aggregator[K, V, *valueList[V]] {
	return Aggregator[K, V, *valueList[V]]{
		CreateCombiner: func(v V) *valueList[V] {
			l := &valueList[V]{}
			l.add(v)
			return l
		},
		MergeValue: func(l *valueList[V], v V) *valueList[V] {
			l.add(v)
			return l
		},
		MergeCombiners: func(a, b *valueList[V]) *valueList[V] { // unused: spills are merged lazily
			a.chunks, a.n = append(a.chunks, b.chunks...), a.n+b.n
			return a
		},
	}
}

// NewExternalGrouper returns an empty grouper of task tm spilling into scope, encoding keys and
// values with the codecs (decoded values must not alias their source; keys must encode
// deterministically).
func NewExternalGrouper[K comparable, V any](tm *memory.TaskManager, scope *storage.Scope, keys storage.Codec[K],
	values storage.Codec[V], cfg ExternalMapConfig[K]) (*ExternalGrouper[K, V], error) {
	if err := checkExternalArgs(tm, scope, keys, values, cfg.SpillConfig); err != nil {
		return nil, err
	}
	if cfg.Hasher.IsZero() {
		cfg.Hasher = NewHasher[K]()
	}
	if cfg.Name == "" {
		cfg.Name = "ExternalGrouper"
	}
	g := &ExternalGrouper[K, V]{keys: keys, vals: values, keep: keeper[K](), hasher: cfg.Hasher}
	g.agg, g.spill, g.scope = groupingAggregator[K, V](), g.spillCurrent, scope
	g.sp.Init(tm, g, cfg.Name, cfg.SpillConfig, g.forceSpill)
	g.io.init(tm, cfg.Name)
	g.sp.reserveWriterOn(&g.io)
	g.sizes, g.keeps = newRecordSizes[K, V](g.sp.Strict()), true
	g.current = g.newMap()
	return g, nil
}

func (g *ExternalGrouper[K, V]) newMap() *SizeTrackingMap[K, *valueList[V]] {
	return g.newTable(g.hasher)
}

// Insert adds v to the values of k, after spilling if memory is short (see
// ExternalAppendOnlyMap.Insert).
func (g *ExternalGrouper[K, V]) Insert(ctx context.Context, k K, v V) error {
	g.sp.Lock()
	defer g.sp.Unlock()
	return g.insertLocked(ctx, k, v)
}

// InsertAll inserts every pair of it and closes it, a batch of pairs per acquisition of the
// lock (see ExternalAppendOnlyMap.InsertAll).
func (g *ExternalGrouper[K, V]) InsertAll(ctx context.Context, it Iterator[Pair[K, V]]) error {
	return g.insertAll(ctx, it)
}

// sortedEntries takes the table over and returns its entries sorted by (hash, encoded key).
func (g *ExternalGrouper[K, V]) sortedEntries(m *SizeTrackingMap[K, *valueList[V]]) []groupEntry[K, V] {
	it := m.DestructiveSortedByHash()
	defer it.Close()
	entries := make([]groupEntry[K, V], 0, m.Len())
	for it.Next() {
		p := it.Value()
		entries = append(entries, groupEntry[K, V]{hash: g.hasher.Hash(p.Key), key: p.Key, list: p.Value})
	}
	// Runs of equal hashes (collisions) are ordered by encoded key.
	for i := 0; i < len(entries); {
		j := i + 1
		for j < len(entries) && entries[j].hash == entries[i].hash {
			j++
		}
		if j-i > 1 {
			run := entries[i:j]
			for r := range run {
				run[r].enc = g.keys.Append(nil, run[r].key)
			}
			slices.SortFunc(run, func(a, b groupEntry[K, V]) int { return bytes.Compare(a.enc, b.enc) })
		}
		i = j
	}
	return entries
}

// groupEntry is one key of a sorted in-memory table.
type groupEntry[K comparable, V any] struct {
	hash uint64
	key  K
	enc  []byte // encoded key, set for colliding hashes only
	list *valueList[V]
}

// spillCurrent writes the in-memory table to a spill file and starts a new one.
func (g *ExternalGrouper[K, V]) spillCurrent() (int64, error) {
	cur := g.current
	g.current = nil
	entries := g.sortedEntries(cur)
	src := &memGroupSource[K, V]{g: g, entries: entries, pos: -1}
	f, err := g.writeSource(src, false)
	if err != nil {
		return 0, err
	}
	g.spills = append(g.spills, f)
	g.current = g.newMap()
	return f.size, nil
}

// writeSource writes the keys and values of src, from its current key on when fromCurrent (the
// unread rest of a key being read included, even with no value left), to a new spill file.
// Each record is: encoded key, uvarint count, count encoded values.
func (g *ExternalGrouper[K, V]) writeSource(src *memGroupSource[K, V], fromCurrent bool) (spillFile, error) {
	w, err := newSpillWriter(g.scope, g.scope.CreateTempLocal, g.sp.cfg, rawCodec{})
	if err != nil {
		return spillFile{}, err
	}
	var key, rec, vals []byte
	writeKey := func() error {
		key = g.keys.Append(key[:0], src.key)
		n := 0
		vals = vals[:0]
		flush := func(force bool) error {
			if n == 0 && !force {
				return nil
			}
			rec = appendGroupRecord(rec[:0], key, n, vals)
			n, vals = 0, vals[:0]
			return w.Write(rec)
		}
		wrote := false
		for {
			v, ok := src.nextValue()
			if !ok {
				break
			}
			vals = g.vals.Append(vals, v)
			n++
			if len(vals) >= groupChunkBytes {
				if err := flush(false); err != nil {
					return err
				}
				wrote = true
			}
		}
		return flush(!wrote)
	}
	if fromCurrent && src.pos >= 0 && src.pos < len(src.entries) {
		if err := writeKey(); err != nil {
			return spillFile{}, errors.Join(err, w.Abort())
		}
	}
	for src.advance() {
		if err := writeKey(); err != nil {
			return spillFile{}, errors.Join(err, w.Abort())
		}
	}
	f, err := w.Commit()
	if err != nil {
		return spillFile{}, err
	}
	g.addSpillFile(f.id)
	return f, nil
}

// forceSpill spills the in-memory source being read, or the in-memory table.
func (g *ExternalGrouper[K, V]) forceSpill() (bool, int64, error) {
	switch {
	case g.err != nil: // Spill does not call it once the grouper is closed
		return false, 0, nil
	case g.reading != nil:
		disk, spilled, err := g.reading.spill()
		if err != nil {
			if g.out != nil && g.out.err == nil {
				g.out.err = err
			}
			return false, 0, g.fail(err)
		}
		return spilled, disk, nil
	case g.iterated || g.current.Len() == 0:
		return false, 0, nil
	}
	disk, err := g.spillCurrent()
	if err != nil {
		return false, 0, g.fail(err)
	}
	return true, disk, nil
}

// Iterator is IteratorContext with context.Background().
func (g *ExternalGrouper[K, V]) Iterator() (Iterator[Group[K, V]], error) {
	return g.IteratorContext(context.Background())
}

// IteratorContext returns every key once with its values (see Group), merging the spill files
// and the in-memory table; it takes the grouper over and may be called once. Close it (or the
// grouper) when done. Like ExternalAppendOnlyMap.IteratorContext, in Strict accounting it first
// merges groups of spill files into larger ones when the task cannot hold a reader of each.
func (g *ExternalGrouper[K, V]) IteratorContext(ctx context.Context) (Iterator[Group[K, V]], error) {
	g.sp.Lock()
	defer g.sp.Unlock()
	if err := g.checkUsable(); err != nil {
		if errors.Is(err, ErrIterated) {
			return nil, fmt.Errorf("%w: %s.Iterator is destructive and should only be called once", err, g.sp.name)
		}
		return nil, err
	}
	g.iterated = true
	cur := g.current
	g.current = nil
	mem := &memGroupSource[K, V]{g: g, entries: g.sortedEntries(cur), pos: -1}
	g.reading = mem
	out := &groupIterator[K, V]{g: g, sources: []groupSource[K, V]{mem}}
	g.out = out
	spills := g.spills
	g.spills = nil
	err := g.mergeSpills(ctx, spills, g.mergeGroup, func(f spillFile, release func()) error {
		raw, err := openRawSpill(g.scope, f, release)
		if err == nil {
			out.sources = append(out.sources, &diskGroupSource[K, V]{g: g, r: raw})
		}
		return err
	})
	if err != nil {
		_ = out.closeSources()
		if g.out == out {
			g.out = nil
		}
		return nil, g.fail(err)
	}
	return out, nil
}

// mergeGroup merges a group of the grouper's spill files into one (a pass of a multi-pass
// merge), with the lock not held: the readers and the writer take their memory from res. Each
// key's records are copied as they are, the files' in turn.
func (g *ExternalGrouper[K, V]) mergeGroup(ctx context.Context, group []spillFile, res *reservation) (f spillFile, err error) {
	it := &groupIterator[K, V]{g: g}
	defer func() { err = errors.Join(err, it.Close()) }()
	for _, f := range group {
		raw, err := openRawSpill(g.scope, f, res.take(f.readCost))
		if err != nil {
			return spillFile{}, err
		}
		it.sources = append(it.sources, &diskGroupSource[K, V]{g: g, r: raw})
	}
	defer res.take(res.left)() // the writer's
	w, err := newSpillWriter(g.scope, g.scope.CreateTempLocal, g.sp.cfg, rawCodec{})
	if err != nil {
		return spillFile{}, err
	}
	var buf []byte
	for keys := 1; it.Next(); keys++ {
		if keys%64 == 0 {
			err = ctx.Err()
		}
		for _, i := range it.group {
			if err == nil {
				buf, err = it.sources[i].(*diskGroupSource[K, V]).copyKey(w, buf)
			}
		}
		if err != nil {
			return spillFile{}, errors.Join(err, w.Abort())
		}
	}
	if err := it.Err(); err != nil {
		return spillFile{}, errors.Join(err, w.Abort())
	}
	if f, err = w.Commit(); err != nil {
		return spillFile{}, err
	}
	return f, g.registerMerged(f.id)
}

// Close releases the memory, closes the iterator and deletes every spill file, like
// ExternalAppendOnlyMap.Close: an Insert waiting for memory returns ErrClosed, and an iterator
// (and the values of its current group) not read to the end stops with an error wrapping
// ErrClosed.
func (g *ExternalGrouper[K, V]) Close() error {
	return g.close(func() []error {
		var errs []error
		if g.out != nil {
			errs = append(errs, g.out.abort(g.sp.closedError("while its iterator was read")))
			g.out = nil
		}
		if g.reading != nil {
			errs = append(errs, g.reading.close())
		}
		g.spills = nil
		return errs
	})
}

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
		it.tree.set(i, groupHead{hash: h, enc: enc})
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
	for w >= 0 && !it.tree.heads[w].parked && compareGroupHeads(it.tree.heads[w], first) == 0 {
		it.group = append(it.group, w)
		h := it.tree.heads[w]
		h.parked = true
		it.tree.set(w, h)
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
