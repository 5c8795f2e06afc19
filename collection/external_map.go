package collection

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// Errors of the spillable maps, matched with errors.Is.
var (
	// ErrIterated is returned by inserts after Iterator and by a second Iterator call (Spark:
	// "Cannot insert new elements into a map after calling iterator" and "iterator is
	// destructive and should only be called once").
	ErrIterated = errors.New("collection: map was already iterated")
	// ErrClosed is returned by a spillable collection used after Close.
	ErrClosed = errors.New("collection: collection is closed")
)

// ExternalMapConfig configures an ExternalAppendOnlyMap or an ExternalGrouper. Its zero value
// means Spark's defaults.
type ExternalMapConfig[K comparable] struct {
	// SpillConfig is the spill policy and spill-file format.
	SpillConfig
	// Hasher hashes keys in memory and orders spills. The zero Hasher means NewHasher (a random
	// seed). Tests set HasherFunc to force collisions.
	Hasher Hasher[K]
	// Name names the collection in logs and memory usage reports. "" means
	// "ExternalAppendOnlyMap" or "ExternalGrouper".
	Name string
}

// ExternalAppendOnlyMap mirrors Spark's ExternalAppendOnlyMap (core/src/main/scala/org/apache/
// spark/util/collection/ExternalAppendOnlyMap.scala): it combines values by key with an
// Aggregator in a SizeTrackingMap and, when the task's memory runs short, spills the map to disk
// sorted by key hash, then merges the spills and the in-memory rest by hash when read (reference
// §12).
//
// It is a memory.Consumer of its task (on-heap) with the Spillable policy. The TaskManager may
// force it to spill at any time, also while it is being read: the unread part of the in-memory
// data goes to disk and the map and its iterator drop every reference to the in-memory table,
// so the Go heap really shrinks (SPARK-22713).
//
// Use: Insert or InsertAll, then Iterator once, then Close (always, also after errors and early
// stops: it releases the memory and deletes the spill files). Methods are safe to call from the
// task's goroutines, but the map is meant to be filled and read by one. InsertAll takes the lock
// once per batch of 64 records, so it is much cheaper per record than Insert; a forced spill
// from another goroutine runs between two batches.
//
// Not accounted to the task, as in Spark: the free initial threshold (SpillConfig's
// InitialThreshold, Spark's 5 MiB), which the map holds without acquiring it; while the spills
// are merged, each spill file's reader's batch buffer (up to SpillConfig.BatchBytes, about
// 2 × BatchBytes when compressed) and the merge's buffer of the pairs sharing the current hash
// in each file; while a spill is written, the record writer's buffers (a batch of up to
// BatchBytes, its compressed copy, the file buffer; about 2 MiB more for zstd).
//
// Differences from Spark, all deliberate:
//   - Before the in-memory table doubles, the map asks for the memory the doubled table will
//     take, even between the checks every 32 elements, so the table never grows past what was
//     granted (Spark only checks every 32 elements, and a doubling in between can overshoot its
//     grant by the table's size).
//   - Errors are values: a failed spill makes every later call return the error; Close still
//     releases everything.
//   - Keys have no null: a nullable key type (pointer, option struct) works like any other key,
//     with its own hash (Spark hashes null to 0).
//   - Spill files are written in storage's record format with a byte limit per batch as well as
//     Spark's record count (SpillConfig.BatchBytes), which bounds each reader's buffer.
type ExternalAppendOnlyMap[K comparable, V, C any] struct {
	combiningTable[K, V, C] // the Spillable, the aggregator and the in-memory table
	codec                   slotCodec[K, C]
	keep                    func(slot[K, C], []byte) slot[K, C]
	hasher                  Hasher[K]

	// The fields below are guarded by sp's lock.
	spills  []spillFile // spills not yet handed to a reader (Spark's spilledMaps)
	reading *spillableIterator[K, C]
	out     *mapIterator[K, V, C] // the iterator handed out
}

