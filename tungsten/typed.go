package tungsten

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/spillway/spillway/internal/radix"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// Pair is a key and its value as the typed front ends yield them: storage.Pair, the one pair
// type every package uses (collection.Pair is the same type).
type Pair[K, V any] = storage.Pair[K, V]

// AggregatorConfig configures an Aggregator. Its zero value is Spark's defaults.
type AggregatorConfig struct {
	// Map configures the hash map (initial capacity, page size, spill files, name, logger).
	Map MapConfig
	// MergeFactor is the most sorted runs merged at once: see SorterConfig.MergeFactor.
	MergeFactor int
}

// Aggregator combines values by key in a BytesToBytesMap, the way Spark's hash aggregation does
// with UnsafeFixedWidthAggregationMap and UnsafeKVExternalSorter
// (sql/core/src/main/java/org/apache/spark/sql/execution/): keys and values live encoded in
// pages, so the task's memory is the exact bytes of its pages and slot array, and off-heap they
// cost the garbage collector nothing. When the map cannot take a record, its records are sorted
// by key in place (the slot array doubles as the sort buffer) and spilled as a sorted run, and the
// map starts again, keeping its slot array (Spark frees it and regrows from its initial
// capacity). Reading merges the runs and the in-memory rest, combining equal keys.
//
// With Int64Key keys and values, each key and its value live in the slot array itself, not in
// pages: an insert then loads one slot where the map loads a slot and a record. After a spill
// such an array takes what memory the task grants, not only what doubling reaches.
//
// It mirrors collection.ExternalAppendOnlyMap's use: Insert, then Iterator once, then Close
// (always). Not safe for concurrent use.
type Aggregator[K, V any] struct {
	m      *BytesToBytesMap
	keys   KeyCodec[K]
	values storage.Codec[V]
	merge  func(a, b V) V
	factor int
	kbuf   []byte
	vbuf   []byte
	runs   []spillFile
	spills SpillMetrics
	out    storage.Iterator[Pair[K, V]]
	read   bool
	failed error // a failed spill leaves the map unusable: every later call returns it
	// shared is the start every key sorted so far (spilled, or sorted for the final merge)
	// shares, once sharing: the final merge orders the keys by their bytes past it.
	shared  []byte
	sharing bool
	in      inlineState
}

// NewAggregator returns an empty aggregator of task tm spilling into scope: Insert merges a value
// into its key's value with merge (merge may modify and return its first argument).
func NewAggregator[K, V any](ctx context.Context, tm *memory.TaskManager, scope *storage.Scope, keys KeyCodec[K],
	values storage.Codec[V], merge func(a, b V) V, cfg AggregatorConfig) (*Aggregator[K, V], error) {
	if keys == nil || values == nil || merge == nil {
		return nil, errors.New("tungsten: NewAggregator needs key and value codecs and a merge function")
	}
	if cfg.Map.Name == "" {
		cfg.Map.Name = "Aggregator"
	}
	if cfg.MergeFactor == 0 {
		cfg.MergeFactor = DefaultMergeFactor
	}
	m, err := NewBytesToBytesMap(ctx, tm, scope, cfg.Map)
	if err != nil {
		return nil, err
	}
	m.singleValued() // a key's value is merged in place or replaced, never chained
	a := &Aggregator[K, V]{m: m, keys: keys, values: values, merge: merge, factor: cfg.MergeFactor}
	a.initInline()
	m.fullLoadFactor = aggregatorFullLoad
	if a.in.on {
		m.fullLoadFactor = inlineFullLoad
	}
	return a, nil
}

// Used is the bytes of the pages and slot array held; the map is the task's memory.Consumer.
func (a *Aggregator[K, V]) Used() int64 { return a.m.Used() }

// Metrics returns the spill counters.
func (a *Aggregator[K, V]) Metrics() SpillMetrics {
	s := a.m.Metrics()
	s.Spills += a.spills.Spills
	s.MemoryBytesSpilled += a.spills.MemoryBytesSpilled
	s.DiskBytesSpilled += a.spills.DiskBytesSpilled
	s.MergePasses += a.spills.MergePasses
	return s
}

