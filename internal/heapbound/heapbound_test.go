package heapbound

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/examples/pagerank/graphgen"
	"github.com/spillway/spillway/examples/pagerank/pagerank"
	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/memory/memtest"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

const (
	// budget is the memory the scenarios run with: the whole unified region (execution and
	// storage), nothing reserved. PageRank and caching run with executor.MinBudget (4 MiB),
	// where the serialized partitions are larger than the budget at both sizes.
	budget      int64 = 8 << 20
	cacheBudget       = executor.MinBudget
	// gcPercent is the GOGC the scenarios run with. memtest reads the live heap at the end of
	// every collection, so a peak between two collections can be missed by up to what was
	// allocated in between; at GOGC=25 that is a quarter of the live heap, not all of it.
	gcPercent = 25
	// smallAttempts is how many times requireBound measures the small size at most.
	smallAttempts = 3
)

// tolerance is how much more the live heap may grow on the large input than on the small one:
// a quarter of the budget plus the bound's stated slack. The scenarios run with stop-the-world
// collections (TestMain), so what memtest reads is what was reachable; what remains is a peak
// falling between two GC cycles and the size estimator's error. A heap that grew with the data
// would exceed it by far at 10× the data.
func tolerance(budget int64) int64 { return budget/4 + memtest.StrictBound(budget).Slack }

// requireBound runs work at the two sizes (the larger at least 10× the smaller), measures the
// live heap's growth during each with memtest, and requires both within
// memtest.StrictBound(budget) and the larger within tolerance(budget) of the smaller. Under the
// race detector only the small size runs, with the bound but without the flatness check.
func requireBound(t *testing.T, budget int64, sizes [2]int, work func(ctx context.Context, t *testing.T, n int) error) {
	t.Helper()
	require.GreaterOrEqual(t, sizes[1], 10*sizes[0], "the sizes must be at least 10× apart")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a safety net only
	defer cancel()
	defer debug.SetGCPercent(debug.SetGCPercent(gcPercent))
	runs := sizes[:]
	if raceEnabled {
		runs = sizes[:1]
	}
	var peaks [2]memtest.Peak
	for i, n := range runs {
		// The sampler reads the live heap on the runtime's cleanup goroutine; on a loaded
		// machine several cycles can pass before it runs, and a missed cycle may have been the
		// peak. A small run read too low would make the flatness check fail for a reason that
		// is not the library's, so the small size is measured again (at most smallAttempts
		// times, keeping the highest peak) until one run sees every cycle. The large size's
		// figure is only ever compared from above, where reading too low cannot fail a test.
		attempts := 1
		if i == 0 {
			attempts = smallAttempts
		}
		for a := 0; a < attempts; a++ {
			var err error
			p := memtest.Measure(func() { err = work(ctx, t, n) })
			require.NoError(t, err, "size %d", n)
			t.Logf("size %d: %v", n, p)
			if a == 0 || p.Growth() > peaks[i].Growth() {
				peaks[i] = p
			}
			if p.Sampled >= p.Cycles {
				break
			}
		}
	}
	bound := memtest.StrictBound(budget)
	memtest.Require(t, peaks[0], bound)
	if raceEnabled {
		t.Logf("the large size (%d) and the flatness check are skipped under the race detector", sizes[1])
		return
	}
	memtest.Require(t, peaks[1], bound)
	memtest.RequireFlat(t, peaks[0], peaks[1], tolerance(budget))
}

// env is one task's memory and disk: a UnifiedManager whose unified region is the budget, a
// TaskManager, a DiskBlockManager under t.TempDir() and a Scope for spill files.
type env struct {
	mm    *memory.UnifiedManager
	tm    *memory.TaskManager
	disk  *storage.DiskBlockManager
	scope *storage.Scope
}