// NewExternalAppendOnlyMap returns an empty map of task tm that spills into scope (normally the
// task's disk scope), combining with agg and encoding spilled keys and combiners with keys and
// combiners. The codecs' decoded values must not alias their source bytes (string keys decoded
// by an aliasing codec are cloned). It returns an error naming a missing function or an invalid
// setting.
func NewExternalAppendOnlyMap[K comparable, V, C any](tm *memory.TaskManager, scope *storage.Scope, agg Aggregator[K, V, C],
	keys storage.Codec[K], combiners storage.Codec[C], cfg ExternalMapConfig[K]) (*ExternalAppendOnlyMap[K, V, C], error) {
	if err := checkExternalArgs(tm, scope, keys, combiners, cfg.SpillConfig); err != nil {
		return nil, err
	}
	if err := agg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Hasher.IsZero() {
		cfg.Hasher = NewHasher[K]()
	}
	if cfg.Name == "" {
		cfg.Name = "ExternalAppendOnlyMap"
	}
	m := &ExternalAppendOnlyMap[K, V, C]{codec: slotCodec[K, C]{keys, combiners}, hasher: cfg.Hasher}
	m.agg, m.spill, m.scope = agg, m.spillCurrent, scope
	if keepKey := keeper[K](); keepKey != nil {
		m.keep = func(s slot[K, C], buf []byte) slot[K, C] { s.key = keepKey(s.key, buf); return s }
	}
	m.sp.Init(tm, m, cfg.Name, cfg.SpillConfig, m.forceSpill)
	m.current = m.newMap()
	return m, nil
}

func checkExternalArgs[K, C any](tm *memory.TaskManager, scope *storage.Scope, keys storage.Codec[K], vals storage.Codec[C], cfg SpillConfig) error {
	var errs []error
	if tm == nil {
		errs = append(errs, errors.New("collection: no TaskManager (spillable collections belong to a task)"))
	}
	if scope == nil {
		errs = append(errs, errors.New("collection: no disk scope for spill files"))
	}
	if keys == nil || vals == nil {
		errs = append(errs, errors.New("collection: a codec is nil"))
	}
	return errors.Join(append(errs, cfg.Validate())...)
}

func (m *ExternalAppendOnlyMap[K, V, C]) newMap() *SizeTrackingMap[K, C] {
	return m.newTable(m.hasher)
}

// Insert combines v into the combiner of k (Spark's insert), after spilling the map if memory
// is short. Acquiring memory may block (ctx cancels) and may spill other consumers of the task.
// It returns ErrIterated after Iterator, ErrClosed after Close, and the error of a failed spill
// (which breaks the map).
func (m *ExternalAppendOnlyMap[K, V, C]) Insert(ctx context.Context, k K, v V) error {
	m.sp.Lock()
	defer m.sp.Unlock()
	return m.insertLocked(ctx, k, v)
}

// InsertAll inserts every pair of it (Spark's insertAll) and closes it. It reads the pairs
// insertBatch (64) at a time and inserts each batch under one acquisition of the lock, so a
// forced spill from another goroutine waits for at most one batch. It stops at the first error:
// its own, it's (reading or closing), or ctx's (checked between batches).
func (m *ExternalAppendOnlyMap[K, V, C]) InsertAll(ctx context.Context, it Iterator[Pair[K, V]]) error {
	return m.insertAll(ctx, it)
}

// spillCurrent writes the in-memory map sorted by key hash to a new spill file and starts a new
// map (Spark's spill(collection)). Called with the lock held.
func (m *ExternalAppendOnlyMap[K, V, C]) spillCurrent() (int64, error) {
	it := m.current.destructiveSortedSlots()
	m.current = nil // the table now belongs to it alone
	f, err := m.writeSpill(it)
	if err != nil {
		return 0, err
	}
	m.spills = append(m.spills, f)
	m.current = m.newMap()
	return f.size, nil
}

// writeSpill drains it into a new spill file of the map, tracked for Close.
func (m *ExternalAppendOnlyMap[K, V, C]) writeSpill(it Iterator[slot[K, C]]) (spillFile, error) {
	f, err := writeSpill(m.scope, m.sp.cfg, m.codec, it)
	if err != nil {
		return spillFile{}, err
	}
	m.addSpillFile(f.id)
	return f, nil
}

