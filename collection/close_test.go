package collection

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// gateConsumer is a consumer of the task whose Spill blocks until the test opens its gate: a
// barrier that holds another consumer's acquisition (the TaskManager calls Spill from inside it,
// after the collection released its lock) while the test closes the collection.
type gateConsumer struct {
	base    memory.ConsumerBase
	entered chan struct{} // closed when Spill is entered
	gate    chan struct{} // Spill returns once it is closed
	give    bool          // Spill frees everything it holds; else it frees nothing
	once    sync.Once
}

func newGateConsumer(tm *memory.TaskManager, give bool) *gateConsumer {
	c := &gateConsumer{entered: make(chan struct{}), gate: make(chan struct{}), give: give}
	c.base.Init(tm, memory.OnHeap, "gate", c)
	return c
}

func (c *gateConsumer) Spill(int64, memory.Consumer) (int64, error) {
	c.once.Do(func() { close(c.entered) })
	<-c.gate
	n := c.base.Used()
	if !c.give || n == 0 {
		return 0, nil
	}
	c.base.Free(n)
	return n, nil
}
func (c *gateConsumer) Used() int64       { return c.base.Used() }
func (c *gateConsumer) Mode() memory.Mode { return c.base.Mode() }

// closeTarget is one spillable collection under test, seen through the operations the closing
// tests need.
type closeTarget struct {
	// fill puts some records in, spilling once, and leaves the collection so that block's first
	// record asks for memory.
	fill func(ctx context.Context) error
	// block inserts records; its first memory check acquires (the collection has no free
	// allowance).
	block func(ctx context.Context) error
	// read fills the collection with records spread over several spill files and the memory,
	// and returns an iterator of it (keys only).
	read  func(ctx context.Context) (Iterator[int64], error)
	close func() error
	used  func() int64
}

// keysOf adapts an iterator of pairs to an iterator of their keys.
type keysOf[C any] struct{ Iterator[Pair[int64, C]] }

func (k keysOf[C]) Value() int64 { return k.Iterator.Value().Key }

// groupKeys adapts a grouper's iterator to its keys, reading one value of each group.
type groupKeys struct{ Iterator[Group[int64, int64]] }

func (g groupKeys) Next() bool {
	if !g.Iterator.Next() {
		return false
	}
	g.Iterator.Value().Values.Next()
	return true
}
func (g groupKeys) Value() int64 { return g.Iterator.Value().Key }

// closeTargets are the spillable collections: each is built on tm and scope with no free
// allowance, so every byte it holds is acquired.
var closeTargets = []struct {
	name string
	open func(t *testing.T, tm *memory.TaskManager, scope *storage.Scope) closeTarget
}{
	{"ExternalAppendOnlyMap", func(t *testing.T, tm *memory.TaskManager, scope *storage.Scope) closeTarget {
		m, err := NewExternalAppendOnlyMap(tm, scope, sumAgg[int64](), int64Codec, int64Codec,
			ExternalMapConfig[int64]{SpillConfig: SpillConfig{InitialThreshold: NoInitialThreshold}})
		require.NoError(t, err)
		return closeTarget{
			fill: func(ctx context.Context) error { return fillAndSpill(ctx, m.Insert, m.Spill) },
			block: func(ctx context.Context) error {
				return m.Insert(ctx, 1000, 1)
			},
			read: func(ctx context.Context) (Iterator[int64], error) {
				if err := fillSpilled(ctx, m.Insert, m.Spill); err != nil {
					return nil, err
				}
				it, err := m.Iterator(ctx)
				return keysOf[int64]{it}, err
			},
			close: m.Close, used: m.Used,
		}
	}},
	{"ExternalGrouper", func(t *testing.T, tm *memory.TaskManager, scope *storage.Scope) closeTarget {
		g, err := NewExternalGrouper(tm, scope, int64Codec, int64Codec,
			ExternalMapConfig[int64]{SpillConfig: SpillConfig{InitialThreshold: NoInitialThreshold}})
		require.NoError(t, err)
		return closeTarget{
			fill:  func(ctx context.Context) error { return fillAndSpill(ctx, g.Insert, g.Spill) },
			block: func(ctx context.Context) error { return g.Insert(ctx, 1000, 1) },
			read: func(ctx context.Context) (Iterator[int64], error) {
				if err := fillSpilled(ctx, g.Insert, g.Spill); err != nil {
					return nil, err
				}
				it, err := g.Iterator(ctx)
				return groupKeys{it}, err
			},
			close: g.Close, used: g.Used,
		}
	}},
	{"ExternalSorter with aggregation", func(t *testing.T, tm *memory.TaskManager, scope *storage.Scope) closeTarget {
		return sorterCloseTarget(t, tm, scope, true)
	}},
	{"ExternalSorter", func(t *testing.T, tm *memory.TaskManager, scope *storage.Scope) closeTarget {
		return sorterCloseTarget(t, tm, scope, false)
	}},
}

