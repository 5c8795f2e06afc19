package collection

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/estimator"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// combiningTable is what ExternalAppendOnlyMap and ExternalGrouper share: a SizeTrackingMap of
// combiners filled through an Aggregator under the Spillable policy (Spark's
// ExternalAppendOnlyMap.insertAll), the spill files written, and the memory.Consumer methods. The owner embeds it, initialises sp and sets spill to the
// function that writes current to disk and starts a new table.
type combiningTable[K comparable, V, C any] struct {
	sp    Spillable
	agg   Aggregator[K, V, C]
	spill func() (diskBytes int64, err error) // called by maybeSpill with the lock held
	est   estimator.Estimator                 // measures every table of the collection

	scope *storage.Scope // where spill files are created
	io    ioMemory       // the spill readers' and merge writers' memory

	sizes recordSizes[K, V] // memory.Strict: the bytes a record references (see recordSizer)
	keeps bool              // MergeValue keeps the value (the grouper): merged values count too
	// mergeFiles merges a group of spill files into one (a pass of a multi-pass merge), with
	// the lock not held, taking its readers' and writer's memory from the reservation.
	mergeFiles func(context.Context, []spillFile, *reservation) (spillFile, error)
	maxLive    int // memory.Strict: more spills than this are compacted (see compactSpills); 0: never

	// Guarded by sp's lock.
	current  *SizeTrackingMap[K, C] // nil once iterated, closed or broken
	iterated bool
	err      error             // sticky: a failed spill
	touched  uint64            // sink of insertBatchLocked's loads
	spills   []spillFile       // spills not yet handed to a reader (Spark's spilledMaps)
	files    []storage.BlockID // the spill files written and maybe live, deleted by Close
	numSpill int               // spill files written
	regrowTo int               // capacity of the table the last spill wrote (0: none); see regrow
}

// initIO sets up the collection's spill I/O memory and its merges of spill files (merge): see
// ioMemory and multiPass. Call after sp.Init.
func (t *combiningTable[K, V, C]) initIO(tm *memory.TaskManager, name string,
	merge func(context.Context, []spillFile, *reservation) (spillFile, error)) {
	t.io.Init(tm, name)
	t.sp.reserveWriterOn(&t.io)
	t.mergeFiles = merge
	if t.io.Strict() {
		t.maxLive = maxLiveSpills(1)
	}
}

// multiPass returns the planner of the merges of the collection's spill files; a positive limit
// makes it a compaction (see multiPass.limit).
func (t *combiningTable[K, V, C]) multiPass(limit int) *multiPass[spillFile] {
	return &multiPass[spillFile]{io: &t.io, cfg: t.sp.cfg, info: spillFile.info, merge: t.mergeFiles,
		remove: t.removeFile, limit: limit}
}

// compactSpills merges the smallest spill files into one while more than maxLive are waiting
// for the read (memory.Strict only), until half of maxLive are left, so that the collection's
// records of its files, and the files, do not grow with the number of spills: see
// compactFiles. Called while inserting, with the lock held, which it releases while merging.
// On error the collection is broken (every file it was merging is deleted, the rest by Close).
func (t *combiningTable[K, V, C]) compactSpills(ctx context.Context) error {
	if t.maxLive == 0 || len(t.spills) <= t.maxLive {
		return nil
	}
	spills := t.spills
	t.spills = nil
	files, err := compactFiles(ctx, &t.sp, t.multiPass(t.maxLive/2), spills)
	if err != nil {
		return t.fail(err)
	}
	t.spills = append(files, t.spills...) // and the forced spills written meanwhile
	return nil
}

// Spill implements memory.Consumer (Spillable.spill): a forced spill when another consumer of
// the task needs memory; see Spillable.Spill.
func (t *combiningTable[K, V, C]) Spill(size int64, trigger memory.Consumer) (int64, error) {
	return t.sp.Spill(size, trigger)
}

// Used implements memory.Consumer: the execution memory the collection holds beyond its free
// allowance.
func (t *combiningTable[K, V, C]) Used() int64 { return t.sp.Used() }

// Mode implements memory.Consumer: always memory.OnHeap.
func (t *combiningTable[K, V, C]) Mode() memory.Mode { return t.sp.Mode() }