func newEnv(t *testing.T, budget int64, cfg memory.Config) (*env, error) {
	cfg.SystemMemory, cfg.ReservedMemory, cfg.Fraction = budget, memory.NoReservedMemory, 1
	if cfg.NumCores == 0 {
		cfg.NumCores = 1
	}
	mm, err := memory.NewUnifiedManager(cfg)
	if err != nil {
		return nil, err
	}
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{t.TempDir()}})
	if err != nil {
		return nil, err
	}
	return &env{mm: mm, tm: memory.NewTaskManager(mm, 1, memory.TaskConfig{}), disk: disk, scope: disk.NewScope()}, nil
}

// close deletes every file and reports memory or files left over.
func (e *env) close() error {
	err := errors.Join(e.scope.Close(), e.disk.Close())
	if n := e.mm.ExecutionUsed(); n != 0 {
		err = errors.Join(err, fmt.Errorf("%d bytes of execution memory still accounted:\n%s", n, e.tm.UsageReport()))
	}
	if n := e.mm.StorageUsed(); n != 0 {
		err = errors.Join(err, fmt.Errorf("%d bytes of storage memory still accounted", n))
	}
	return err
}

// generate returns n records made by f, created as they are read: the input never sits in the
// heap.
func generate[T any](n int, f func(i int) T) collection.Iterator[T] {
	i := 0
	return storage.FuncIterator(func() (T, bool, error) {
		if i == n {
			var zero T
			return zero, false, nil
		}
		i++
		return f(i - 1), true, nil
	}, nil)
}

// drain reads it to the end, calling f on every value, and closes it.
func drain[T any](it collection.Iterator[T], f func(T) error) error {
	for it.Next() {
		if err := f(it.Value()); err != nil {
			return errors.Join(err, it.Close())
		}
	}
	return errors.Join(it.Err(), it.Close())
}

// sums drains an aggregation's output: how many keys it has and the sum of their values.
func sums[K any](it collection.Iterator[collection.Pair[K, int64]]) (distinct, total int, err error) {
	err = drain(it, func(p collection.Pair[K, int64]) error {
		distinct, total = distinct+1, total+int(p.Value)
		return nil
	})
	return distinct, total, err
}

func key(k int) string { return "key-" + strconv.Itoa(k) }

// longKey is a 48-byte key.
func longKey(k int) string { return fmt.Sprintf("key-%044d", k) }

// shortValue is a 14-byte value that depends on i: with its key, about 40 bytes in the heap.
func shortValue(i int) string { return fmt.Sprintf("value-%08x", uint64(i)*0x9e3779b97f4a7c15>>32) }

// payload is a 48-byte value that depends on i.
func payload(i int) string { return fmt.Sprintf("value-%040d", i) }

func mix(i int) int64 { return int64(uint64(i) * 0x9e3779b97f4a7c15 >> 1) }

func sum(a, b int64) int64 { return a + b }

var sumAgg = collection.Aggregator[string, int64, int64]{
	CreateCombiner: func(v int64) int64 { return v }, MergeValue: sum, MergeCombiners: sum,
}

// TestAggregatingMap: an ExternalAppendOnlyMap sums n records over n/2 string keys, seen round
// robin so every spill holds every key it saw once, and is read back merged.
func TestAggregatingMap(t *testing.T) {
	requireBound(t, budget, [2]int{400_000, 4_000_000}, func(ctx context.Context, t *testing.T, n int) (err error) {
		e, err := newEnv(t, budget, memory.Config{})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, e.close()) }()
		m, err := collection.NewExternalAppendOnlyMap(e.tm, e.scope, sumAgg, storage.StringCodec{}, storage.VarintCodec[int64]{},
			collection.ExternalMapConfig[string]{})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, m.Close()) }()
		keys := n / 2
		if err := m.InsertAll(ctx, generate(n, func(i int) collection.Pair[string, int64] {
			return collection.Pair[string, int64]{Key: key(i % keys), Value: 1}
		})); err != nil {
			return err
		}
		it, err := m.Iterator(ctx)
		if err != nil {
			return err
		}
		distinct, total, err := sums(it)
		if err != nil {
			return err
		}
		if distinct != keys || total != n || m.Metrics().Spills == 0 {
			return fmt.Errorf("read %d keys summing to %d with %d spills, want %d keys summing to %d with spills",
				distinct, total, m.Metrics().Spills, keys, n)
		}
		return nil
	})
}

