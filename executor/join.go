package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/estimator"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

// JoinKind is the kind of a Join.
type JoinKind uint8

const (
	// Inner keeps the keys both sides have: one row per pair of a left and a right value.
	Inner JoinKind = iota
	// LeftOuter also keeps every left value whose key the right side lacks (HasRight false).
	LeftOuter
	// FullOuter also keeps every value of either side whose key the other side lacks.
	FullOuter
)

// String returns the kind's name.
func (k JoinKind) String() string {
	switch k {
	case Inner:
		return "inner"
	case LeftOuter:
		return "left outer"
	case FullOuter:
		return "full outer"
	}
	return fmt.Sprintf("JoinKind(%d)", uint8(k))
}

// Row is one row of a join: a key with a left and a right value. In outer joins a side the key
// lacks has its zero value and its Has flag false.
type Row[K, A, B any] struct {
	Key      K
	Left     A
	Right    B
	HasLeft  bool
	HasRight bool
}

// JoinStrategy says how a Join ran.
type JoinStrategy uint8

const (
	// ShuffleJoin shuffled both sides and cogrouped them (Spark's join on RDDs).
	ShuffleJoin JoinStrategy = iota
	// BroadcastJoin built the right side into one in-memory table that every task of the left
	// side probed (Spark's BroadcastHashJoinExec).
	BroadcastJoin
)

// String returns the strategy's name.
func (s JoinStrategy) String() string {
	if s == BroadcastJoin {
		return "broadcast hash join"
	}
	return "shuffle join"
}

// JoinConfig configures a Join.
type JoinConfig[K comparable] struct {
	// Partitioning says how a shuffle join shuffles both sides (KeyCodec is required).
	Partitioning[K]
	// Kind is the kind of join; the zero value is Inner.
	Kind JoinKind
}

// Join joins left and right by key, handing each task's rows to reduce, and returns how it ran
// (Stats.Strategy) with its tasks' metrics.
//
// When Kind is Inner or LeftOuter and the right side fits Config.BroadcastThreshold, the right
// side is built into one hash table shared by the tasks of a stage over the left side, which
// is never shuffled (Spark's broadcast hash join, chosen by spark.sql.autoBroadcastJoinThreshold).
// The table's memory is acquired from the executor's storage memory before each part of it is
// built (evicting cached blocks if need be); when the side outgrows the threshold, or storage
// memory cannot be had, the table is dropped and the join falls back to the shuffle join instead
// of running out of memory. Reading the right side for the attempt costs one pass over it.
//
// Otherwise (FullOuter, a larger right side, or broadcasts turned off) both sides are shuffled
// and cogrouped (CoGroup), which spills and so handles sides larger than the budget; the rows
// of a key are its left values × its right values, built while they are read.
func Join[K comparable, A, B any](ctx context.Context, ex *Executor, cfg JoinConfig[K], left Input[K, A], right Input[K, B], reduce ReduceFunc[Row[K, A, B]]) (Stats, error) {
	if cfg.Kind > FullOuter {
		return Stats{}, fmt.Errorf("executor: JoinConfig.Kind %v is not a join kind", cfg.Kind)
	}
	if err := errors.Join(left.validate("Join's left side"), right.validate("Join's right side")); err != nil {
		return Stats{}, err
	}
	if cfg.Kind != FullOuter && ex.cfg.BroadcastThreshold != NoLimit {
		table, err := buildBroadcast(ctx, ex, right)
		if err != nil {
			return Stats{}, err
		}
		if table != nil {
			defer table.release()
			return Stats{Strategy: BroadcastJoin, BroadcastBytes: table.size}, probe(ctx, ex, cfg.Kind, left, table, reduce)
		}
	}
	return shuffleJoin(ctx, ex, cfg, left, right, reduce)
}

// either is a value of one side of a shuffle join.
type either[A, B any] struct {
	left  A
	right B
}

// sideCodec encodes either values of one side only: each side is shuffled alone, and the
// cogroup map's spills write each side's list with its input's codec.
type sideCodec[A, B any] struct {
	left  storage.Codec[A] // nil for the right side
	right storage.Codec[B]
}

func (c sideCodec[A, B]) Append(dst []byte, v either[A, B]) []byte {
	if c.left != nil {
		return c.left.Append(dst, v.left)
	}
	return c.right.Append(dst, v.right)
}

func (c sideCodec[A, B]) Decode(src []byte) (either[A, B], int, error) {
	var v either[A, B]
	var n int
	var err error
	if c.left != nil {
		v.left, n, err = c.left.Decode(src)
	} else {
		v.right, n, err = c.right.Decode(src)
	}
	return v, n, err
}