// String is the collection's name.
func (t *combiningTable[K, V, C]) String() string { return t.sp.name }

// Metrics returns a snapshot of the spill counters.
func (t *combiningTable[K, V, C]) Metrics() SpillMetrics {
	t.sp.Lock()
	defer t.sp.Unlock()
	return t.sp.Metrics()
}

// NumSpills returns the number of spill files written so far, forced spills of the iterator
// included (Spark's numSpills counts the spills of the map only).
func (t *combiningTable[K, V, C]) NumSpills() int {
	t.sp.Lock()
	defer t.sp.Unlock()
	return t.numSpill
}

// addSpillFile records a spill file written for the collection. Call with the lock held.
func (t *combiningTable[K, V, C]) addSpillFile(id storage.BlockID) {
	t.files = appendLive(t.scope, t.files, id)
	t.numSpill++
}

// close is Close for both collections: the first call, under the lock, marks the Spillable
// closed (releasing the collection's memory; an insert waiting for memory then gives its grant
// back and returns ErrClosed), runs closeReaders (the owner ends its iterator with ErrClosed,
// closes its in-memory reader), drops the in-memory table and the spill list and deletes every
// spill file. Later calls return nil.
func (t *combiningTable[K, V, C]) close(closeReaders func() []error) error {
	t.sp.Lock()
	defer t.sp.Unlock()
	if t.sp.Closed() {
		return nil
	}
	t.sp.MarkClosed()
	errs := closeReaders()
	t.current, t.spills = nil, nil
	for _, id := range t.files {
		if _, err := t.scope.Remove(id); err != nil {
			errs = append(errs, fmt.Errorf("collection: deleting spill file %s: %w", id, err))
		}
	}
	t.files = nil
	return errors.Join(errs...)
}

// mergeSpills is the read side of a bounded merge, called with the lock held. It takes the spill
// list over and releases the lock while groups of spills are merged into larger files
// (multiPass.reduce with mergeFiles), then, with the lock held again, calls open on every
// remaining file with the function releasing its reader's memory, and records the passes. On
// error (and when Close ran meanwhile) every file not handed to open is deleted and the memory
// is released.
func (t *combiningTable[K, V, C]) mergeSpills(ctx context.Context, open func(spillFile, func()) error) error {
	spills := t.spills
	t.spills = nil
	t.sp.Unlock()
	files, res, passes, err := t.multiPass(0).reduce(ctx, spills)
	t.sp.Lock()
	if err != nil {
		return err
	}
	defer res.close()
	if t.sp.Closed() {
		err = t.sp.closedError("while its spills were merged")
	} else {
		t.sp.metrics.MergePasses += int64(passes)
	}
	for i, f := range files {
		if err == nil {
			err = open(f, res.take(f.readCost))
			if err == nil {
				continue
			}
		}
		err = errors.Join(err, t.removeFile(files[i]))
	}
	return err
}

// removeFile deletes a spill file (if it still exists).
func (t *combiningTable[K, V, C]) removeFile(f spillFile) error {
	if _, err := t.scope.Remove(f.id); err != nil {
		return fmt.Errorf("collection: deleting spill file %s: %w", f.id, err)
	}
	return nil
}

// registerMerged records a file written by a merge pass for Close, which deletes it; if Close
// already ran, it deletes it at once and returns an error wrapping ErrClosed.
func (t *combiningTable[K, V, C]) registerMerged(id storage.BlockID) error {
	t.sp.Lock()
	defer t.sp.Unlock()
	if t.sp.Closed() {
		_, err := t.scope.Remove(id)
		return errors.Join(t.sp.closedError("while its spills were merged"), err)
	}
	t.files = appendLive(t.scope, t.files, id)
	return nil
}

// newTable returns an empty in-memory table hashing with h and measured with the collection's
// Estimator.
func (t *combiningTable[K, V, C]) newTable(h Hasher[K]) *SizeTrackingMap[K, C] {
	return newSizeTrackingMap[K, C](DefaultInitialCapacity, h, &t.est)
}

// checkUsable returns why the collection cannot take inserts or hand out its iterator.
func (t *combiningTable[K, V, C]) checkUsable() error {
	switch {
	case t.sp.Closed():
		return ErrClosed
	case t.err != nil:
		return t.err
	case t.iterated:
		return ErrIterated
	}
	return nil
}