// openSpill returns a reader of a spill file of the map.
func (m *ExternalAppendOnlyMap[K, V, C]) openSpill(f spillFile) (Iterator[slot[K, C]], error) {
	r, err := openSpill(m.scope, f, m.codec, m.keep)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// forceSpill is Spark's forceSpill, called by Spillable.Spill with the lock held: spill the
// iterator's in-memory rest if the map is being read, else the in-memory map if it holds
// anything.
func (m *ExternalAppendOnlyMap[K, V, C]) forceSpill() (bool, int64, error) {
	switch {
	case m.closed || m.err != nil:
		return false, 0, nil
	case m.reading != nil:
		disk, spilled, err := m.reading.spill()
		if err != nil {
			if m.out != nil {
				m.out.fail(err)
			}
			return false, 0, m.fail(err)
		}
		return spilled, disk, nil
	case m.iterated || m.current.Len() == 0:
		return false, 0, nil
	}
	disk, err := m.spillCurrent()
	if err != nil {
		return false, 0, m.fail(err)
	}
	return true, disk, nil
}

// Iterator returns the map's pairs, each key once with its combiner, and takes the map over
// (Spark's iterator, which may be called once). Without spills it reads the in-memory table;
// otherwise it merges the spill files and the in-memory table, sorted by key hash, by hash
// (Spark's ExternalIterator, reference §12.5). The TaskManager may force-spill the iterator
// while it is read; then it continues from disk and the table becomes garbage. The map's memory
// is released when the in-memory part is exhausted or spilled. Close the iterator (or the map)
// when done.
//
// It returns ErrIterated when called twice, ErrClosed after Close, or the map's error.
func (m *ExternalAppendOnlyMap[K, V, C]) Iterator() (Iterator[Pair[K, C]], error) {
	m.sp.Lock()
	defer m.sp.Unlock()
	if err := m.checkUsable(); err != nil {
		if errors.Is(err, ErrIterated) {
			return nil, fmt.Errorf("%w: %s.Iterator is destructive and should only be called once", err, m.sp.name)
		}
		return nil, err
	}
	m.iterated = true
	cur := m.current
	m.current = nil
	m.out = &mapIterator[K, V, C]{m: m}
	if len(m.spills) == 0 {
		m.reading = m.newSpillableIterator(cur.destructiveSlots())
		m.out.src = m.reading
		return m.out, nil
	}
	m.reading = m.newSpillableIterator(cur.destructiveSortedSlots())
	streams := []Iterator[slot[K, C]]{m.reading}
	spills := m.spills
	m.spills = nil
	for _, f := range spills {
		r, err := m.openSpill(f)
		if err != nil {
			for _, s := range streams {
				_ = s.Close()
			}
			m.out = nil
			return nil, m.fail(err)
		}
		streams = append(streams, r)
	}
	m.out.src = newHashMerge(m.agg.MergeCombiners, streams)
	return m.out, nil
}

// newSpillableIterator wraps the in-memory stream so a forced spill can move its rest to disk;
// when it ends the map's memory is released (Spark's destructiveIterator + CompletionIterator).
func (m *ExternalAppendOnlyMap[K, V, C]) newSpillableIterator(upstream Iterator[slot[K, C]]) *spillableIterator[K, C] {
	it := &spillableIterator[K, C]{upstream: upstream, write: m.writeSpill, open: m.openSpill}
	it.done = func() {
		if m.reading == it {
			m.reading = nil
			m.sp.ReleaseMemory()
		}
	}
	return it
}

// Close releases the map's memory, closes its iterator and deletes every spill file it wrote,
// whatever state the map is in. Later calls return nil.
func (m *ExternalAppendOnlyMap[K, V, C]) Close() error {
	return m.close(func() []error {
		var errs []error
		if m.out != nil {
			errs = append(errs, m.out.closeLocked())
			m.out = nil
		}
		if m.reading != nil {
			errs = append(errs, m.reading.Close())
			m.reading = nil
		}
		m.spills = nil
		return errs
	})
}

// mapIterator is the Iterator handed out by ExternalAppendOnlyMap.Iterator: every call takes the
// map's lock, so a forced spill from another goroutine never runs in the middle of a read.
type mapIterator[K comparable, V, C any] struct {
	m   *ExternalAppendOnlyMap[K, V, C]
	src Iterator[slot[K, C]] // nil once finished
	cur Pair[K, C]
	err error
}

func (it *mapIterator[K, V, C]) Next() bool {
	it.m.sp.Lock()
	defer it.m.sp.Unlock()
	it.cur = Pair[K, C]{}
	if it.src == nil {
		return false
	}
	if it.src.Next() {
		s := it.src.Value()
		it.cur = Pair[K, C]{Key: s.key, Value: s.val}
		return true
	}
	it.fail(it.src.Err())
	it.fail(it.closeLocked())
	return false
}

// fail records the iteration's first error.
func (it *mapIterator[K, V, C]) fail(err error) {
	if it.err == nil && err != nil {
		it.err = err
	}
}

func (it *mapIterator[K, V, C]) Value() Pair[K, C] { return it.cur }

func (it *mapIterator[K, V, C]) Err() error {
	it.m.sp.Lock()
	defer it.m.sp.Unlock()
	return it.err
}

func (it *mapIterator[K, V, C]) Close() error {
	it.m.sp.Lock()
	defer it.m.sp.Unlock()
	return it.closeLocked()
}

// closeLocked closes the source (its readers delete their files) and releases the memory of the
// in-memory stream.
func (it *mapIterator[K, V, C]) closeLocked() error {
	it.cur = Pair[K, C]{}
	if it.src == nil {
		return nil
	}
	err := it.src.Close()
	it.src = nil
	return err
}

// spillableIterator is Spark's SpillableIterator: the in-memory stream of a map being read,
// whose unread rest a forced spill writes to disk, after which it reads from that file and
// holds no reference to the table. done runs once when it ends or is closed.
type spillableIterator[K comparable, C any] struct {
	upstream Iterator[slot[K, C]] // nil once closed
	cur      slot[K, C]
	spilled  bool
	err      error
	write    func(Iterator[slot[K, C]]) (spillFile, error)
	open     func(spillFile) (Iterator[slot[K, C]], error)
	done     func()
}

// spill moves the unread rest of the stream to a spill file and reads on from it. It reports
// the bytes written and whether it spilled (false if already spilled or ended).
func (s *spillableIterator[K, C]) spill() (int64, bool, error) {
	if s.spilled || s.upstream == nil {
		return 0, false, nil
	}
	s.spilled = true
	up := s.upstream
	s.upstream = emptyIterator[slot[K, C]]{}
	f, err := s.write(up) // closes up: the table is unreachable from here on
	if err != nil {
		s.err = err
		return 0, false, err
	}
	r, err := s.open(f)
	if err != nil {
		s.err = err
		return f.size, false, err
	}
	s.upstream = r
	return f.size, true, nil
}

func (s *spillableIterator[K, C]) Next() bool {
	s.cur = slot[K, C]{}
	if s.upstream == nil || s.err != nil {
		return false
	}
	if s.upstream.Next() {
		s.cur = s.upstream.Value()
		return true
	}
	s.err = s.upstream.Err()
	s.finish()
	return false
}

func (s *spillableIterator[K, C]) Value() slot[K, C] { return s.cur }
func (s *spillableIterator[K, C]) Err() error        { return s.err }

func (s *spillableIterator[K, C]) Close() error {
	s.cur = slot[K, C]{}
	return s.finish()
}

// finish closes the upstream and runs done, once.
func (s *spillableIterator[K, C]) finish() error {
	if s.upstream == nil {
		return nil
	}
	err := s.upstream.Close()
	s.upstream = nil
	s.done()
	return err
}

// emptyIterator is an Iterator with no elements.
type emptyIterator[T any] struct{}

func (emptyIterator[T]) Next() bool   { return false }
func (emptyIterator[T]) Value() T     { var zero T; return zero }
func (emptyIterator[T]) Err() error   { return nil }
func (emptyIterator[T]) Close() error { return nil }

// pairCodec encodes a Pair as its key's encoding followed by its value's (the records of map
// spill files).
type pairCodec[K, C any] struct {
	keys storage.Codec[K]
	vals storage.Codec[C]
}

func (c pairCodec[K, C]) Append(dst []byte, p Pair[K, C]) []byte {
	return c.vals.Append(c.keys.Append(dst, p.Key), p.Value)
}

func (c pairCodec[K, C]) Decode(src []byte) (Pair[K, C], int, error) {
	k, n, err := c.keys.Decode(src)
	if err != nil {
		return Pair[K, C]{}, 0, fmt.Errorf("key: %w", err)
	}
	v, m, err := c.vals.Decode(src[n:])
	if err != nil {
		return Pair[K, C]{}, 0, fmt.Errorf("value: %w", err)
	}
	return Pair[K, C]{Key: k, Value: v}, n + m, nil
}

// slotCodec encodes a slot as a record of a map spill file: the key's hash (8 bytes,
// little-endian), then the key's encoding, then the combiner's. With the hash stored, the merge
// of the spills never rehashes a key it reads.
type slotCodec[K comparable, C any] struct {
	keys storage.Codec[K]
	vals storage.Codec[C]
}

func (c slotCodec[K, C]) Append(dst []byte, s slot[K, C]) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, s.hash)
	return c.vals.Append(c.keys.Append(dst, s.key), s.val)
}