// shuffleJoin cogroups the two sides and expands each key's lists into rows.
func shuffleJoin[K comparable, A, B any](ctx context.Context, ex *Executor, cfg JoinConfig[K], left Input[K, A], right Input[K, B], reduce ReduceFunc[Row[K, A, B]]) (Stats, error) {
	inputs := []Input[K, either[A, B]]{
		{Partitions: left.Partitions, Codec: sideCodec[A, B]{left: left.Codec}, Read: func(ctx context.Context, tc *shuffle.TaskContext, p int) (collection.Iterator[collection.Pair[K, either[A, B]]], error) {
			it, err := left.Read(ctx, tc, p)
			return mapIter(it, func(kv collection.Pair[K, A]) collection.Pair[K, either[A, B]] {
				return collection.Pair[K, either[A, B]]{Key: kv.Key, Value: either[A, B]{left: kv.Value}}
			}), err
		}},
		{Partitions: right.Partitions, Codec: sideCodec[A, B]{right: right.Codec}, Read: func(ctx context.Context, tc *shuffle.TaskContext, p int) (collection.Iterator[collection.Pair[K, either[A, B]]], error) {
			it, err := right.Read(ctx, tc, p)
			return mapIter(it, func(kv collection.Pair[K, B]) collection.Pair[K, either[A, B]] {
				return collection.Pair[K, either[A, B]]{Key: kv.Key, Value: either[A, B]{right: kv.Value}}
			}), err
		}},
	}
	return CoGroup(ctx, ex, cfg.Partitioning, inputs, func(ctx context.Context, tc *shuffle.TaskContext, p int, it collection.Iterator[collection.Pair[K, [][]either[A, B]]]) error {
		return reduce(ctx, tc, p, &rows[K, A, B]{groups: it, kind: cfg.Kind})
	})
}

// rows expands cogrouped keys into join rows, one at a time.
type rows[K comparable, A, B any] struct {
	groups collection.Iterator[collection.Pair[K, [][]either[A, B]]]
	kind   JoinKind

	key         K
	lefts       []either[A, B]
	rights      []either[A, B]
	i, j        int // next pair: lefts[i] with rights[j]
	cur         Row[K, A, B]
	err         error
	done        bool
	outerLeft   bool // the current key's left values are emitted without a right one
	outerRights bool // the current key's right values are emitted without a left one
}

func (r *rows[K, A, B]) Next() bool {
	for !r.done {
		switch {
		case r.outerLeft && r.i < len(r.lefts):
			r.cur = Row[K, A, B]{Key: r.key, Left: r.lefts[r.i].left, HasLeft: true}
			r.i++
			return true
		case r.outerRights && r.j < len(r.rights):
			r.cur = Row[K, A, B]{Key: r.key, Right: r.rights[r.j].right, HasRight: true}
			r.j++
			return true
		case !r.outerLeft && !r.outerRights && r.i < len(r.lefts) && len(r.rights) > 0:
			r.cur = Row[K, A, B]{Key: r.key, Left: r.lefts[r.i].left, Right: r.rights[r.j].right, HasLeft: true, HasRight: true}
			if r.j++; r.j == len(r.rights) {
				r.i, r.j = r.i+1, 0
			}
			return true
		}
		if !r.groups.Next() {
			r.err, r.done = r.groups.Err(), true
			return false
		}
		g := r.groups.Value()
		r.key, r.lefts, r.rights, r.i, r.j = g.Key, g.Value[0], g.Value[1], 0, 0
		r.outerLeft = len(r.rights) == 0 && r.kind != Inner
		r.outerRights = len(r.lefts) == 0 && r.kind == FullOuter
	}
	return false
}

func (r *rows[K, A, B]) Value() Row[K, A, B] { return r.cur }
func (r *rows[K, A, B]) Err() error          { return r.err }
func (r *rows[K, A, B]) Close() error {
	r.done, r.lefts, r.rights = true, nil, nil
	return r.groups.Close()
}

// mapIter returns it with f applied to every element (nil when it is nil).
func mapIter[T, U any](it collection.Iterator[T], f func(T) U) collection.Iterator[U] {
	if it == nil {
		return nil
	}
	return storage.FuncIterator(func() (U, bool, error) {
		if !it.Next() {
			var zero U
			return zero, false, it.Err()
		}
		return f(it.Value()), true, nil
	}, it.Close)
}

// broadcastTable is the right side of a broadcast join: its values by key, and the storage
// memory they were built in.
type broadcastTable[K comparable, B any] struct {
	ex       *Executor
	values   map[K][]B
	size     int64 // estimated
	acquired int64 // storage memory held, at least size
}

func (t *broadcastTable[K, B]) release() {
	t.ex.Memory.ReleaseStorage(t.acquired, memory.OnHeap)
	t.values, t.acquired = nil, 0
}

// broadcastBlock names a broadcast table's storage memory (Spark's broadcast_<id> block).
type broadcastBlock int

func (b broadcastBlock) String() string { return fmt.Sprintf("broadcast_%d", int(b)) }

// errBroadcastTooLarge ends the build of a broadcast table that outgrew its threshold.
var errBroadcastTooLarge = errors.New("executor: broadcast side larger than its threshold")