// Insert merges v into k's value, after spilling the map as a sorted run if memory is short.
// Acquiring memory may block (ctx cancels) and may spill other consumers of the task.
func (a *Aggregator[K, V]) Insert(ctx context.Context, k K, v V) error {
	if err := a.check(); err != nil {
		return err
	}
	if a.in.on {
		return a.insertInline(ctx, inlineWord(asInt64(k)), asInt64(v))
	}
	a.kbuf = a.keys.Append(a.kbuf[:0], k)
	return a.insert(ctx, a.kbuf, a.m.Hash(a.kbuf), v)
}

// InsertAll inserts every pair of records (and closes it), as Insert does. It works in groups
// of pairs whose slots and records it loads together, so that their cache misses overlap: much
// cheaper per pair than Insert on a large map.
func (a *Aggregator[K, V]) InsertAll(ctx context.Context, records storage.Iterator[Pair[K, V]]) (err error) {
	defer func() { err = errors.Join(err, records.Close()) }()
	if err := a.check(); err != nil {
		return err
	}
	if a.in.on {
		return a.insertAllInline(ctx, records)
	}
	var (
		vals   [insertGroup]V
		ends   [insertGroup]int
		hashes [insertGroup]uint64
	)
	for done := false; !done; {
		n := 0
		a.kbuf = a.kbuf[:0]
		for ; n < insertGroup; n++ {
			if !records.Next() {
				done = true
				break
			}
			p := records.Value()
			a.kbuf = a.keys.Append(a.kbuf, p.Key)
			ends[n], vals[n] = len(a.kbuf), p.Value
		}
		if err := records.Err(); err != nil {
			return err
		}
		start := 0
		for i := range n {
			hashes[i] = a.m.Hash(a.kbuf[start:ends[i]])
			start = ends[i]
		}
		a.m.touchSlots(hashes[:n], ends[:n])
		start = 0
		for i := range n {
			if err := a.insert(ctx, a.kbuf[start:ends[i]], hashes[i], vals[i]); err != nil {
				return err
			}
			start = ends[i]
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// aggregatorFullLoad is the load an Aggregator's slot array may reach once it cannot grow: the
// map then spills when its pages run out rather than at half the slots, with far fewer spills.
// The records no longer leave the array room for radix sort's scratch then, so such a spill
// sorts in place (radix.SortKeyPrefixDense, or radix.SortKeyPrefixInPlace when the prefix is the key).
// Triangular probing and the full hash in each slot keep lookups cheap at that load (a key
// found takes under 3 probes on average, each a slot, not a record). The inline slots, probed
// linearly, stop at inlineFullLoad.
const (
	aggregatorFullLoad = 0.9
	inlineFullLoad     = 0.75
)

// insertGroup is how many pairs InsertAll looks up together.
const insertGroup = 32

func (a *Aggregator[K, V]) check() error {
	switch {
	case a.failed != nil:
		return a.failed
	case a.read:
		return ErrIterated
	case a.m.array == nil:
		return ErrClosed
	}
	return nil
}

// insert merges v into the value of the encoded key kb of the given hash.
func (a *Aggregator[K, V]) insert(ctx context.Context, kb []byte, hash uint64, v V) error {
	loc := a.m.LookupHash(kb, hash)
	if loc.IsDefined() {
		if slot := loc.Value(); a.in.intValues && len(slot) == 8 { // Int64Key values, merged in place
			old := int64(inlineWord(int64(binary.BigEndian.Uint64(slot))))
			binary.BigEndian.PutUint64(slot, inlineWord(a.in.merge(old, asInt64(v))))
			return nil
		}
		old, _, err := a.values.Decode(loc.Value())
		if err != nil {
			return fmt.Errorf("tungsten: decoding the value of a key in memory: %w", err)
		}
		a.vbuf = a.values.Append(a.vbuf[:0], a.merge(old, v))
		if slot := loc.Value(); len(a.vbuf) <= len(slot) {
			clear(slot[copy(slot, a.vbuf):]) // codecs ignore trailing bytes
			return nil
		}
		oldAddr := loc.addr
		ok, err := loc.Append(ctx, kb, a.vbuf)
		if ok {
			a.m.markDead(oldAddr)
		}
		if ok || err != nil {
			return err
		}
	} else {
		a.vbuf = a.values.Append(a.vbuf[:0], v)
		if ok, err := loc.Append(ctx, kb, a.vbuf); ok || err != nil {
			return err
		}
	}
	// Out of memory: the map's content goes to disk and v starts its key afresh.
	if err := a.spill(ctx); err != nil {
		return err
	}
	a.vbuf = a.values.Append(a.vbuf[:0], v)
	ok, err := a.m.LookupHash(kb, hash).Append(ctx, kb, a.vbuf)
	if err == nil && !ok {
		err = fmt.Errorf("tungsten: %s: a record of %d bytes does not fit in memory after spilling: %w",
			a.m.name, len(kb)+len(a.vbuf), memory.ErrOutOfMemory)
	}
	return err
}

// spill sorts the map's records by key and writes them as a run, then empties the map. After an
// error the map's slots are lost, so the aggregator fails from then on.
func (a *Aggregator[K, V]) spill(ctx context.Context) error {
	if err := a.spillRun(ctx); err != nil {
		a.failed = fmt.Errorf("tungsten: %s: spilling: %w", a.m.name, err)
		return a.failed
	}
	return nil
}

// writeRun sorts the keys in memory and writes them to *f, returning how many: inline pairs as
// an inline run, the map's records as a keyed run (key-value records whose prefix is their
// key's). No keys write no file.
func (a *Aggregator[K, V]) writeRun(ctx context.Context, f *spillFile) (n int, err error) {
	var (
		inline *inlineSource
		pairs  *pairSource
	)
	if a.in.on {
		inline = a.sortInline()
		n = inline.len()
	} else {
		ps, common, err := a.m.sortInPlace(ctx, a.keys.PrefixIsKey())
		if err != nil {
			return 0, err
		}
		a.share(common)
		pairs, n = &pairSource{b: &a.m.base, ps: ps}, len(ps)
	}
	if n == 0 {
		return 0, nil
	}
	newWriter := newKeyedSpillWriter
	if a.in.on {
		newWriter = newSpillWriter
	}
	w, err := newWriter(a.m.scope, a.m.spill)
	if err != nil {
		return n, err
	}
	if a.in.on {
		for err == nil && inline.nextWord() {
			err = w.writeInline(inline.w, inline.v)
		}
	} else {
		for err == nil && pairs.next() {
			err = w.write(pairs.record(), pairs.prefix())
		}
	}
	if err != nil {
		return n, errors.Join(err, w.Abort())
	}
	*f, err = w.commit()
	return n, err
}

func (a *Aggregator[K, V]) spillRun(ctx context.Context) error {
	var f spillFile
	n, err := a.writeRun(ctx, &f)
	switch {
	case err != nil:
		return err
	case n == 0:
		a.m.reset(true)
		return nil
	}
	a.runs = append(a.runs, f)
	inMemory := a.m.Used() - a.m.array.bytes() // the pages
	if a.in.on {
		inMemory = 16 * int64(n) // the slots
	}
	a.m.reset(true)
	a.m.canGrowArray = true
	a.m.growthThreshold = int(float64(a.m.Capacity()) * a.m.cfg.LoadFactor)
	a.spills.Spills++
	a.spills.MemoryBytesSpilled += inMemory
	a.spills.DiskBytesSpilled += f.size
	if a.in.on {
		return a.resizeInline(ctx)
	}
	return nil
}

// sortInPlace lays the live records out as (address, key prefix) pairs in the slot array and
// sorts them by key; the array's slots are lost (reset the map before use). It allocates a
// larger array only when the records outnumber a quarter of the slots' words. It also returns
// the start every live key shares (aliasing a page: valid until the map is reset), and the
// prefixes sorted are the keys' 8 bytes past it, BytesPrefix(key[len(common):]): a long start
// that every key shares ("user-1000…") is then skipped at no cost, where a sort by the keys'
// first 8 bytes would load every record again to break the ties. With prefixIsKey, common is
// empty and the pairs' prefixes the keys'; without, the pairs are left with an order-preserving
// form of the prefixes sorted (sortByKey).
func (m *BytesToBytesMap) sortInPlace(ctx context.Context, prefixIsKey bool) (ps []pair, common []byte, err error) {
	n := m.numValues // live records
	if 2*n > m.array.size() {
		bigger, err := m.allocateArray(ctx, 4*n)
		if err != nil {
			return nil, nil, err
		}
		m.freeArray(m.array)
		m.array = bigger
	}
	if !prefixIsKey {
		common = m.commonStart()
	}
	skip := int64(len(common))
	a := m.array.a
	i := 0
	for _, p := range m.dataPages {
		for off, rec := range m.liveRecords(p) {
			a[2*i] = memory.EncodePageNumberAndOffset(p.Number(), off)
			a[2*i+1] = prefixAt(rec, uao+int(skip), uao+int(order.Uint32(rec)))
			i++
		}
	}
	if prefixIsKey {
		if 4*n <= m.array.size() {
			start := radix.SortKeyPrefixArray(a, 0, i, 0, 7, false, false)
			return pairs(a[start : start+2*i]), nil, nil
		}
		// no room for radix sort's scratch: sort in place by the prefixes
		radix.SortKeyPrefixInPlace(a, i)
		return pairs(a[:2*i]), nil, nil
	}
	m.sortByKey(a[:2*i], len(common))
	return pairs(a[:2*i]), common, nil
}

// commonStart is the longest start every live key shares (empty without keys), aliasing the
// first live key's page.
func (m *BytesToBytesMap) commonStart() []byte {
	var common []byte
	first := true
	for _, p := range m.dataPages {
		for _, rec := range m.liveRecords(p) {
			key := rec[uao : uao+order.Uint32(rec)]
			if first {
				common, first = key, false
			} else {
				common = common[:commonPrefixLen(common, key)]
			}
		}
	}
	return common
}

// share narrows a.shared, the start every key sorted so far shares, to its common start with
// common, the start the keys being sorted share.
func (a *Aggregator[K, V]) share(common []byte) {
	if !a.sharing {
		a.shared, a.sharing = append(a.shared[:0], common...), true
		return
	}
	a.shared = a.shared[:commonPrefixLen(a.shared, common)]
}

// pairSource reads sorted pairs of key-value records in pages. The prefix of a record is its
// key's, BytesPrefix(key), as every run's must be, whatever the pairs' prefixes (sortInPlace
// leaves other numbers there).
type pairSource struct {
	b         *base
	ps        []pair
	rec       []byte
	pre       int64
	untouched int
}

func (s *pairSource) next() bool {
	if len(s.ps) == 0 {
		return false
	}
	if s.untouched == 0 {
		s.untouched = s.b.touch(s.ps)
	}
	s.untouched--
	s.rec = s.b.record(s.ps[0].addr)
	s.pre = prefixAt(s.rec, uao, uao+int(order.Uint32(s.rec)&^deadKey))
	s.ps = s.ps[1:]
	return true
}
func (s *pairSource) record() []byte { return s.rec }
func (s *pairSource) prefix() int64  { return s.pre }
func (s *pairSource) err() error     { return nil }
func (s *pairSource) close() error   { s.ps = nil; return nil }

// Iterator returns the keys and their merged values (once): without spills in the map's order
// (key order with Int64Key keys and values), reading it destructively (another consumer may force
// its unread pages or keys to disk); with spills in key order, merging the sorted runs with the
// sorted in-memory rest.
func (a *Aggregator[K, V]) Iterator(ctx context.Context) (storage.Iterator[Pair[K, V]], error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	a.read = true
	if a.in.on {
		return a.inlineIterator(ctx)
	}
	if len(a.runs) == 0 {
		a.out = &mapPairs[K, V]{a: a, it: a.m.DestructiveIterator(ctx)}
		return a.out, nil
	}
	rest, err := a.sortedRest(ctx)
	if err != nil {
		return nil, err
	}
	src, err := mergeKeyRuns(ctx, a.m.scope, &a.m.base, a.factor, a.runs, rest, len(a.shared), &a.spills.MergePasses)
	a.runs = nil
	if err != nil {
		return nil, err
	}
	a.out = &combined[K, V]{ctx: ctx, a: a, src: src}
	return a.out, nil
}

// sortedRest returns the records in memory sorted by key for the final merge, or nil once they
// are spilled as one more run: in memory.Strict accounting they are when the task cannot grant
// the merge's readers (up to its merge share) beside them, as Spark's UnsafeKVExternalSorter
// spills its in-memory part when the merge needs the memory.
func (a *Aggregator[K, V]) sortedRest(ctx context.Context) (source, error) {
	held := a.m.numValues > 0 || a.in.zero // the inline path keeps key 0 beside its slots
	if io := &a.m.writer.io; io.Strict() && held {
		var readers int64
		for _, f := range a.runs {
			readers += f.readCost
		}
		want := min(readers, io.MergeShare())
		got, err := io.Acquire(ctx, want)
		io.Release(got)
		if err != nil {
			return nil, err
		}
		if got < want {
			if err := a.spill(ctx); err != nil {
				return nil, err
			}
		}
	}
	if held = a.m.numValues > 0 || a.in.zero; !held {
		a.m.reset(false) // nothing left in memory: the slot array goes too
		return nil, nil
	}
	if a.in.on {
		return a.sortInline(), nil
	}
	ps, common, err := a.m.sortInPlace(ctx, a.keys.PrefixIsKey())
	if err != nil {
		return nil, err
	}
	a.share(common)
	return &pairSource{b: &a.m.base, ps: ps}, nil
}

// Close frees the memory and deletes the spill files. It is idempotent.
func (a *Aggregator[K, V]) Close() error {
	var errs []error
	if a.out != nil {
		errs = append(errs, a.out.Close())
	}
	for _, f := range a.runs {
		errs = append(errs, f.remove(a.m.scope))
	}
	a.runs = nil
	errs = append(errs, a.m.Close())
	return errors.Join(errs...)
}

// mapPairs decodes the records of the map's destructive iterator.
type mapPairs[K, V any] struct {
	a   *Aggregator[K, V]
	it  *MapIterator
	cur Pair[K, V]
	err error
}

func (p *mapPairs[K, V]) Next() bool {
	if p.err != nil || !p.it.Next() {
		if p.err == nil {
			p.err = p.it.Err()
		}
		return false
	}
	p.cur, p.err = decodePair(p.a.keys, p.a.values, p.it.Key(), p.it.Value())
	return p.err == nil
}
func (p *mapPairs[K, V]) Value() Pair[K, V] { return p.cur }
func (p *mapPairs[K, V]) Err() error        { return p.err }
func (p *mapPairs[K, V]) Close() error      { return p.it.Close() }

func decodePair[K, V any](keys storage.Codec[K], values storage.Codec[V], kb, vb []byte) (Pair[K, V], error) {
	k, _, err := keys.Decode(kb)
	if err != nil {
		return Pair[K, V]{}, err
	}
	v, _, err := values.Decode(vb)
	return Pair[K, V]{Key: k, Value: v}, err
}

// combined merges the values of equal adjacent keys of a key-ordered source.
type combined[K, V any] struct {
	ctx     context.Context
	a       *Aggregator[K, V]
	src     source
	pending bool // src is positioned on an unconsumed record
	key     []byte
	cur     Pair[K, V]
	err     error
	n       int
}

func (c *combined[K, V]) Next() bool {
	if c.err != nil || c.src == nil {
		return false
	}
	if !c.pending && !c.advance() {
		return false
	}
	kb, vb, err := splitKV(c.src.record())
	if err == nil {
		c.cur, err = decodePair(c.a.keys, c.a.values, kb, vb)
	}
	if err != nil {
		c.err = err
		return false
	}
	c.key = append(c.key[:0], kb...)
	for {
		if !c.advance() {
			c.pending = false
			return c.err == nil
		}
		kb, vb, err := splitKV(c.src.record())
		if err != nil {
			c.err = err
			return false
		}
		if !bytes.Equal(kb, c.key) {
			c.pending = true
			return true
		}
		v, _, err := c.a.values.Decode(vb)
		if err != nil {
			c.err = err
			return false
		}
		c.cur.Value = c.a.merge(c.cur.Value, v)
	}
}

func (c *combined[K, V]) advance() bool {
	if c.n++; c.n&1023 == 0 {
		if c.err = c.ctx.Err(); c.err != nil {
			return false
		}
	}
	if c.src.next() {
		return true
	}
	c.err = c.src.err()
	return false
}

func (c *combined[K, V]) Value() Pair[K, V] { return c.cur }
func (c *combined[K, V]) Err() error        { return c.err }
func (c *combined[K, V]) Close() error {
	if c.src == nil {
		return nil
	}
	err := c.src.close()
	c.src = nil
	return err
}
