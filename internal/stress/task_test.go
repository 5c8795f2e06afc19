package stress

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

type pair = collection.Pair[int64, int64]

var codec = storage.VarintCodec[int64]{}

// kind is what a task computes.
type kind int

const (
	kindMap     kind = iota // ExternalAppendOnlyMap summing values by key
	kindSorter              // ExternalSorter, with or without aggregation, ordering, partitions
	kindGrouper             // ExternalGrouper
	kindBlocks              // BlockManager GetOrElseUpdate and GetLocalValues at random levels
	kindShuffle             // a shuffle map stage and reduce stage on the round's Runner
	numKinds
)

func (k kind) String() string {
	return [...]string{"map", "sorter", "grouper", "blocks", "shuffle"}[k]
}

// fate is how a task ends.
type fate int

const (
	fateFinish    fate = iota // runs to the end
	fateCancel                // its context is cancelled at a random step, inline or by another goroutine
	fateAbort                 // its collection is closed at a random step, by the task itself or another goroutine (blocks and shuffles: cancelled)
	fateEarlyStop             // stops reading after a random number of records and closes the iterator
	numFates
)

func (f fate) String() string {
	return [...]string{"finish", "cancel", "abort", "early-stop"}[f]
}

// task is one stress task: its plan, drawn from its seed, and its state while it runs.
type task struct {
	rd        *round
	idx       int
	seed      uint64
	rng       *rand.Rand // used by the task's own goroutine only
	kind      kind
	fate      fate
	id        memory.TaskID
	records   []pair
	at        int64 // step at which a cancel or abort fires (it may never come)
	inline    bool  // a cancel or abort fires on the task's own goroutine
	stopAfter int64 // records read before an early stop
	hog       bool  // a second consumer of the task acquires memory meanwhile

	steps    atomic.Int64
	read     atomic.Int64
	fired    chan struct{} // closed when the fate fires on another goroutine
	hogTick  chan struct{} // the hog's pace: a tick every 16 steps
	done     chan struct{} // closed when the task's work ends
	cancel   context.CancelFunc
	abort    func() error // what fateAbort calls; nil means cancel
	abortDue atomic.Bool  // an inline abort waits for checkAbort
	helpers  sync.WaitGroup
	failures atomic.Int64
}

func newTask(rd *round, idx int, seed uint64, fates [numFates]bool) *task {
	rng := rand.New(rand.NewPCG(seed, uint64(idx)))
	tk := &task{
		rd: rd, idx: idx, seed: seed, rng: rng,
		kind: kind(rng.IntN(int(numKinds))), fate: fate(rng.IntN(int(numFates))),
		id:    taskIDBase + memory.TaskID(idx),
		fired: make(chan struct{}), done: make(chan struct{}), hogTick: make(chan struct{}, 1),
	}
	if !fates[tk.fate] {
		tk.fate = fateFinish
	}
	n := rng.IntN(5000)
	keys := []int64{1, 20, 300, 5000}[rng.IntN(4)]
	tk.records = make([]pair, n)
	for i := range tk.records {
		tk.records[i] = pair{Key: rng.Int64N(keys), Value: rng.Int64N(2000) - 1000}
	}
	tk.at = 1 + rng.Int64N(2*int64(n)+1)
	// ExternalSorter is for one goroutine (only Spill may come from another): it is aborted inline.
	// ExternalAppendOnlyMap's and ExternalGrouper's methods are safe from any goroutine of the task.
	tk.inline = rng.IntN(2) == 0 || tk.kind == kindSorter && tk.fate == fateAbort
	tk.stopAfter = rng.Int64N(int64(n) + 1)
	tk.hog = tk.kind <= kindGrouper && rng.IntN(2) == 0
	return tk
}

func (tk *task) String() string {
	return fmt.Sprintf("task %d (seed %#x, %s, fate %s, %d records, hog %v)", tk.idx, tk.seed, tk.kind, tk.fate, len(tk.records), tk.hog)
}

// failf records a failure of the task; only its first few are kept.
func (tk *task) failf(format string, args ...any) {
	if tk.failures.Add(1) > 5 {
		return
	}
	tk.rd.failf("%v: %s", tk, fmt.Sprintf(format, args...))
}