// TestGrouperOneHugeKey: an ExternalGrouper groups n 48-byte values of which 9 in 10 have one
// key, so that key's values are many times the budget.
func TestGrouperOneHugeKey(t *testing.T) {
	requireBound(t, budget, [2]int{100_000, 1_000_000}, func(ctx context.Context, t *testing.T, n int) (err error) {
		e, err := newEnv(t, budget, memory.Config{})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, e.close()) }()
		g, err := collection.NewExternalGrouper(e.tm, e.scope, storage.StringCodec{}, storage.StringCodec{},
			collection.ExternalMapConfig[string]{})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, g.Close()) }()
		if err := g.InsertAll(ctx, generate(n, func(i int) collection.Pair[string, string] {
			k := "hot"
			if i%10 == 0 {
				k = key(i)
			}
			return collection.Pair[string, string]{Key: k, Value: payload(i)}
		})); err != nil {
			return err
		}
		it, err := g.Iterator(ctx)
		if err != nil {
			return err
		}
		var hot, total int
		if err := drain(it, func(gr collection.Group[string, string]) error {
			c := 0
			err := drain(gr.Values, func(string) error { c++; return nil })
			if gr.Key == "hot" {
				hot = c
			}
			total += c
			return err
		}); err != nil {
			return err
		}
		if want := n - (n+9)/10; hot != want || total != n {
			return fmt.Errorf("read %d values, %d of the hot key; want %d and %d", total, hot, n, want)
		}
		return nil
	})
}

// TestSorter: an ExternalSorter sorts n records (random int64 keys, 48-byte values) without
// aggregation and is read back in key order.
func TestSorter(t *testing.T) {
	requireBound(t, budget, [2]int{300_000, 3_000_000}, func(ctx context.Context, t *testing.T, n int) (err error) {
		e, err := newEnv(t, budget, memory.Config{})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, e.close()) }()
		s, err := collection.NewExternalSorter(e.tm, e.scope, storage.VarintCodec[int64]{}, storage.StringCodec{},
			collection.SorterConfig[int64, string, string]{Ordering: cmp.Compare[int64]})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, s.Close()) }()
		if err := s.InsertAll(ctx, generate(n, func(i int) collection.Pair[int64, string] {
			return collection.Pair[int64, string]{Key: mix(i), Value: payload(i)}
		})); err != nil {
			return err
		}
		it, err := s.Iterator(ctx)
		if err != nil {
			return err
		}
		count, last := 0, int64(-1)
		if err := drain(it, func(p collection.Pair[int64, string]) error {
			if p.Key < last {
				return fmt.Errorf("key %d after %d", p.Key, last)
			}
			count, last = count+1, p.Key
			return nil
		}); err != nil {
			return err
		}
		if count != n || s.NumSpills() == 0 {
			return fmt.Errorf("read %d records after %d spills, want %d after some", count, s.NumSpills(), n)
		}
		return nil
	})
}