// buildBroadcast reads side into a hash table, acquiring storage memory for each part before it
// is inserted. It returns nil (and no error) when side does not fit Config.BroadcastThreshold
// or storage memory cannot be had: the caller shuffles instead.
func buildBroadcast[K comparable, B any](ctx context.Context, ex *Executor, side Input[K, B]) (_ *broadcastTable[K, B], err error) {
	limit := ex.cfg.BroadcastThreshold
	chunk := max(64<<10, limit/16)
	block := broadcastBlock(ex.Runner.NewShuffleID())
	t := &broadcastTable[K, B]{ex: ex, values: map[K][]B{}}
	var est estimator.Estimator // one layout cache and walker pool for every record
	var mu sync.Mutex
	var used int64 // estimated size of the table, under mu
	refused := false
	// insert adds a record to the table, first accounting for what it adds (refs: what its key
	// and value reference), acquiring storage memory a chunk ahead.
	insert := func(k K, v B, refs int64) error {
		mu.Lock()
		defer mu.Unlock()
		vals, ok := t.values[k]
		used += refs + broadcastSlots[K, B](!ok)
		if used > limit {
			return errBroadcastTooLarge
		}
		for used > t.acquired {
			want := min(chunk, limit-t.acquired)
			ok, err := ex.Memory.AcquireStorage(block, want, memory.OnHeap)
			if err != nil {
				return err
			}
			if !ok {
				refused = true
				return errBroadcastTooLarge
			}
			t.acquired += want
		}
		t.values[k] = append(vals, v)
		return nil
	}
	err = ex.Runner.Run(ctx, side.Partitions, func(ctx context.Context, tc *shuffle.TaskContext, p int) error {
		it, err := side.Read(ctx, tc, p)
		if err != nil {
			return err
		}
		defer it.Close()
		for it.Next() {
			kv := it.Value()
			if err := insert(kv.Key, kv.Value, est.Estimate(kv.Key)+est.Estimate(kv.Value)); err != nil {
				return err
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		return it.Close()
	})
	if errors.Is(err, errBroadcastTooLarge) {
		reason := "larger than the threshold"
		if refused {
			reason = "storage memory refused"
		}
		ex.log.Info("broadcast join falls back to a shuffle join", zap.String("reason", reason),
			zap.String("threshold", humanize.IBytes(uint64(limit))), zap.String("acquired", humanize.IBytes(uint64(t.acquired))))
		t.release()
		return nil, nil
	}
	if err != nil {
		t.release()
		return nil, fmt.Errorf("executor: building the broadcast side: %w", err)
	}
	ex.log.Info("broadcast join", zap.String("table", humanize.IBytes(uint64(used))), zap.Int("keys", len(t.values)))
	t.size = used
	return t, nil
}

// broadcastSlots is what a record adds to a broadcast table besides what its key and value
// reference: for a new key, its map slot (the key and a slice header, with a control byte) at
// the lowest load a Go map table has, 7/16 just after it splits, and a one-element slice;
// for a key already present, its value's place in the key's slice, which append doubles, so up
// to twice the value's size.
func broadcastSlots[K comparable, B any](newKey bool) int64 {
	var k K
	var v B
	if !newKey {
		return 2 * int64(unsafe.Sizeof(v))
	}
	slot := int64(unsafe.Sizeof(k)+unsafe.Sizeof([]B(nil))) + 1
	return slot*16/7 + int64(unsafe.Sizeof(v))
}

// probe runs one task per partition of left, each joining its records with the table.
func probe[K comparable, A, B any](ctx context.Context, ex *Executor, kind JoinKind, left Input[K, A], t *broadcastTable[K, B], reduce ReduceFunc[Row[K, A, B]]) error {
	return ex.Runner.Run(ctx, left.Partitions, func(ctx context.Context, tc *shuffle.TaskContext, p int) error {
		it, err := left.Read(ctx, tc, p)
		if err != nil {
			return err
		}
		pr := &probeRows[K, A, B]{left: it, table: t.values, kind: kind}
		return errors.Join(reduce(ctx, tc, p, pr), pr.Close())
	})
}

// probeRows joins left records with a broadcast table, one row at a time.
type probeRows[K comparable, A, B any] struct {
	left  collection.Iterator[collection.Pair[K, A]]
	table map[K][]B
	kind  JoinKind

	kv     collection.Pair[K, A]
	rights []B
	cur    Row[K, A, B]
	err    error
	done   bool
}

func (r *probeRows[K, A, B]) Next() bool {
	for !r.done {
		if len(r.rights) > 0 {
			r.cur = Row[K, A, B]{Key: r.kv.Key, Left: r.kv.Value, Right: r.rights[0], HasLeft: true, HasRight: true}
			r.rights = r.rights[1:]
			return true
		}
		if !r.left.Next() {
			r.err, r.done = r.left.Err(), true
			return false
		}
		r.kv = r.left.Value()
		r.rights = r.table[r.kv.Key]
		if len(r.rights) == 0 && r.kind == LeftOuter {
			r.cur = Row[K, A, B]{Key: r.kv.Key, Left: r.kv.Value, HasLeft: true}
			return true
		}
	}
	return false
}

func (r *probeRows[K, A, B]) Value() Row[K, A, B] { return r.cur }
func (r *probeRows[K, A, B]) Err() error          { return r.err }
func (r *probeRows[K, A, B]) Close() error {
	r.done, r.rights = true, nil
	return r.left.Close()
}