// step counts one insert or read, pokes the monitor, and fires the fate at its step.
func (tk *task) step() {
	n := tk.steps.Add(1)
	if n%16 == 0 {
		tk.rd.poke()
		select {
		case tk.hogTick <- struct{}{}:
		default:
		}
	}
	if n != tk.at || (tk.fate != fateCancel && tk.fate != fateAbort) {
		return
	}
	switch {
	case !tk.inline:
		close(tk.fired)
	case tk.fate == fateAbort && tk.abort != nil:
		tk.abortDue.Store(true) // closed by checkAbort at the task's next safe point
	case tk.fate == fateAbort:
		tk.rd.count[cAborts].Add(1)
		tk.cancel()
	default:
		tk.rd.count[cCancellations].Add(1)
		tk.cancel()
	}
}

// checkAbort closes the task's collection on its own goroutine when an inline abort is due. It
// runs between inserts and after each record read, never inside a collection's call (where the
// collection may hold its lock while it pulls records from the source).
func (tk *task) checkAbort() {
	if tk.abortDue.CompareAndSwap(true, false) {
		tk.rd.count[cAborts].Add(1)
		if err := tk.abort(); err != nil {
			tk.failf("Close during the task: %v", err)
		}
	}
}

// stopNow reports, after a record was read, whether the task stops reading here.
func (tk *task) stopNow() bool {
	tk.rd.count[cRecordsRead].Add(1)
	tk.step()
	tk.checkAbort()
	if tk.fate == fateEarlyStop && tk.read.Add(1) >= tk.stopAfter {
		tk.rd.count[cEarlyStops].Add(1)
		return true
	}
	return false
}

// run runs the task and checks how it ended.
func (tk *task) run() {
	rd := tk.rd
	rd.count[cTasks].Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tk.cancel = cancel
	tm := memory.NewTaskManager(rd.m, tk.id, memory.TaskConfig{})
	scope := rd.disk.NewScope()

	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				tk.failf("panic: %v\n%s", p, debug.Stack())
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		if tk.hog {
			hogCtx, stopHog := context.WithCancel(ctx)
			defer stopHog() // before helpers.Wait below: the hog stops when the work ends
			tk.startHog(hogCtx, tm)
		}
		switch tk.kind {
		case kindMap:
			err = tk.runMap(ctx, tm, scope)
		case kindSorter:
			err = tk.runSorter(ctx, tm, scope)
		case kindGrouper:
			err = tk.runGrouper(ctx, tm, scope)
		case kindBlocks:
			err = tk.runBlocks(ctx)
		case kindShuffle:
			err = tk.runShuffle(ctx)
		}
	}()
	close(tk.done)
	tk.helpers.Wait()

	closed := func(err error) bool { return errors.Is(err, collection.ErrClosed) || errors.Is(err, storage.ErrClosed) }
	switch {
	case err == nil:
		if tk.fate == fateFinish {
			rd.count[cFinished].Add(1)
		}
	case tk.fate == fateCancel && errors.Is(err, context.Canceled):
	case tk.fate == fateAbort && tk.kind <= kindGrouper && closed(err):
	case tk.fate == fateAbort && tk.kind > kindGrouper && errors.Is(err, context.Canceled):
	case errors.Is(err, memory.ErrOutOfMemory):
		// Strict accounting: a task's share of the round's tiny budget among up to 64 tasks may
		// not hold two spill readers and a merge writer, or a shuffle writer's or reader's buffers
		// (at least one 32 KiB file buffer each); like Spark's SparkOutOfMemoryError, the task
		// then fails cleanly (bounded merges and buffers refuse rather than overshoot).
		rd.count[cOutOfMemory].Add(1)
	default:
		tk.failf("unexpected error: %v", err)
	}
	if n := scope.Files(); n != 0 {
		tk.failf("%d spill files left in the task's scope after the collection was closed", n)
	}
	if err := scope.Close(); err != nil {
		tk.failf("Scope.Close: %v", err)
	}
	if tk.kind == kindBlocks {
		if err := rd.bm.EndTask(tk.id); err != nil {
			tk.failf("BlockManager.EndTask: %v", err)
		}
	}
	report := tm.UsageReport()
	if leaked := tm.Close(); leaked != 0 {
		tk.failf("TaskManager.Close released %d leaked bytes; before Close:\n%s", leaked, report)
	}
}