// TestShuffle: a reduceByKey over n records and n/2 48-byte keys through a Runner with 2 cores
// and Spark's default shuffle settings: 2 map tasks (each with every key once) combine in their
// SortWriters' sorters, 2 reduce tasks in their readers' ExternalAppendOnlyMaps, and both sides
// spill.
func TestShuffle(t *testing.T) {
	const parts = 2
	requireBound(t, budget, [2]int{400_000, 4_000_000}, func(ctx context.Context, t *testing.T, n int) (err error) {
		e, err := newEnv(t, budget, memory.Config{NumCores: 2})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, e.close()) }()
		runner, err := shuffle.NewRunner(shuffle.RunnerConfig{Memory: e.mm, Disk: e.disk, Cores: 2, ExceptionOnMemoryLeak: true})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, runner.Close()) }()
		agg := sumAgg
		dep := &shuffle.Dependency[string, int64, int64]{
			ShuffleID:      runner.NewShuffleID(),
			Partitioner:    shuffle.NewHashPartitioner[string](parts),
			Aggregator:     &agg,
			MapSideCombine: true,
			KeyCodec:       storage.StringCodec{},
			ValueCodec:     storage.VarintCodec[int64]{},
			CombinerCodec:  storage.VarintCodec[int64]{},
		}
		keys := n / 2
		written, err := shuffle.RunMapStage(ctx, runner, dep, parts, func(ctx context.Context, tc *shuffle.TaskContext, p int) (collection.Iterator[collection.Pair[string, int64]], error) {
			return generate(n/parts, func(i int) collection.Pair[string, int64] {
				return collection.Pair[string, int64]{Key: longKey((p*n/parts + i) % keys), Value: 1}
			}), nil
		})
		if err != nil {
			return err
		}
		var mapSpills int64
		for _, m := range written {
			mapSpills += m.Spills
		}
		var distinct, total, reduceSpills [parts]int64
		if err := runner.Run(ctx, parts, func(ctx context.Context, tc *shuffle.TaskContext, p int) error {
			r, err := shuffle.NewReader(ctx, tc, dep, p)
			if err != nil {
				return err
			}
			if err := drain[collection.Pair[string, int64]](r, func(kv collection.Pair[string, int64]) error {
				distinct[p], total[p] = distinct[p]+1, total[p]+kv.Value
				return nil
			}); err != nil {
				return err
			}
			reduceSpills[p] = r.Metrics().Spills
			return nil
		}); err != nil {
			return err
		}
		var d, s, rs int64
		for p := range parts {
			d, s, rs = d+distinct[p], s+total[p], rs+reduceSpills[p]
		}
		if d != int64(keys) || s != int64(n) || mapSpills == 0 || rs == 0 {
			return fmt.Errorf("read %d keys summing to %d, %d map-side and %d reduce-side spills; want %d keys summing to %d, spills on both sides",
				d, s, mapSpills, rs, keys, n)
		}
		return runner.Registry().UnregisterShuffle(dep.ShuffleID)
	})
}

// TestCache: a partition of n records (an int64 and a 14-byte string each, about 40 bytes in
// the heap), larger than the budget at both sizes, is cached through a BlockManager at every storage level with
// GetOrElseUpdate (Spark's RDD.getOrCompute), read back while it is put, read again from the
// cache, and removed.
//
// Caching needs no budget-sized execution memory: the bound is the storage memory the block
// may take plus what unrolling and reading it hold.
func TestCache(t *testing.T) {
	levels := []string{"MEMORY_ONLY", "MEMORY_ONLY_SER", "MEMORY_AND_DISK", "MEMORY_AND_DISK_SER", "DISK_ONLY", "OFF_HEAP"}
	for _, lv := range levels {
		t.Run(lv, func(t *testing.T) {
			level, err := storage.ParseLevel(lv)
			require.NoError(t, err)
			requireBound(t, cacheBudget, [2]int{300_000, 3_000_000}, func(ctx context.Context, t *testing.T, n int) error {
				_, err := cachePartition(ctx, t, level, n)
				return err
			})
		})
	}
}

// TestCacheFits: as TestCache, with deserialized partitions that fit in the budget at both
// sizes (7,000 and 70,000 records, about 0.3 and 2.8 MB of values in 4 MiB): they must be
// cached in memory, values and all, within the bound. The larger one would not have been
// cached by an unroll that doubles one array of values, which holds the old and the new array
// at once.
func TestCacheFits(t *testing.T) {
	for _, lv := range []string{"MEMORY_ONLY", "MEMORY_AND_DISK"} {
		t.Run(lv, func(t *testing.T) {
			level, err := storage.ParseLevel(lv)
			require.NoError(t, err)
			requireBound(t, cacheBudget, [2]int{7_000, 70_000}, func(ctx context.Context, t *testing.T, n int) error {
				inMemory, err := cachePartition(ctx, t, level, n)
				if err == nil && !inMemory {
					err = fmt.Errorf("a partition of %d records was not cached in memory at %s", n, lv)
				}
				return err
			})
		})
	}
}