// fail records err as the sticky error (unless the collection is closed), drops the in-memory
// table and gives back the memory.
func (t *combiningTable[K, V, C]) fail(err error) error {
	if t.err == nil && !t.sp.Closed() {
		t.err = err
	}
	t.current = nil
	t.sp.ReleaseMemory()
	return err
}

// insertAll is InsertAll: see insertBatches.
func (t *combiningTable[K, V, C]) insertAll(ctx context.Context, it Iterator[Pair[K, V]]) error {
	return insertBatches(ctx, &t.sp, it, make([]Pair[K, V], 0, insertBatch), func(batch []Pair[K, V]) error {
		return t.insertBatchLocked(ctx, batch)
	})
}

// insertBatches is the InsertAll of the spillable collections: it reads records into batch (up
// to its capacity) and calls insert with each batch and sp's lock held, so a forced spill from
// another goroutine waits for at most one batch. It closes records and stops at the first error:
// insert's, records', or ctx's (checked between batches).
func insertBatches[K, V any](ctx context.Context, sp *Spillable, records Iterator[Pair[K, V]], batch []Pair[K, V],
	insert func(batch []Pair[K, V]) error) (err error) {
	defer func() {
		if cerr := records.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("collection: closing the input of %s: %w", sp.name, cerr)
		}
	}()
	defer clear(batch[:cap(batch)])
	for more := true; more; {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch = batch[:0]
		for len(batch) < cap(batch) {
			if more = records.Next(); !more {
				break
			}
			batch = append(batch, records.Value())
		}
		if len(batch) == 0 {
			break
		}
		sp.Lock()
		err := insert(batch)
		sp.Unlock()
		if err != nil {
			return err
		}
	}
	if err := records.Err(); err != nil {
		return fmt.Errorf("collection: reading the input of %s: %w", sp.name, err)
	}
	return nil
}

// insertBatchLocked inserts a batch of at most insertBatch pairs with the lock held. It hashes
// the whole batch first and loads the slot each key's probe starts at, so the cache misses of
// the batch overlap instead of coming one after the other.
func (t *combiningTable[K, V, C]) insertBatchLocked(ctx context.Context, batch []Pair[K, V]) error {
	cur := t.current
	if cur == nil {
		return t.checkUsable()
	}
	var hashes [insertBatch]uint64
	a := cur.AppendOnlyMap
	data := a.data
	var touched uint64
	for i := range batch {
		h := a.hasher.Hash(batch[i].Key)
		hashes[i] = h
		touched += data[a.home(h)].hash
	}
	t.touched = touched // keeps the loads
	for i := range batch {
		if err := t.insertHashedLocked(ctx, batch[i].Key, hashes[i], batch[i].Value); err != nil {
			return err
		}
	}
	return nil
}

// insertLocked is Insert with the lock held.
func (t *combiningTable[K, V, C]) insertLocked(ctx context.Context, k K, v V) error {
	cur := t.current
	if cur == nil {
		return t.checkUsable()
	}
	return t.insertHashedLocked(ctx, k, cur.hasher.Hash(k), v)
}