// startHelper starts the goroutine that fires a cancel or abort from outside the task.
func (tk *task) startHelper() {
	if tk.inline || tk.fate != fateAbort && tk.fate != fateCancel {
		return
	}
	tk.helpers.Go(func() {
		select {
		case <-tk.fired:
		case <-tk.done:
			return
		}
		if tk.fate == fateAbort {
			tk.rd.count[cAborts].Add(1)
			if tk.abort != nil {
				if err := tk.abort(); err != nil {
					tk.failf("Close from another goroutine: %v", err)
				}
				return
			}
		} else {
			tk.rd.count[cCancellations].Add(1)
		}
		tk.cancel()
	})
}

// hog is a second consumer of a task: it acquires execution memory, which makes the task force
// its collection to spill, and gives everything back when asked to spill.
type hog struct {
	base memory.ConsumerBase
	mu   sync.Mutex // serialises the hog's frees with Spill
}

func (h *hog) Spill(int64, memory.Consumer) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.base.Used()
	if n > 0 {
		h.base.Free(n)
	}
	return n, nil
}

func (h *hog) Used() int64       { return h.base.Used() }
func (h *hog) Mode() memory.Mode { return h.base.Mode() }

func (h *hog) free(n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n = min(n, h.base.Used()); n > 0 {
		h.base.Free(n)
	}
}

// startHog runs a hog until ctx ends, one acquisition every 16 steps of the task (inserts and
// reads alike, so it forces spills while the collection is filled and while it is read); it
// frees what it holds when it stops.
func (tk *task) startHog(ctx context.Context, tm *memory.TaskManager) {
	h := &hog{}
	h.base.Init(tm, memory.OnHeap, "stress-hog", h)
	rng := rand.New(rand.NewPCG(tk.seed, 0x40c))
	maxChunk := tk.rd.m.Metrics().Pools[memory.OnHeap].Max / 8
	tk.helpers.Go(func() {
		defer func() {
			h.free(h.Used())
			if p := recover(); p != nil {
				tk.failf("hog panic: %v\n%s", p, debug.Stack())
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.hogTick:
			}
			_, err := h.base.Acquire(ctx, 1+rng.Int64N(maxChunk))
			tk.rd.count[cAcquisitions].Add(1)
			tk.rd.poke()
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					tk.failf("hog Acquire: %v", err)
				}
				return
			}
			h.free(rng.Int64N(maxChunk))
		}
	})
}

// source returns recs as an Iterator that counts a step and an insert per record.
func (tk *task) source(recs []pair) collection.Iterator[pair] {
	i := 0
	return storage.FuncIterator(func() (pair, bool, error) {
		if i == len(recs) {
			return pair{}, false, nil
		}
		i++
		tk.rd.count[cInserts].Add(1)
		tk.step()
		return recs[i-1], true, nil
	}, nil)
}

// insert feeds the task's records one by one, all at once or in chunks.
func (tk *task) insert(ctx context.Context, one func(context.Context, int64, int64) error,
	all func(context.Context, collection.Iterator[pair]) error) error {
	recs := tk.records
	if one != nil && tk.rng.IntN(3) == 0 {
		for _, p := range recs {
			tk.rd.count[cInserts].Add(1)
			tk.step()
			if err := one(ctx, p.Key, p.Value); err != nil {
				return err
			}
			tk.checkAbort()
		}
		return nil
	}
	for len(recs) > 0 {
		n := len(recs)
		if tk.rng.IntN(2) == 0 {
			n = 1 + tk.rng.IntN(n)
		}
		if err := all(ctx, tk.source(recs[:n])); err != nil {
			return err
		}
		tk.checkAbort()
		recs = recs[n:]
	}
	return nil
}

// closeCollection closes a collection at the end of the task and adds its spill counts. After a
// panic (p) it only passes the panic on: the collection may still hold its lock.
func (tk *task) closeCollection(p any, close func() error, metrics func() collection.SpillMetrics) {
	if p != nil {
		panic(p)
	}
	if err := close(); err != nil {
		tk.failf("Close: %v", err)
	}
	m := metrics()
	tk.rd.count[cSpills].Add(m.Spills)
	tk.rd.count[cForcedSpills].Add(m.ForcedSpills)
}

func sumAggregator() collection.Aggregator[int64, int64, int64] {
	add := func(a, b int64) int64 { return a + b }
	return collection.Aggregator[int64, int64, int64]{
		CreateCombiner: func(v int64) int64 { return v }, MergeValue: add, MergeCombiners: add,
	}
}

func sums(recs []pair) map[int64]int64 {
	out := map[int64]int64{}
	for _, p := range recs {
		out[p.Key] += p.Value
	}
	return out
}