func (c slotCodec[K, C]) Decode(src []byte) (slot[K, C], int, error) {
	if len(src) < 8 {
		return slot[K, C]{}, 0, fmt.Errorf("hash of %d bytes, expected 8: %w", len(src), storage.ErrCorrupt)
	}
	h := binary.LittleEndian.Uint64(src)
	if h == 0 {
		return slot[K, C]{}, 0, fmt.Errorf("hash 0 (a Hasher never returns 0): %w", storage.ErrCorrupt)
	}
	k, n, err := c.keys.Decode(src[8:])
	if err != nil {
		return slot[K, C]{}, 0, fmt.Errorf("key: %w", err)
	}
	n += 8
	v, m, err := c.vals.Decode(src[n:])
	if err != nil {
		return slot[K, C]{}, 0, fmt.Errorf("value: %w", err)
	}
	return slot[K, C]{hash: h, key: k, val: v}, n + m, nil
}

// hashMerge is Spark's ExternalIterator (reference §12.5): a k-way merge of streams of slots
// sorted by hash into one stream with every key once, combining the combiners of equal keys. The
// hashes come with the slots (stored in the table and in the spill records), so nothing is
// rehashed. Each stream is read one hash at a time into a buffer holding all its slots of that
// hash (distinct keys may share a hash); buffers wait in a heap ordered by hash. Next takes a
// slot from the buffer with the smallest hash and merges into it the slot with the same key, if
// any, of every other buffer with that hash.
type hashMerge[K comparable, C any] struct {
	merge  func(a, b C) C
	heap   []*hashBuffer[K, C] // min-heap by hash
	all    []*hashBuffer[K, C] // every stream, for Close
	popped []*hashBuffer[K, C] // scratch
	cur    slot[K, C]
	err    error
	inited bool
}