// fillAndSpill inserts checkPeriod records and forces a spill, so the next insert's memory check
// is due and a spill file exists.
func fillAndSpill(ctx context.Context, insert func(context.Context, int64, int64) error,
	spill func(int64, memory.Consumer) (int64, error)) error {
	for i := range int64(checkPeriod) {
		if err := insert(ctx, i, i); err != nil {
			return err
		}
	}
	_, err := spill(math.MaxInt64, nil)
	return err
}

// fillSpilled inserts 3 × 100 records, forcing a spill after each of the first two hundreds:
// two spill files and the in-memory rest.
func fillSpilled(ctx context.Context, insert func(context.Context, int64, int64) error,
	spill func(int64, memory.Consumer) (int64, error)) error {
	for i := range int64(300) {
		if err := insert(ctx, i, i); err != nil {
			return err
		}
		if i == 99 || i == 199 {
			if _, err := spill(math.MaxInt64, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// sorterCloseTarget is an ExternalSorter (with or without aggregation) as a closeTarget. It
// spills every checkPeriod+1 records (ForceSpillElements), 3 partitions, no ordering.
func sorterCloseTarget(t *testing.T, tm *memory.TaskManager, scope *storage.Scope, agg bool) closeTarget {
	cfg := SorterConfig[int64, int64, int64]{Spill: SpillConfig{InitialThreshold: NoInitialThreshold, ForceSpillElements: checkPeriod},
		Partitioner: modPartitioner{3}}
	if agg {
		a := sumAgg[int64]()
		cfg.Aggregator = &a
	}
	s, err := NewExternalSorter(tm, scope, int64Codec, int64Codec, cfg)
	require.NoError(t, err)
	records := func(from, n int) Iterator[Pair[int64, int64]] {
		return SliceIterator(pairsOf(n, func(i int) int64 { return int64(from + i) }, func(i int) int64 { return 1 }))
	}
	return closeTarget{
		// The record after checkPeriod spills (more than ForceSpillElements read) and starts
		// the count again, so block's checkPeriod-th record checks the memory; the forced spill
		// then empties the sorter, which gives back all it holds, its spill writer's reservation
		// included.
		fill: func(ctx context.Context) error {
			if err := s.InsertAll(ctx, records(0, checkPeriod+1)); err != nil {
				return err
			}
			_, err := s.Spill(math.MaxInt64, nil)
			return err
		},
		block: func(ctx context.Context) error { return s.InsertAll(ctx, records(1000, checkPeriod)) },
		read: func(ctx context.Context) (Iterator[int64], error) {
			if err := s.InsertAll(ctx, records(0, 3*checkPeriod)); err != nil {
				return nil, err
			}
			it, err := s.Iterator(ctx)
			return keysOf[int64]{it}, err
		},
		close: s.Close, used: s.Used,
	}
}

// catch runs f, turning a panic into an error.
func catch(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			buf := make([]byte, 4096)
			err = fmt.Errorf("panic: %v\n%s", r, buf[:runtime.Stack(buf, false)])
		}
	}()
	return f()
}

// TestCloseDuringAcquisition closes each spillable collection while one of its inserts waits
// for memory with the collection's lock released, then lets the acquisition finish: the insert
// returns ErrClosed, gives back whatever it was granted, and leaves no memory and no file.
//
// Two barriers hold the insert inside its acquisition. "spill": another consumer of the same
// task holds the whole budget, and the TaskManager asks it to spill from inside the insert's
// acquisition; its Spill blocks until the test has closed the collection, then frees everything
// (the insert is granted what it asked for) or nothing (the insert gets nothing, the case that
// would spill the closed collection). "fair share": another task holds the whole pool, so the
// insert waits for its 1/2N share; the test sees it waiting (memory's Metrics.Waiting), closes
// the collection and frees the pool.
func TestCloseDuringAcquisition(t *testing.T) {
	const budget = 1 << 20
	for _, target := range closeTargets {
		for _, barrier := range []string{"spill, granted", "spill, nothing granted", "fair share"} {
			t.Run(target.name+"/"+barrier, func(t *testing.T) {
				ctx := context.Background()
				mm, err := memory.NewUnifiedManager(memory.Config{SystemMemory: budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 1})
				require.NoError(t, err)
				tm := memory.NewTaskManager(mm, 1, memory.TaskConfig{})
				scope := newTestScope(t, nil)
				c := target.open(t, tm, scope)
				require.NoError(t, c.fill(ctx))
				require.Positive(t, scope.Files(), "fill spills")

				var (
					open    func()          // lets the acquisition go on
					cleanup func()          // frees what the barrier still holds
					blocked <-chan struct{} // closed once the acquisition is held (spill barrier)
				)
				switch barrier {
				case "fair share":
					hog := newTestConsumer(memory.NewTaskManager(mm, 2, memory.TaskConfig{}))
					require.Equal(t, int64(budget), hog.use(t, budget))
					open, cleanup = func() { hog.free(budget) }, func() {}
				default:
					gate := newGateConsumer(tm, barrier == "spill, granted")
					got, err := gate.base.Acquire(ctx, budget)
					require.NoError(t, err)
					require.Equal(t, int64(budget), got)
					blocked = gate.entered
					open = func() { close(gate.gate) }
					cleanup = func() {
						if n := gate.Used(); n > 0 {
							gate.base.Free(n)
						}
					}
				}

				var opened sync.Once // on a failure, lets the insert end
				defer opened.Do(open)
				done := make(chan error, 1)
				go func() { done <- catch(func() error { return c.block(ctx) }) }()
				if blocked != nil {
					<-blocked
				} else {
					awaitWaiting(mm, 1)
				}
				require.NoError(t, c.close())
				opened.Do(open)
				err = <-done
				require.ErrorIs(t, err, ErrClosed)
				require.NoError(t, c.close(), "a second Close")
				require.Zero(t, c.used())
				require.Zero(t, scope.Files())
				cleanup()
				require.Zero(t, mm.ExecutionUsedForTask(1))
				require.Zero(t, tm.Close(), "managed memory leak")
			})
		}
	}
}

// TestIteratorOfClosedCollection closes each spillable collection while its iterator is being
// read (over spill files and the in-memory rest): the iterator's Next returns false and its Err
// returns ErrClosed, where a normal end of data returns nil; later operations return ErrClosed.
func TestIteratorOfClosedCollection(t *testing.T) {
	for _, target := range closeTargets {
		t.Run(target.name, func(t *testing.T) {
			ctx := context.Background()
			tm := newTestTask(t, 64<<20)
			scope := newTestScope(t, nil)
			c := target.open(t, tm, scope)
			it, err := c.read(ctx)
			require.NoError(t, err)
			for range 10 {
				require.True(t, it.Next())
			}
			v := it.Value()
			closed := make(chan error)
			go func() { closed <- c.close() }() // the owner closes from another goroutine
			require.NoError(t, <-closed)
			require.Equal(t, v, it.Value(), "the value read before the owner's Close stays readable")
			require.False(t, it.Next())
			require.ErrorIs(t, it.Err(), ErrClosed)
			require.False(t, it.Next(), "stays ended")
			require.ErrorIs(t, it.Err(), ErrClosed)
			require.NoError(t, it.Close())
			require.ErrorIs(t, it.Err(), ErrClosed, "closing the iterator keeps its error")
			require.ErrorIs(t, c.block(ctx), ErrClosed)
			require.Zero(t, c.used())
			require.Zero(t, scope.Files())
		})
	}
	t.Run("ended before Close", func(t *testing.T) {
		for _, target := range closeTargets {
			tm := newTestTask(t, 64<<20)
			scope := newTestScope(t, nil)
			c := target.open(t, tm, scope)
			it, err := c.read(context.Background())
			require.NoError(t, err)
			for it.Next() {
			}
			require.NoError(t, c.close())
			require.NoError(t, it.Err(), target.name)
			require.NoError(t, it.Close(), target.name)
		}
	})
	t.Run("iterator closed before Close", func(t *testing.T) {
		for _, target := range closeTargets {
			tm := newTestTask(t, 64<<20)
			scope := newTestScope(t, nil)
			c := target.open(t, tm, scope)
			it, err := c.read(context.Background())
			require.NoError(t, err)
			require.True(t, it.Next())
			require.NoError(t, it.Close())
			require.NoError(t, c.close())
			require.False(t, it.Next())
			require.NoError(t, it.Err(), target.name)
		}
	})
}

// TestSorterPartitionIteratorOfClosedSorter closes an ExternalSorter while its
// PartitionIterator is in the middle of a partition: the partition's records and the
// PartitionIterator report ErrClosed.
func TestSorterPartitionIteratorOfClosedSorter(t *testing.T) {
	ctx := context.Background()
	for _, c := range sorterCases {
		t.Run(c.name, func(t *testing.T) {
			scope := newTestScope(t, nil)
			s := newInt64Sorter(t, newTestTask(t, 64<<20), scope, c, 3,
				SorterConfig[int64, int64, int64]{Spill: SpillConfig{InitialThreshold: NoInitialThreshold, ForceSpillElements: 100}})
			insertPairs(t, s, pairsOf(300, func(i int) int64 { return int64(i) }, func(i int) int64 { return 1 }))
			require.Positive(t, s.NumSpills())
			pi, err := s.PartitionedIterator(ctx)
			require.NoError(t, err)
			require.True(t, pi.Next())
			recs := pi.Records()
			require.True(t, recs.Next())
			require.NoError(t, s.Close())
			require.False(t, recs.Next())
			require.ErrorIs(t, recs.Err(), ErrClosed)
			require.False(t, pi.Next())
			require.ErrorIs(t, pi.Err(), ErrClosed)
			require.Zero(t, scope.Files())
		})
	}
}

// TestGroupValuesOfClosedGrouper closes an ExternalGrouper while a group's values are read:
// the values iterator and the grouper's iterator report ErrClosed.
func TestGroupValuesOfClosedGrouper(t *testing.T) {
	ctx := context.Background()
	scope := newTestScope(t, nil)
	g, err := NewExternalGrouper(newTestTask(t, 64<<20), scope, int64Codec, int64Codec, ExternalMapConfig[int64]{})
	require.NoError(t, err)
	for i := range int64(100) {
		require.NoError(t, g.Insert(ctx, 1, i))
	}
	_, err = g.Spill(math.MaxInt64, nil)
	require.NoError(t, err)
	require.NoError(t, g.Insert(ctx, 1, 100))
	it, err := g.Iterator(ctx)
	require.NoError(t, err)
	require.True(t, it.Next())
	vals := it.Value().Values
	require.True(t, vals.Next())
	require.NoError(t, g.Close())
	require.False(t, vals.Next())
	require.ErrorIs(t, vals.Err(), ErrClosed)
	require.False(t, it.Next())
	require.ErrorIs(t, it.Err(), ErrClosed)
	require.Zero(t, scope.Files())
}