func counts(recs []pair) map[pair]int {
	out := map[pair]int{}
	for _, p := range recs {
		out[p]++
	}
	return out
}

// sumChecker checks pairs that should each be a key once with the sum of its values.
type sumChecker struct {
	tk   *task
	want map[int64]int64
	seen map[int64]bool
}

func newSumChecker(tk *task) *sumChecker {
	return &sumChecker{tk: tk, want: sums(tk.records), seen: map[int64]bool{}}
}

func (c *sumChecker) check(p pair) {
	want, ok := c.want[p.Key]
	switch {
	case c.seen[p.Key]:
		c.tk.failf("key %d read twice", p.Key)
	case !ok:
		c.tk.failf("key %d was never inserted", p.Key)
	case p.Value != want:
		c.tk.failf("key %d: combiner %d, want %d", p.Key, p.Value, want)
	}
	c.seen[p.Key] = true
}

func (c *sumChecker) checkComplete() {
	if len(c.seen) != len(c.want) {
		c.tk.failf("iteration ended without error after %d of %d keys", len(c.seen), len(c.want))
	}
}

// countChecker checks pairs that should be the inserted records, each as often as inserted.
type countChecker struct {
	tk   *task
	left map[pair]int
	read int
}

func (c *countChecker) check(p pair) {
	if c.left[p]--; c.left[p] < 0 {
		c.tk.failf("record %v read more often than inserted", p)
	}
	c.read++
}

func (c *countChecker) checkComplete() {
	if c.read != len(c.tk.records) {
		c.tk.failf("iteration ended without error after %d of %d records", c.read, len(c.tk.records))
	}
}

// drain reads it through check until its end or an early stop and closes it. It reports whether
// it read to the end without error.
func drain[T any](tk *task, it collection.Iterator[T], check func(T)) (complete bool, err error) {
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	for it.Next() {
		check(it.Value())
		if tk.stopNow() {
			return false, nil
		}
	}
	return it.Err() == nil, it.Err()
}

func (tk *task) runMap(ctx context.Context, tm *memory.TaskManager, scope *storage.Scope) error {
	m, err := collection.NewExternalAppendOnlyMap(tm, scope, sumAggregator(), codec, codec,
		collection.ExternalMapConfig[int64]{SpillConfig: tk.rd.spill, Name: fmt.Sprintf("stress-map-%d", tk.idx)})
	if err != nil {
		return err
	}
	tk.abort = m.Close
	tk.startHelper()
	defer func() { tk.closeCollection(recover(), m.Close, m.Metrics) }()
	if err := tk.insert(ctx, m.Insert, m.InsertAll); err != nil {
		return err
	}
	it, err := m.Iterator(ctx)
	if err != nil {
		return err
	}
	c := newSumChecker(tk)
	complete, err := drain(tk, it, c.check)
	if complete {
		c.checkComplete()
	}
	return err
}

// modPartitioner puts key k (never negative here) in partition k mod n.
type modPartitioner int

func (p modPartitioner) NumPartitions() int    { return int(p) }
func (p modPartitioner) Partition(k int64) int { return int(k % int64(p)) }

func (tk *task) runSorter(ctx context.Context, tm *memory.TaskManager, scope *storage.Scope) error {
	cfg := collection.SorterConfig[int64, int64, int64]{
		Spill: tk.rd.spill, Name: fmt.Sprintf("stress-sorter-%d", tk.idx),
	}
	aggregate, ordered, parts := tk.rng.IntN(2) == 0, tk.rng.IntN(2) == 0, 1+tk.rng.IntN(5)
	if aggregate {
		agg := sumAggregator()
		cfg.Aggregator = &agg
	}
	if ordered {
		cfg.Ordering = cmp.Compare[int64]
	}
	if parts > 1 {
		cfg.Partitioner = modPartitioner(parts)
	}
	s, err := collection.NewExternalSorter(tm, scope, codec, codec, cfg)
	if err != nil {
		return err
	}
	tk.abort = s.Close
	tk.startHelper()
	defer func() { tk.closeCollection(recover(), s.Close, s.Metrics) }()
	if err := tk.insert(ctx, nil, s.InsertAll); err != nil {
		return err
	}
	it, err := s.Iterator(ctx)
	if err != nil {
		return err
	}
	sc, cc := newSumChecker(tk), &countChecker{tk: tk, left: counts(tk.records)}
	var last *pair
	complete, err := drain(tk, it, func(p pair) {
		if last != nil {
			lp, pp := int(last.Key)%parts, int(p.Key)%parts
			if pp < lp || ordered && pp == lp && p.Key < last.Key {
				tk.failf("record %v after %v: out of order (%d partitions, ordered %v)", p, *last, parts, ordered)
			}
		}
		last = &p
		if aggregate {
			sc.check(p)
		} else {
			cc.check(p)
		}
	})
	if complete && aggregate {
		sc.checkComplete()
	} else if complete {
		cc.checkComplete()
	}
	return err
}