// insertHashedLocked inserts k, whose hash is h, with the lock held: Spark's maybeSpill before
// the record (plus the check before a doubling of the table and, in memory.Strict accounting,
// the check for a large record; see Spillable), then changeValue and addElementsRead. The common
// case — no memory check due, no doubling ahead — costs an estimate, a probe and the
// aggregator's call. Every table of the collection shares one Hasher, so h stays valid across a
// spill.
func (t *combiningTable[K, V, C]) insertHashedLocked(ctx context.Context, k K, h uint64, v V) error {
	cur := t.current
	if cur == nil { // iterated, closed or broken
		return t.checkUsable()
	}
	est := cur.EstimateSize()
	if t.regrowTo > 0 && cur.AtGrowThreshold() {
		if err := t.regrow(ctx, cur, est); err != nil {
			return t.fail(err)
		}
		if cur = t.current; cur == nil { // regrow released the lock while acquiring
			return t.checkUsable()
		}
		est = cur.EstimateSize()
	}
	t.sp.UpdatePeak(est)
	var doubling int64
	if cur.AtGrowThreshold() {
		// The next new key doubles the table: ask for the memory it will take now.
		doubling = int64(cur.Capacity()) * int64(unsafe.Sizeof(slot[K, C]{}))
	}
	kb, vb := t.sizes.of(k, v)
	if t.keeps && t.sp.strict {
		// The grouper keeps the value itself in a chunk of its key's value list, which the
		// sampled size of the table can miss (one key's list grows between samples).
		vb += int64(unsafe.Sizeof(v))
	}
	if mem, check := t.sp.beforeInsert(est, doubling, kb+vb); t.sp.spillDue(mem, check) {
		if err := t.sp.admitChecked(ctx, mem, check, kb+vb, t.spill, t.currentSize); err != nil {
			return t.fail(err)
		}
		if err := t.compactSpills(ctx); err != nil {
			return err
		}
		// maybeSpill (and a compaction) released the lock and may have spilled: look again.
		if cur = t.current; cur == nil {
			return t.checkUsable()
		}
	}
	isNew, err := combineValue(cur, k, h, v, &t.agg)
	if err != nil {
		return fmt.Errorf("collection: %s: %w", t.sp.name, err) // ErrMapFull: nothing changed
	}
	switch {
	case isNew:
		t.sp.retain(kb + vb)
	case t.keeps:
		t.sp.retain(vb)
	}
	t.sp.AddElementsRead()
	return nil
}

// regrow is the first growth of a table started by a spill: rather than doubling again from
// DefaultInitialCapacity slots (each doubling re-inserting every key), the table goes straight to
// the capacity of the table the spill wrote, if the task grants the memory that takes (acquired
// before the table is allocated: in memory.Strict both arrays are live while the keys move).
// The spill released the collection's memory, as Spark's does, so the task's other consumers
// had their chance at it. If the task grants less, the grant stays and the table doubles as
// usual. Call with the lock held; it releases it while acquiring.
func (t *combiningTable[K, V, C]) regrow(ctx context.Context, cur *SizeTrackingMap[K, C], est int64) error {
	capacity := t.regrowTo
	t.regrowTo = 0
	if capacity <= 2*cur.Capacity() {
		return nil
	}
	slotBytes := int64(unsafe.Sizeof(slot[K, C]{}))
	need := est + int64(capacity-cur.Capacity())*slotBytes
	if t.sp.strict {
		need = max(est, t.sp.floor) + int64(capacity)*slotBytes
	}
	gen := t.sp.forcedGen
	short, err := t.sp.grow(ctx, need)
	switch {
	case errors.Is(err, ErrClosed):
		return err
	case err != nil:
		return fmt.Errorf("collection: %s acquiring %s of execution memory to grow its table to %d slots: %w",
			t.sp.name, humanize.IBytes(uint64(need)), capacity, err)
	case gen != t.sp.forcedGen:
		// A forced spill emptied the table while it waited: the grant was for data now on disk.
		t.sp.ReleaseMemory()
	case !short && t.current == cur:
		cur.growTo(capacity)
	}
	return nil
}

// currentSize is the in-memory table's tracked size (0 without one).
func (t *combiningTable[K, V, C]) currentSize() int64 {
	if t.current == nil {
		return 0
	}
	return t.current.EstimateSize()
}

// combineValue merges v into the combiner of k, whose hash is h, in m with agg (CreateCombiner
// for a new key): SizeTrackingMap.ChangeValue without a closure per record. It reports whether k
// was new. If k is new and the table cannot grow it returns an error wrapping ErrMapFull and
// changes nothing.
func combineValue[K comparable, V, C any](m *SizeTrackingMap[K, C], k K, h uint64, v V, agg *Aggregator[K, V, C]) (bool, error) {
	a := m.AppendOnlyMap
	a.checkValid()
	s, found := a.probe(k, h)
	if found {
		s.val = agg.MergeValue(s.val, v)
		m.tracker.AfterUpdate()
		return false, nil
	}
	if err := a.checkRoom(); err != nil {
		return false, err
	}
	s.hash, s.key, s.val = h, k, agg.CreateCombiner(v)
	capacity := len(a.data)
	a.incrementSize()
	m.afterUpdate(capacity)
	return true, nil
}