// hashBuffer holds the slots of one stream sharing its smallest unread hash, and the stream's
// next slot (of a larger hash) read ahead.
type hashBuffer[K comparable, C any] struct {
	it       Iterator[slot[K, C]] // nil once exhausted and closed
	hash     uint64
	slots    []slot[K, C]
	ahead    slot[K, C]
	hasAhead bool
}

func newHashMerge[K comparable, C any](merge func(a, b C) C, streams []Iterator[slot[K, C]]) *hashMerge[K, C] {
	m := &hashMerge[K, C]{merge: merge}
	for _, s := range streams {
		m.all = append(m.all, &hashBuffer[K, C]{it: s})
	}
	return m
}

// fill reads the stream's next run of slots sharing one hash into b.slots (Spark's
// readNextHashCode). It reports an error of the stream, or a stream out of hash order; b.slots
// is empty at the end.
func (m *hashMerge[K, C]) fill(b *hashBuffer[K, C]) error {
	if !b.hasAhead && !b.advance() {
		return b.end()
	}
	b.hash = b.ahead.hash
	b.slots = append(b.slots, b.ahead)
	b.hasAhead = false
	for b.advance() {
		if h := b.ahead.hash; h != b.hash {
			if h < b.hash {
				return fmt.Errorf("collection: merge input not sorted by hash: %#x after %#x: %w", h, b.hash, storage.ErrCorrupt)
			}
			return nil
		}
		b.slots = append(b.slots, b.ahead)
		b.hasAhead = false
	}
	return b.end()
}