// cachePartition caches a partition of n records at level through a BlockManager with
// GetOrElseUpdate, reads it back while it is put and again from the cache, and removes it. It
// reports whether the block was in memory (and only there) once cached.
func cachePartition(ctx context.Context, t *testing.T, level storage.Level, n int) (inMemory bool, err error) {
	type record = storage.Pair[int64, string]
	codec := storage.NewPairCodec[int64, string](storage.VarintCodec[int64]{}, storage.StringCodec{})
	cfg := memory.Config{}
	if level.UseOffHeap() {
		cfg.OffHeapSize = cacheBudget // the off-heap pool, outside the Go heap
	}
	e, err := newEnv(t, cacheBudget, cfg)
	if err != nil {
		return false, err
	}
	defer func() { err = errors.Join(err, e.close()) }()
	bm, err := storage.NewBlockManager(storage.Config{Memory: e.mm, Disk: e.disk})
	if err != nil {
		return false, err
	}
	defer func() { err = errors.Join(err, bm.Close()) }()
	id, task := storage.RDDBlockID(0, 0), memory.TaskID(1)
	defer func() { err = errors.Join(err, bm.EndTask(task)) }()
	count := func(it storage.Iterator[record]) (int, error) {
		c := 0
		err := drain(it, func(r record) error {
			if r.Key != int64(c) {
				return fmt.Errorf("record %d has key %d", c, r.Key)
			}
			c++
			return nil
		})
		return c, err
	}
	it, cached, err := storage.GetOrElseUpdate(ctx, bm, task, id, level, codec, func() (storage.Iterator[record], error) {
		return generate(n, func(i int) record { return record{Key: int64(i), Value: shortValue(i)} }), nil
	})
	if err != nil {
		return false, err
	}
	if c, err := count(it); err != nil || c != n {
		return false, errors.Join(err, fmt.Errorf("read %d records while caching, want %d", c, n))
	}
	if cached {
		st, _ := bm.Status(id)
		inMemory = st.InMemory && !st.OnDisk
		it, ok, err := storage.GetLocalValues(ctx, bm, task, id, codec)
		if err != nil || !ok {
			return false, errors.Join(err, fmt.Errorf("cached block %v not found", id))
		}
		if c, err := count(it); err != nil || c != n {
			return false, errors.Join(err, fmt.Errorf("read %d records from the cache, want %d", c, n))
		}
	}
	_, err = bm.Remove(ctx, task, id)
	return inMemory, err
}

// TestPageRank: PageRank (examples/pagerank/pagerank) on a generated power-law graph with the links
// cached MEMORY_AND_DISK_SER, 3 iterations on 2 cores and 2 partitions, in executor.MinBudget
// (4 MiB).
func TestPageRank(t *testing.T) {
	requireBound(t, executor.MinBudget, [2]int{200_000, 2_000_000}, func(ctx context.Context, t *testing.T, n int) (err error) {
		ex, err := executor.New(executor.Config{Budget: executor.MinBudget, Cores: 2, Dirs: []string{t.TempDir()}})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, ex.Close()) }()
		res, err := pagerank.Run(ctx, ex, pagerank.Config{
			Graph:      graphgen.Config{Vertices: int64(n / 10), Edges: int64(n), Seed: 1},
			Iterations: 3,
			Partitions: 2,
			Level:      storage.MemoryAndDiskSer,
		})
		if err != nil {
			return err
		}
		if res.Vertices == 0 {
			return fmt.Errorf("ranked no pages")
		}
		t.Logf("%d edges: %d pages ranked, %d spills", n, res.Vertices, res.Stats.Spills)
		return ex.Leaks()
	})
}

// TestJoin: an inner join (executor.Join) of n rows (an int64 key, an int64 value) with n/5 rows
// (the key and a 48-byte payload), every left key matching one right key, on 2 cores and 4
// partitions in the budget. Both sides are larger than the budget at both sizes, so the right
// side is not broadcast: both are shuffled and cogrouped in spilling maps.
func TestJoin(t *testing.T) {
	requireBound(t, budget, [2]int{300_000, 3_000_000}, join(2, 4, nil))
}

