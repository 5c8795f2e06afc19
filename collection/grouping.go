package collection

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
// memory: the case Spark's ExternalAppendOnlyMap cannot handle (SPARK-1823),
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
// initial threshold (5 MiB by default). Like the map, with memory.Strict it keeps at most 128
// spill files waiting for the read, merging the smallest ones while inserting.
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
	g.initIO(tm, cfg.Name, g.mergeGroup)
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
	g.regrowTo = cur.Capacity() // the next table's first growth goes straight back to it
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
	g.regrowTo = 0 // the task is short of memory: the next table doubles from the start
	return true, disk, nil
}

// Iterator returns every key once with its values (see Group), merging the spill files
// and the in-memory table; it takes the grouper over and may be called once. Close it (or the
// grouper) when done. Like ExternalAppendOnlyMap.Iterator, in Strict accounting it first
// merges groups of spill files into larger ones when the task cannot hold a reader of each.
func (g *ExternalGrouper[K, V]) Iterator(ctx context.Context) (Iterator[Group[K, V]], error) {
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
	err := g.mergeSpills(ctx, func(f spillFile, release func()) error {
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
		return errs
	})
}