// advance reads the stream's next slot into b.ahead.
func (b *hashBuffer[K, C]) advance() bool {
	if b.it == nil || !b.it.Next() {
		b.ahead, b.hasAhead = slot[K, C]{}, false
		return false
	}
	b.ahead, b.hasAhead = b.it.Value(), true
	return true
}

// end closes an exhausted stream and returns its error.
func (b *hashBuffer[K, C]) end() error {
	if b.it == nil {
		return nil
	}
	err := b.it.Err()
	if cerr := b.it.Close(); err == nil {
		err = cerr
	}
	b.it = nil
	return err
}

func (m *hashMerge[K, C]) Next() bool {
	m.cur = slot[K, C]{}
	if m.err != nil {
		return false
	}
	if !m.inited {
		m.inited = true
		for _, b := range m.all {
			if !m.refill(b) {
				return false
			}
		}
	}
	if len(m.heap) == 0 {
		return false
	}
	first := m.heap[0]
	p := takeSlot(&first.slots, 0)
	if h := m.heap; !(len(h) > 1 && h[1].hash == first.hash || len(h) > 2 && h[2].hash == first.hash) {
		// The common case: no other stream holds this hash (the children of the heap's root
		// are larger, so every other buffer is). Refill the root in place.
		if len(first.slots) == 0 {
			if err := m.fill(first); err != nil {
				return m.fail(err)
			}
			if len(first.slots) == 0 {
				m.pop()
			} else {
				m.down(0)
			}
		}
		m.cur = p
		return true
	}
	m.pop()
	m.popped = append(m.popped[:0], first)
	for len(m.heap) > 0 && m.heap[0].hash == first.hash {
		b := m.pop()
		m.popped = append(m.popped, b)
		for i := range b.slots {
			if b.slots[i].key == p.key { // at most one per stream: each was combined before
				p.val = m.merge(p.val, takeSlot(&b.slots, i).val)
				break
			}
		}
	}
	for i, b := range m.popped {
		m.popped[i] = nil
		if len(b.slots) > 0 {
			m.push(b)
		} else if !m.refill(b) {
			return false
		}
	}
	m.cur = p
	return true
}

// refill reads b's next hash and queues it if it has one; false means an error stopped the
// merge.
func (m *hashMerge[K, C]) refill(b *hashBuffer[K, C]) bool {
	if err := m.fill(b); err != nil {
		return m.fail(err)
	}
	if len(b.slots) > 0 {
		m.push(b)
	}
	return true
}

// fail stops the merge with err, closing every stream; it returns false.
func (m *hashMerge[K, C]) fail(err error) bool {
	m.err = err
	_ = m.closeAll() // err is the merge's error; the streams' close errors add nothing
	return false
}

// takeSlot removes element i of *ss by moving the last one into its place.
func takeSlot[K comparable, C any](ss *[]slot[K, C], i int) slot[K, C] {
	s := *ss
	p := s[i]
	last := len(s) - 1
	s[i] = s[last]
	s[last] = slot[K, C]{}
	*ss = s[:last]
	return p
}

func (m *hashMerge[K, C]) push(b *hashBuffer[K, C]) {
	m.heap = append(m.heap, b)
	h := m.heap
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p].hash <= h[i].hash {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (m *hashMerge[K, C]) pop() *hashBuffer[K, C] {
	h := m.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = nil
	m.heap = h[:n]
	m.down(0)
	return top
}

// down moves the buffer at i down the heap to its place.
func (m *hashMerge[K, C]) down(i int) {
	h := m.heap
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && h[r].hash < h[l].hash {
			c = r
		}
		if h[i].hash <= h[c].hash {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

func (m *hashMerge[K, C]) Value() slot[K, C] { return m.cur }
func (m *hashMerge[K, C]) Err() error        { return m.err }

func (m *hashMerge[K, C]) Close() error {
	m.cur = slot[K, C]{}
	return m.closeAll()
}

// closeAll closes every stream and drops every buffered slot.
func (m *hashMerge[K, C]) closeAll() error {
	var errs []error
	for _, b := range m.all {
		if b.it != nil {
			errs = append(errs, b.it.Close())
			b.it = nil
		}
		b.slots, b.ahead = nil, slot[K, C]{}
	}
	m.all, m.heap, m.popped = nil, nil, nil
	return errors.Join(errs...)
}
