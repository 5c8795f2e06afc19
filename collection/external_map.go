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
// sorted by key hash, then merges the spills and the in-memory rest by hash when read.
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
// Not accounted to the task, as in Spark: with memory.SparkAllowances, the free initial
// threshold (SpillConfig's InitialThreshold, Spark's 5 MiB), which the map holds without
// acquiring it (memory.Strict acquires it; see Spillable); while the spills
// are merged, each spill file's reader's batch buffer (up to SpillConfig.BatchBytes, about
// 2 × BatchBytes when compressed), each file's current pair and the merge's buffer of the pairs
// sharing the current hash; while a spill is written, the record writer's buffers (a batch of up to
// BatchBytes, its compressed copy, the file buffer; about 2 MiB more for zstd). memory.Strict
// accounts the readers and the writers (see Spillable and the package doc).
//
// Differences from Spark, all deliberate:
//   - Before the in-memory table doubles, the map asks for the memory the doubled table will
//     take, even between the checks every 32 elements, so the table never grows past what was
//     granted (Spark only checks every 32 elements, and a doubling in between can overshoot its
//     grant by the table's size).
//   - After a spill of its own the new table's first growth goes straight to the capacity of
//     the table spilled, if the task grants that memory (acquired first), instead of doubling
//     from 64 slots again (each doubling re-inserts every key; about 8% of the CPU of
//     BenchmarkAggregation/1M/int64/external-spill, 11% at 16 spills). The spill still releases
//     all the map's memory, as Spark's does. After a forced spill the table doubles as in Spark.
//   - Errors are values: a failed spill makes every later call return the error; Close still
//     releases everything.
//   - Keys have no null: a nullable key type (pointer, option struct) works like any other key,
//     with its own hash (Spark hashes null to 0).
//   - Spill files are written in storage's record format with a byte limit per batch as well as
//     Spark's record count (SpillConfig.BatchBytes), which bounds each reader's buffer. Each
//     record carries its key's hash (8 bytes), so the merge never rehashes a key it reads.
//   - The merge is a tournament tree over the files' current pairs, not Spark's heap of
//     per-file buffers of the current hash; the pairs it returns are the same.
//   - With memory.Strict the map keeps at most 128 spill files waiting for the read: past that
//     it merges the smallest ones while inserting (see the package doc), so its bookkeeping
//     does not grow with the number of spills. Spark keeps every spill until the merge.
type ExternalAppendOnlyMap[K comparable, V, C any] struct {
	combiningTable[K, V, C] // the Spillable, the aggregator and the in-memory table
	codec                   slotCodec[K, C]
	keep                    func(slot[K, C], []byte) slot[K, C]
	hasher                  Hasher[K]

	// The fields below are guarded by sp's lock.
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
	m.initIO(tm, cfg.Name, m.mergeGroup)
	m.sizes = newRecordSizes[K, V](m.sp.Strict())
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
	m.regrowTo = m.current.Capacity()
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

// openSpill returns a reader of a spill file of the map, for a forced spill of the iterator;
// with memory.Strict its buffers take over the spill writer's reservation. Call with the lock
// held.
func (m *ExternalAppendOnlyMap[K, V, C]) openSpill(f spillFile) (Iterator[slot[K, C]], error) {
	r, err := openSpill(m.scope, f, m.codec, m.keep, m.sp.writerToReader(f.readCost))
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
	case m.err != nil: // Spill does not call it once the map is closed
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
	m.regrowTo = 0 // the task is short of memory: the next table doubles from the start
	return true, disk, nil
}

// Iterator returns the map's pairs, each key once with its combiner, and takes the map
// over (Spark's iterator, which may be called once). Without spills it reads the in-memory
// table; otherwise it merges the spill files and the in-memory table, sorted by key hash, by
// hash (Spark's ExternalIterator in core/src/main/scala/org/apache/spark/util/collection/ExternalAppendOnlyMap.scala). The TaskManager may force-spill the
// iterator while it is read; then it continues from disk and the table becomes garbage. The
// map's memory is released when the in-memory part is exhausted or spilled. Close the iterator
// (or the map) when done.
//
// In Strict accounting the spill readers' buffers are execution memory of the task: when the
// task cannot hold a reader of every spill file at once, Iterator first merges groups of
// files into larger ones (see the package doc), which ctx can cancel. It returns an error
// wrapping memory.ErrOutOfMemory when not even two readers fit, ErrIterated when called twice,
// ErrClosed after Close, or the map's error; on error every spill file is deleted.
func (m *ExternalAppendOnlyMap[K, V, C]) Iterator(ctx context.Context) (Iterator[Pair[K, C]], error) {
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
	out := &mapIterator[K, V, C]{m: m}
	m.out = out
	if len(m.spills) == 0 {
		m.reading = m.newSpillableIterator(cur.destructiveSlots())
		out.src = m.reading
		return out, nil
	}
	reading := m.newSpillableIterator(cur.destructiveSortedSlots())
	m.reading = reading
	streams := []Iterator[slot[K, C]]{reading}
	err := m.mergeSpills(ctx, func(f spillFile, release func()) error {
		r, err := openSpill(m.scope, f, m.codec, m.keep, release)
		if err == nil {
			streams = append(streams, r)
		}
		return err
	})
	if err != nil {
		for _, s := range streams {
			_ = s.Close()
		}
		if m.out == out {
			m.out = nil
		}
		return nil, m.fail(err)
	}
	out.src = newHashMerge(m.agg.MergeCombiners, streams)
	return out, nil
}

// mergeGroup merges a group of the map's spill files into one (a pass of a multi-pass merge),
// with the lock not held: the readers and the writer take their memory from res.
func (m *ExternalAppendOnlyMap[K, V, C]) mergeGroup(ctx context.Context, group []spillFile, res *reservation) (spillFile, error) {
	streams := make([]Iterator[slot[K, C]], 0, len(group))
	for _, f := range group {
		r, err := openSpill(m.scope, f, m.codec, m.keep, res.take(f.readCost))
		if err != nil {
			for _, s := range streams {
				_ = s.Close()
			}
			return spillFile{}, err
		}
		streams = append(streams, r)
	}
	defer res.take(res.left)() // the writer's
	merged := &ctxIterator[slot[K, C]]{Iterator: newHashMerge(m.agg.MergeCombiners, streams), ctx: ctx}
	f, err := writeSpill(m.scope, m.sp.cfg, m.codec, merged)
	if err != nil {
		return spillFile{}, err
	}
	return f, m.registerMerged(f.id)
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
// whatever state the map is in. It is safe while another goroutine's Insert waits for memory:
// that Insert gives back what it is granted and returns ErrClosed. An iterator not read to its
// end stops: its Next returns false and its Err an error wrapping ErrClosed. Later calls return
// nil; other methods then return ErrClosed.
func (m *ExternalAppendOnlyMap[K, V, C]) Close() error {
	return m.close(func() []error {
		var errs []error
		if m.out != nil {
			errs = append(errs, m.out.abort(m.sp.closedError("while its iterator was read")))
			m.out = nil
		}
		if m.reading != nil {
			errs = append(errs, m.reading.Close())
			m.reading = nil
		}
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

// abort ends the iteration with err unless it already ended (the map was closed under it), and
// closes its source. Called with the lock held, possibly from another goroutine than the
// reader's: it leaves cur alone, which the reader's Value reads without the lock (the reader's
// next Next clears it).
func (it *mapIterator[K, V, C]) abort(err error) error {
	if it.src != nil {
		it.fail(err)
	}
	return it.closeSource()
}

// closeLocked drops the current pair and closes the source.
func (it *mapIterator[K, V, C]) closeLocked() error {
	it.cur = Pair[K, C]{}
	return it.closeSource()
}

// closeSource closes the source (its readers delete their files) and releases the memory of the
// in-memory stream.
func (it *mapIterator[K, V, C]) closeSource() error {
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
// spill files and of the sorter's): storage.PairCodec.
type pairCodec[K, C any] storage.PairCodec[K, C]

func (c pairCodec[K, C]) Append(dst []byte, p Pair[K, C]) []byte {
	return storage.PairCodec[K, C](c).Append(dst, p)
}

func (c pairCodec[K, C]) Decode(src []byte) (Pair[K, C], int, error) {
	return storage.PairCodec[K, C](c).Decode(src)
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

// hashMerge is Spark's ExternalAppendOnlyMap.ExternalIterator: a k-way merge of streams of slots
// sorted by hash into one stream with every key once, combining the combiners of equal keys. The
// hashes come with the slots (stored in the table and in the spill records), so nothing is
// rehashed.
//
// The streams' current slots meet in a loserTree keyed by hash. Next takes every slot of the
// smallest hash, from all streams (replaying the tree once per slot taken: about log2(streams)
// comparisons), then combines the slots of equal keys: usually they all share one key, the one
// it returns; keys that merely share the hash are returned by the next calls. Spark instead
// buffers, per stream, all its pairs of the current hash in a heap of buffers.
type hashMerge[K comparable, C any] struct {
	merge   func(a, b C) C
	streams []Iterator[slot[K, C]] // nil entries: exhausted and closed
	tree    loserTree[slot[K, C]]
	group   []slot[K, C] // scratch: the slots of the current hash
	pending []slot[K, C] // combined slots of the current hash not returned yet
	cur     slot[K, C]
	err     error
	inited  bool
}

func newHashMerge[K comparable, C any](merge func(a, b C) C, streams []Iterator[slot[K, C]]) *hashMerge[K, C] {
	return &hashMerge[K, C]{merge: merge, streams: streams, tree: newLoserTree[slot[K, C]](len(streams), nil)}
}

// advance reads stream i's next slot into the tree, closing the stream at its end. It reports
// an error of the stream, or a stream out of hash order.
func (m *hashMerge[K, C]) advance(i int) error {
	it := m.streams[i]
	if it.Next() {
		s := it.Value()
		if prev := m.tree.heads[i].hash; s.hash < prev {
			return fmt.Errorf("collection: merge input %d not sorted by hash: %#x after %#x: %w", i, s.hash, prev, storage.ErrCorrupt)
		}
		m.tree.set(i, s.hash, s)
		return nil
	}
	m.tree.drop(i)
	m.streams[i] = nil
	err := it.Err()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return err
}

func (m *hashMerge[K, C]) Next() bool {
	m.cur = slot[K, C]{}
	if m.err != nil {
		return false
	}
	if !m.inited {
		m.inited = true
		for i := range m.streams {
			if err := m.advance(i); err != nil {
				return m.fail(err)
			}
		}
	}
	if n := len(m.pending); n > 0 {
		m.cur = m.pending[n-1]
		m.pending[n-1] = slot[K, C]{}
		m.pending = m.pending[:n-1]
		return true
	}
	w := m.tree.winner()
	if w < 0 {
		return false
	}
	h := m.tree.heads[w].hash
	group := m.group[:0]
	for w >= 0 && m.tree.heads[w].hash == h {
		group = append(group, m.tree.heads[w])
		if err := m.advance(w); err != nil {
			return m.fail(err)
		}
		w = m.tree.winner()
	}
	m.cur = m.combine(group)
	clear(group)
	m.group = group[:0]
	return true
}

// combine merges the combiners of equal keys in group, all of one hash, and returns one key's
// slot; the other keys' (distinct keys sharing the hash) go to pending. Each stream holds a key
// at most once, so usually every slot of the group has the same key.
func (m *hashMerge[K, C]) combine(group []slot[K, C]) slot[K, C] {
	for {
		p, n := group[0], 0
		for _, s := range group[1:] {
			if s.key == p.key {
				p.val = m.merge(p.val, s.val)
			} else {
				group[n] = s
				n++
			}
		}
		if n == 0 {
			return p
		}
		m.pending = append(m.pending, p)
		group = group[:n]
	}
}

// fail stops the merge with err, closing every stream; it returns false.
func (m *hashMerge[K, C]) fail(err error) bool {
	m.err = err
	_ = m.closeAll() // err is the merge's error; the streams' close errors add nothing
	return false
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
	for _, it := range m.streams {
		if it != nil {
			errs = append(errs, it.Close())
		}
	}
	m.streams, m.tree, m.group, m.pending = nil, loserTree[slot[K, C]]{}, nil, nil
	return errors.Join(errs...)
}