// TestJoinFourTasks: the join of TestJoin on 4 cores and 4 partitions, so four tasks share the
// budget. The bound must hold whatever the interleaving, so the test makes the worst one
// certain rather than likely: every task of every stage (the broadcast attempt, both map
// stages, the reduce stage) waits at a barrier until all four run, the map tasks before they
// read their first record and the reduce tasks once their cogroup maps hold their partition,
// before reading them.
func TestJoinFourTasks(t *testing.T) {
	const tasks = 4
	requireBound(t, budget, [2]int{150_000, 1_500_000}, join(tasks, tasks, newBarrier(tasks)))
}

// join returns the work of a join scenario on cores cores and parts partitions; every task
// waits at b (if not nil) when it starts reading its input or its joined rows.
func join(cores, parts int, b *barrier) func(ctx context.Context, t *testing.T, n int) error {
	return func(ctx context.Context, t *testing.T, n int) (err error) {
		ex, err := executor.New(executor.Config{Budget: budget, Cores: cores, Dirs: []string{t.TempDir()}})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, ex.Close()) }()
		keys := n / 5
		left := executor.Input[int64, int64]{Partitions: parts, Codec: storage.VarintCodec[int64]{},
			Read: func(ctx context.Context, _ *shuffle.TaskContext, p int) (collection.Iterator[collection.Pair[int64, int64]], error) {
				if err := b.wait(ctx); err != nil {
					return nil, err
				}
				return generate(n/parts, func(i int) collection.Pair[int64, int64] {
					j := p*(n/parts) + i
					return collection.Pair[int64, int64]{Key: int64(j % keys), Value: int64(j)}
				}), nil
			}}
		right := executor.Input[int64, string]{Partitions: parts, Codec: storage.StringCodec{},
			Read: func(ctx context.Context, _ *shuffle.TaskContext, p int) (collection.Iterator[collection.Pair[int64, string]], error) {
				if err := b.wait(ctx); err != nil {
					return nil, err
				}
				return generate(keys/parts, func(i int) collection.Pair[int64, string] {
					k := p*(keys/parts) + i
					return collection.Pair[int64, string]{Key: int64(k), Value: payload(k)}
				}), nil
			}}
		var rows, bad atomic.Int64
		stats, err := executor.Join(ctx, ex, executor.JoinConfig[int64]{Partitioning: executor.Partitioning[int64]{KeyCodec: storage.VarintCodec[int64]{}, Partitions: parts}}, left, right,
			func(ctx context.Context, _ *shuffle.TaskContext, _ int, it collection.Iterator[executor.Row[int64, int64, string]]) error {
				if err := b.wait(ctx); err != nil {
					return err
				}
				return drain(it, func(r executor.Row[int64, int64, string]) error {
					rows.Add(1)
					if r.Left%int64(keys) != r.Key || r.Right != payload(int(r.Key)) {
						bad.Add(1)
					}
					return nil
				})
			})
		if err != nil {
			return err
		}
		if stats.Strategy != executor.ShuffleJoin || rows.Load() != int64(n) || bad.Load() != 0 || stats.Spills == 0 {
			return fmt.Errorf("%v gave %d rows (%d wrong) and %d spills, want a shuffle join of %d rows that spills", stats.Strategy, rows.Load(), bad.Load(), stats.Spills, n)
		}
		return ex.Leaks()
	}
}

// barrier holds its callers until n of them wait, releases them together and starts a new round.
// A nil barrier does not wait.
type barrier struct {
	n       int
	mu      sync.Mutex
	waiting int
	release chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, release: make(chan struct{})} }

// wait returns when the round's n-th caller arrives, or with ctx's error when ctx ends first (a
// failed task cancels its stage's context, so the others do not wait for it forever).
func (b *barrier) wait(ctx context.Context) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	release := b.release
	if b.waiting++; b.waiting == b.n {
		close(release)
		b.waiting, b.release = 0, make(chan struct{})
	}
	b.mu.Unlock()
	select {
	case <-release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