func (tk *task) runGrouper(ctx context.Context, tm *memory.TaskManager, scope *storage.Scope) error {
	g, err := collection.NewExternalGrouper[int64, int64](tm, scope, codec, codec,
		collection.ExternalMapConfig[int64]{SpillConfig: tk.rd.spill, Name: fmt.Sprintf("stress-grouper-%d", tk.idx)})
	if err != nil {
		return err
	}
	tk.abort = g.Close
	tk.startHelper()
	defer func() { tk.closeCollection(recover(), g.Close, g.Metrics) }()
	if err := tk.insert(ctx, g.Insert, g.InsertAll); err != nil {
		return err
	}
	it, err := g.Iterator(ctx)
	if err != nil {
		return err
	}
	defer it.Close()
	want := map[int64][]int64{}
	for _, p := range tk.records {
		want[p.Key] = append(want[p.Key], p.Value)
	}
	seen := map[int64]bool{}
	for it.Next() {
		grp := it.Value()
		if grp.Values == nil {
			// Seen when another goroutine closes the grouper between Next and Value.
			tk.failf("Next returned true but Value is a Group without Values (key %d)", grp.Key)
			return errors.New("stress: Group without Values")
		}
		if seen[grp.Key] {
			tk.failf("key %d read twice", grp.Key)
		}
		seen[grp.Key] = true
		// Read all the group's values, or only some and move on (which skips the rest).
		limit := -1
		if tk.rng.IntN(4) == 0 {
			limit = tk.rng.IntN(len(want[grp.Key]) + 1)
		}
		var vals []int64
		stop := false
		for (limit < 0 || len(vals) < limit) && grp.Values.Next() {
			vals = append(vals, grp.Values.Value())
			if stop = tk.stopNow(); stop {
				break
			}
		}
		if err := grp.Values.Err(); err != nil {
			return err
		}
		slices.Sort(vals)
		wantVals := slices.Sorted(slices.Values(want[grp.Key]))
		if limit < 0 && !stop {
			if len(vals) < len(wantVals) && subMultiset(vals, wantVals) {
				tk.failf("values of key %d ended without error after %d of %d", grp.Key, len(vals), len(wantVals))
			} else if !slices.Equal(vals, wantVals) {
				tk.failf("key %d: values %s, want %s", grp.Key, describe(vals), describe(wantVals))
			}
		} else if !subMultiset(vals, wantVals) {
			tk.failf("key %d: values read %s are not among %s", grp.Key, describe(vals), describe(wantVals))
		}
		if stop {
			return it.Close()
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	if len(seen) != len(want) {
		tk.failf("iteration ended without error after %d of %d keys", len(seen), len(want))
	}
	return it.Close()
}

// subMultiset reports whether sorted a is a sub-multiset of sorted b.
func subMultiset(a, b []int64) bool {
	j := 0
	for _, v := range a {
		for j < len(b) && b[j] < v {
			j++
		}
		if j == len(b) || b[j] != v {
			return false
		}
		j++
	}
	return true
}

var blockLevels = []storage.Level{storage.MemoryOnly, storage.MemoryOnlySer, storage.MemoryAndDisk,
	storage.MemoryAndDiskSer, storage.DiskOnly}

// runBlocks caches a few blocks of the task's values at random levels, reads them back, and
// removes them.
func (tk *task) runBlocks(ctx context.Context) error {
	tk.startHelper()
	bm := tk.rd.bm
	vals := make([]int64, len(tk.records))
	for i, p := range tk.records {
		vals[i] = p.Value
	}
	var ids []storage.BlockID
	defer func() {
		for _, id := range ids {
			if _, err := bm.Remove(context.Background(), tk.id, id); err != nil {
				tk.failf("Remove %v: %v", id, err)
			}
		}
	}()
	readBack := func(it collection.Iterator[int64]) (bool, error) {
		i := 0
		return drain(tk, it, func(v int64) {
			if i >= len(vals) || v != vals[i] {
				tk.failf("block value %d is %d; the block holds %s", i, v, describe(vals))
			}
			i++
		})
	}
	for j := range 1 + tk.rng.IntN(3) {
		id := storage.RDDBlockID(1+tk.idx, j)
		ids = append(ids, id)
		level := blockLevels[tk.rng.IntN(len(blockLevels))]
		compute := func() (collection.Iterator[int64], error) {
			i := 0
			return storage.FuncIterator(func() (int64, bool, error) {
				if i == len(vals) {
					return 0, false, nil
				}
				i++
				tk.rd.count[cInserts].Add(1)
				tk.step()
				return vals[i-1], true, nil
			}, nil), nil
		}
		it, _, err := storage.GetOrElseUpdate(ctx, bm, tk.id, id, level, codec, compute)
		if err != nil {
			return err
		}
		tk.rd.count[cBlocksPut].Add(1)
		complete, err := readBack(it)
		if err != nil || !complete {
			return err
		}
		it, found, err := storage.GetLocalValues(ctx, bm, tk.id, id, codec)
		if err != nil {
			return err
		}
		if found {
			if complete, err := readBack(it); err != nil || !complete {
				return err
			}
		}
	}
	return nil
}

// runShuffle runs a map stage and a reduce stage of the task's records on the round's Runner.
func (tk *task) runShuffle(ctx context.Context) error {
	tk.startHelper()
	runner := tk.rd.runner
	parts := 1 + tk.rng.IntN(6)
	dep := &shuffle.Dependency[int64, int64, int64]{
		ShuffleID: runner.NewShuffleID(), Partitioner: shuffle.NewHashPartitioner[int64](parts),
		KeyCodec: codec, ValueCodec: codec, CombinerCodec: codec,
	}
	aggregate, ordered := tk.rng.IntN(2) == 0, tk.rng.IntN(2) == 0
	if aggregate {
		agg := sumAggregator()
		dep.Aggregator = &agg
		dep.MapSideCombine = tk.rng.IntN(2) == 0
	}
	if ordered {
		dep.KeyOrdering = cmp.Compare[int64]
	}
	numMaps := 1 + tk.rng.IntN(4)
	tk.rd.count[cShuffles].Add(1)
	_, err := shuffle.RunMapStage(ctx, runner, dep, numMaps,
		func(_ context.Context, _ *shuffle.TaskContext, m int) (collection.Iterator[pair], error) {
			n := len(tk.records)
			return tk.source(tk.records[m*n/numMaps : (m+1)*n/numMaps]), nil
		})
	if err != nil {
		return err
	}
	defer func() {
		if err := runner.Registry().UnregisterShuffle(dep.ShuffleID); err != nil {
			tk.failf("UnregisterShuffle: %v", err)
		}
	}()
	results := make([][]pair, parts)
	var stopped atomic.Bool
	var stepMu sync.Mutex // reduce tasks run concurrently; the task's step counter is shared
	err = runner.Run(ctx, parts, func(ctx context.Context, tc *shuffle.TaskContext, p int) error {
		r, err := shuffle.NewReader(ctx, tc, dep, p)
		if err != nil {
			return err
		}
		defer r.Close()
		for r.Next() {
			results[p] = append(results[p], r.Value())
			stepMu.Lock()
			stop := stopped.Load() || tk.stopNow()
			stepMu.Unlock()
			if stop {
				stopped.Store(true)
				return r.Close()
			}
		}
		return r.Err()
	})
	// Whatever was read must be right, complete or not.
	sc, cc := newSumChecker(tk), &countChecker{tk: tk, left: counts(tk.records)}
	for p, recs := range results {
		for i, rec := range recs {
			if got := dep.Partitioner.Partition(rec.Key); got != p {
				tk.failf("key %d read from reduce partition %d, belongs to %d", rec.Key, p, got)
			}
			if ordered && i > 0 && rec.Key < recs[i-1].Key {
				tk.failf("reduce partition %d: key %d after %d", p, rec.Key, recs[i-1].Key)
			}
			if aggregate {
				sc.check(rec)
			} else {
				cc.check(rec)
			}
		}
	}
	if err == nil && !stopped.Load() {
		if aggregate {
			sc.checkComplete()
		} else {
			cc.checkComplete()
		}
	}
	return err
}
