package pagerank

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"weak"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/examples/pagerank/graphgen"
	"github.com/spillway/spillway/examples/stream"
	"github.com/spillway/spillway/examples/topk"
	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

// Defaults of Config.
const (
	// DefaultIterations is the number of iterations of Spark's example.
	DefaultIterations = 10
	// DefaultTop is the number of highest ranks Result.Top lists.
	DefaultTop = 10
)

// Config describes one PageRank run. Its zero value runs Spark's example on the default
// generated graph.
type Config struct {
	// Graph is the generated graph, used when Edges is nil.
	Graph graphgen.Config
	// Edges, if not nil, is the graph (an edge list read from a file) instead of Graph.
	Edges []graphgen.Edge
	// Iterations is the number of PageRank iterations; 0 means DefaultIterations.
	Iterations int
	// Partitions is the number of input splits and of partitions of every shuffle; 0 means
	// twice the executor's cores.
	Partitions int
	// Level is the storage level the links are cached with (Spark's example calls cache(), which
	// is MEMORY_ONLY). The zero Level means MEMORY_ONLY.
	Level storage.Level
	// Top is the number of highest ranks Result.Top lists; 0 means DefaultTop.
	Top int
	// CollectRanks makes Result.Ranks hold every page's rank (Spark's ranks.collect()).
	CollectRanks bool
	// Observer, if set, receives the tasks' events.
	Observer *Observer
	// Fault, if set, is called by the job's map functions for every record they process (the
	// edge reader of PhaseEdges and the contribution emitter of PhaseContribute); an error it
	// returns fails the task, and the run. A fault-injection hook for tests.
	Fault func(Event) error
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c Config) Validate() error {
	var errs []error
	if c.Iterations < 0 {
		errs = append(errs, fmt.Errorf("pagerank: Config.Iterations %d is negative", c.Iterations))
	}
	if c.Partitions < 0 {
		errs = append(errs, fmt.Errorf("pagerank: Config.Partitions %d is negative", c.Partitions))
	}
	switch {
	case c.Level != 0 && !c.Level.Valid():
		errs = append(errs, fmt.Errorf("pagerank: Config.Level %v is not a valid storage level", c.Level))
	case c.Level != 0 && !c.Level.UseMemory() && !c.Level.UseDisk():
		errs = append(errs, fmt.Errorf("pagerank: Config.Level %v stores nothing; links must be cached", c.Level))
	}
	if c.Top < 0 {
		errs = append(errs, fmt.Errorf("pagerank: Config.Top %d is negative", c.Top))
	}
	if c.Edges == nil {
		if err := c.Graph.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("pagerank: Config.Graph: %w", err))
		}
	}
	return errors.Join(errs...)
}

// VertexRank is a page and its rank.
type VertexRank struct {
	Vertex int64
	Rank   float64
}

// Result is what Run returns.
type Result struct {
	// Top lists the highest ranks, highest first (ties by vertex id).
	Top []VertexRank
	// Ranks holds every page's rank when Config.CollectRanks is set.
	Ranks map[int64]float64
	// Vertices is the number of ranked pages.
	Vertices int64
	// Partitions is the number of partitions the run used.
	Partitions int
	// Stats are the run's task metrics.
	Stats Stats
}

// Stats sums the metrics of a run's tasks, with Spark's task metric names where they exist.
type Stats struct {
	// Tasks is the number of tasks run.
	Tasks int
	// PeakTaskExecution is the most execution memory one task held at once (the largest
	// peakExecutionMemory of a task).
	PeakTaskExecution int64
	// Spills counts the spills of every collection (own and forced); JoinForcedSpills counts the
	// join maps force-spilled while being read (the SPARK-22713 path).
	Spills           int64
	JoinForcedSpills int64
	// MemoryBytesSpilled and DiskBytesSpilled sum the tasks' spill metrics.
	MemoryBytesSpilled int64
	DiskBytesSpilled   int64
	// ShuffleRecordsWritten and ShuffleBytesWritten sum the map tasks' shuffle writes.
	ShuffleRecordsWritten int64
	ShuffleBytesWritten   int64
	// LinksComputed counts links partitions computed from the links shuffle (the first
	// iteration, and every cache miss after it).
	LinksComputed int64
}

// job is one Run.
type job struct {
	cfg    Config
	ex     *executor.Executor
	runner *shuffle.Runner
	parts  int
	gen    *graphgen.Generator

	linksDep *shuffle.Dependency[int64, int64, []int64]

	mu       sync.Mutex
	stats    Stats
	shuffles []int // registered shuffles, unregistered when the run ends
}

// Run runs Spark's PageRank example on ex:
//
//	links = edges.distinct().groupByKey().persist(Level)
//	ranks = links.mapValues(_ => 1.0)
//	for i <- 1 to Iterations:
//	    contribs = links.join(ranks).values.flatMap { (urls, rank) => urls.map(url => (url, rank / urls.size)) }
//	    ranks = contribs.reduceByKey(_ + _).mapValues(0.15 + 0.85 * _)
//
// as stages of ex's Runner. The links stage shuffles the edges by source. Each iteration is one
// stage whose task p joins links partition p with the contributions of the previous iteration —
// an executor.CoGroupMap (a spillable map of two inputs, Spark's CoGroupedRDD) — and, while reading that
// map, writes the new contributions through a SortWriter that sums them by destination on the
// map side: two aggregations in one task, the first holding most of the task's memory while
// the second fills (SPARK-22713's workload). A last stage sums the contributions into ranks.
//
// Every shuffle the run registered is unregistered and every cached links block removed when
// Run returns, on success and on error, so no files and no memory stay accounted. A cancelled
// ctx ends the run with ctx.Err().
func Run(ctx context.Context, ex *executor.Executor, cfg Config) (res *Result, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Iterations == 0 {
		cfg.Iterations = DefaultIterations
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 2 * ex.Config().Cores
	}
	if cfg.Level == 0 {
		cfg.Level = storage.NewLevel(false, true, false, true, 1) // MEMORY_ONLY
	}
	if cfg.Top == 0 {
		cfg.Top = DefaultTop
	}
	j := &job{cfg: cfg, ex: ex, runner: ex.Runner, parts: cfg.Partitions}
	if cfg.Edges == nil {
		if j.gen, err = graphgen.New(cfg.Graph); err != nil {
			return nil, fmt.Errorf("pagerank: %w", err)
		}
	}
	defer func() { err = errors.Join(err, j.cleanup()) }()

	part := shuffle.NewHashPartitioner[int64](j.parts)
	j.linksDep = &shuffle.Dependency[int64, int64, []int64]{
		ShuffleID: j.runner.NewShuffleID(), Partitioner: part, Aggregator: groupAggregator(),
		KeyCodec: vertexCodec{}, ValueCodec: vertexCodec{}, CombinerCodec: linksCodec(),
	}
	if err := runMapStage(ctx, j, j.linksDep, j.edges); err != nil {
		return nil, fmt.Errorf("pagerank: links stage: %w", err)
	}
	var prev *shuffle.Dependency[int64, float64, float64]
	for it := 1; it <= cfg.Iterations; it++ {
		dep := &shuffle.Dependency[int64, float64, float64]{
			ShuffleID: j.runner.NewShuffleID(), Partitioner: part, Aggregator: sumAggregator(), MapSideCombine: true,
			KeyCodec: vertexCodec{}, ValueCodec: rankCodec{}, CombinerCodec: rankCodec{},
		}
		input := func(ctx context.Context, tc *shuffle.TaskContext, p int) (collection.Iterator[collection.Pair[int64, float64]], error) {
			return j.contributions(ctx, tc, p, it, prev)
		}
		if err := runMapStage(ctx, j, dep, input); err != nil {
			return nil, fmt.Errorf("pagerank: iteration %d: %w", it, err)
		}
		if prev != nil {
			if err := j.unregister(prev.ShuffleID); err != nil {
				return nil, err
			}
		}
		prev = dep
	}
	res, err = j.ranks(ctx, prev)
	if err != nil {
		return nil, fmt.Errorf("pagerank: ranks stage: %w", err)
	}
	j.mu.Lock()
	res.Stats = j.stats
	j.mu.Unlock()
	res.Partitions = j.parts
	return res, nil
}

// cleanup removes the cached links blocks (Spark's unpersist) and unregisters the run's
// shuffles (deleting their files).
func (j *job) cleanup() error {
	j.mu.Lock()
	ids := slices.Clone(j.shuffles)
	j.mu.Unlock()
	var errs []error
	if j.linksDep != nil {
		for p := range j.parts {
			// The run's tasks have ended, so no lock is held and removal does not wait.
			_, err := j.ex.Blocks.Remove(context.Background(), storage.NonTaskID, j.linksBlock(p))
			errs = append(errs, err)
		}
	}
	for _, id := range ids {
		errs = append(errs, j.unregister(id))
	}
	return errors.Join(errs...)
}

func (j *job) unregister(id int) error {
	j.mu.Lock()
	i := slices.Index(j.shuffles, id)
	if i >= 0 {
		j.shuffles = slices.Delete(j.shuffles, i, i+1)
	}
	j.mu.Unlock()
	if i < 0 {
		return nil
	}
	return j.runner.Registry().UnregisterShuffle(id)
}

// runMapStage runs the map stage of dep, whose map task p writes the records input returns for
// it, and records the tasks' metrics. The shuffle is unregistered by cleanup (or by
// shuffle.RunMapStage when the stage fails).
func runMapStage[K comparable, V, C any](ctx context.Context, j *job, dep *shuffle.Dependency[K, V, C], input shuffle.MapInput[K, V]) error {
	metrics, err := shuffle.RunMapStage(ctx, j.runner, dep, j.parts, func(ctx context.Context, tc *shuffle.TaskContext, p int) (collection.Iterator[collection.Pair[K, V]], error) {
		tc.AddCompletionListener(func() error { j.endTask(tc); return nil })
		return input(ctx, tc, p)
	})
	for _, m := range metrics {
		j.add(Stats{
			Spills: m.Spills, MemoryBytesSpilled: m.MemoryBytesSpilled, DiskBytesSpilled: m.DiskBytesSpilled,
			ShuffleRecordsWritten: m.RecordsWritten, ShuffleBytesWritten: m.BytesWritten,
		})
	}
	if err != nil {
		return err
	}
	j.mu.Lock()
	j.shuffles = append(j.shuffles, dep.ShuffleID)
	j.mu.Unlock()
	return nil
}

// add adds metrics to the run's.
func (j *job) add(s Stats) {
	j.mu.Lock()
	defer j.mu.Unlock()
	t := &j.stats
	t.Spills += s.Spills
	t.JoinForcedSpills += s.JoinForcedSpills
	t.MemoryBytesSpilled += s.MemoryBytesSpilled
	t.DiskBytesSpilled += s.DiskBytesSpilled
	t.ShuffleRecordsWritten += s.ShuffleRecordsWritten
	t.ShuffleBytesWritten += s.ShuffleBytesWritten
	t.LinksComputed += s.LinksComputed
}

// endTask counts a task that completed and its peak execution memory.
func (j *job) endTask(tc *shuffle.TaskContext) {
	peak := tc.TaskManager().PeakExecution(memory.OnHeap)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.stats.Tasks++
	j.stats.PeakTaskExecution = max(j.stats.PeakTaskExecution, peak)
}

// readStats are a reader's spill metrics.
func readStats(m shuffle.ReadMetrics) Stats {
	return Stats{Spills: m.Spills, MemoryBytesSpilled: m.MemoryBytesSpilled, DiskBytesSpilled: m.DiskBytesSpilled}
}

// edges is the input of links-stage map task p: its split of the edges as (src, dst) records.
func (j *job) edges(ctx context.Context, tc *shuffle.TaskContext, p int) (collection.Iterator[collection.Pair[int64, int64]], error) {
	var seq iter.Seq[graphgen.Edge]
	if j.gen != nil {
		seq = j.gen.Split(p, j.parts)
	} else {
		from, to := stream.SplitRange(int64(len(j.cfg.Edges)), p, j.parts)
		seq = slices.Values(j.cfg.Edges[from:to])
	}
	ob := newObserver(j.cfg.Observer, j.cfg.Fault, PhaseEdges, 0, p, tc.TaskManager())
	next, stop := iter.Pull(batches(seq, make([]graphgen.Edge, 0, edgeBatch)))
	var batch []graphgen.Edge
	return storage.FuncIterator(func() (collection.Pair[int64, int64], bool, error) {
		for len(batch) == 0 {
			var ok bool
			if batch, ok = next(); !ok {
				return collection.Pair[int64, int64]{}, false, nil
			}
		}
		e := batch[0]
		batch = batch[1:]
		if err := ob.record(); err != nil {
			return collection.Pair[int64, int64]{}, false, err
		}
		return collection.Pair[int64, int64]{Key: e.Src, Value: e.Dst}, true, nil
	}, func() error { stop(); return nil }), nil
}

// edgeBatch is the number of edges a links-stage map task takes from its input at a time.
const edgeBatch = 256

// batches groups seq into slices of up to cap(buf) elements, refilling buf: pulling from it
// switches between the puller and seq's coroutine once per batch instead of once per element.
// A batch is valid until the next one is pulled.
func batches[T any](seq iter.Seq[T], buf []T) iter.Seq[[]T] {
	return func(yield func([]T) bool) {
		b := buf[:0]
		for v := range seq {
			if b = append(b, v); len(b) == cap(b) {
				if !yield(b) {
					return
				}
				b = b[:0]
			}
		}
		if len(b) > 0 {
			yield(b)
		}
	}
}

// linksBlock is the cached block of links partition p (Spark's rdd_<id>_<p>); the links
// shuffle's id serves as the links RDD's id, unique in the runner.
func (j *job) linksBlock(p int) storage.BlockID {
	return storage.RDDBlockID(j.linksDep.ShuffleID, p)
}

// links returns links partition p — each source with its distinct destinations in increasing
// order (distinct + groupByKey) — from the block manager, which computes it from the links
// shuffle and stores it at Config.Level when it is not cached (Spark's getOrElseUpdate).
func (j *job) links(ctx context.Context, tc *shuffle.TaskContext, p int) (collection.Iterator[storage.Pair[int64, []int64]], error) {
	codec := storage.NewPairCodec[int64, []int64](vertexCodec{}, linksCodec())
	it, _, err := storage.GetOrElseUpdate(ctx, tc.Blocks(), tc.ID(), j.linksBlock(p), j.cfg.Level, codec, func() (storage.Iterator[storage.Pair[int64, []int64]], error) {
		return j.computeLinks(ctx, tc, p)
	})
	if err != nil {
		return nil, fmt.Errorf("pagerank: links partition %d: %w", p, err)
	}
	return it, nil
}

// computeLinks reads links partition p from the links shuffle.
func (j *job) computeLinks(ctx context.Context, tc *shuffle.TaskContext, p int) (storage.Iterator[storage.Pair[int64, []int64]], error) {
	r, err := shuffle.NewReader(ctx, tc, j.linksDep, p)
	if err != nil {
		return nil, err
	}
	j.add(Stats{LinksComputed: 1})
	return storage.FuncIterator(func() (storage.Pair[int64, []int64], bool, error) {
		if !r.Next() {
			return storage.Pair[int64, []int64]{}, false, r.Err()
		}
		kv := r.Value()
		slices.Sort(kv.Value)
		if kv.Value = slices.Compact(kv.Value); cap(kv.Value) > len(kv.Value) {
			// A copy of exactly the destinations: the grouped slice's spare capacity would stay
			// in the heap unseen by the size estimates of the cache and the join map.
			kv.Value = slices.Clone(kv.Value)
		}
		return kv, true, nil
	}, func() error {
		j.add(readStats(r.Metrics()))
		return r.Close()
	}), nil
}

// contributions is the input of task p of iteration it: it joins links partition p with the
// previous iteration's contributions (prev, nil in the first iteration, where every page with
// links has rank 1) in an executor.CoGroupMap, and returns an iterator that reads the map and
// emits (destination, rank / out-degree) for every link of every page present on both sides.
func (j *job) contributions(ctx context.Context, tc *shuffle.TaskContext, p, it int, prev *shuffle.Dependency[int64, float64, float64]) (_ collection.Iterator[collection.Pair[int64, float64]], err error) {
	tm := tc.TaskManager()
	ob := newObserver(j.cfg.Observer, nil, PhaseJoin, it, p, tm)
	cfg := executor.CoGroupMapConfig[int64, JoinValue]{Name: fmt.Sprintf("join of iteration %d", it)}
	if o := j.cfg.Observer; o != nil && o.JoinCombiner != nil {
		cfg.Created = func(g [][]JoinValue) { o.JoinCombiner(ob.ev, weak.Make(&g[0])) }
	}
	m, err := executor.NewCoGroupMap(tc, vertexCodec{},
		[]storage.Codec[JoinValue]{linksInput: linksSideCodec{}, ranksInput: contribSideCodec{}}, cfg)
	if err != nil {
		return nil, err
	}
	// Both inputs go in through InsertAll, as CoGroupedRDD calls insertAll on each dependency's
	// iterator: batched, one acquisition of the map's lock per batch.
	links, err := j.links(ctx, tc, p)
	if err != nil {
		return nil, err
	}
	err = m.InsertAll(ctx, linksInput, joinInput(links, ob, func(kv storage.Pair[int64, []int64]) (int64, JoinValue) {
		return kv.Key, JoinValue{Links: kv.Value}
	}))
	if err != nil {
		return nil, err
	}
	if prev != nil {
		raw := &shuffle.Dependency[int64, float64, float64]{ // the contributions as written: partial sums
			ShuffleID: prev.ShuffleID, Partitioner: prev.Partitioner, KeyCodec: vertexCodec{}, ValueCodec: rankCodec{},
		}
		ranks, err := shuffle.NewReader(ctx, tc, raw, p)
		if err != nil {
			return nil, err
		}
		err = m.InsertAll(ctx, ranksInput, joinInput[collection.Pair[int64, float64]](ranks, ob, func(kv collection.Pair[int64, float64]) (int64, JoinValue) {
			return kv.Key, JoinValue{Contribution: kv.Value}
		}))
		j.add(readStats(ranks.Metrics()))
		if err != nil {
			return nil, err
		}
	}
	// The map is not read yet: its iterator, which under strict accounting acquires its spill
	// readers' buffers (as much of the task's share as their files need), is taken at the first
	// Next, after the shuffle writer pulling from the emitter acquired its output buffers.
	e := &emitter{
		j: j, m: m, ctx: ctx, first: it == 1,
		ob: newObserver(j.cfg.Observer, j.cfg.Fault, PhaseContribute, it, p, tm),
	}
	return e, nil
}

// joinInput returns the records of one input of the join as join-map pairs (f converts each),
// counting every record read on ob.
func joinInput[T any](it collection.Iterator[T], ob *observer, f func(T) (int64, JoinValue)) collection.Iterator[collection.Pair[int64, JoinValue]] {
	return storage.FuncIterator(func() (collection.Pair[int64, JoinValue], bool, error) {
		if !it.Next() {
			return collection.Pair[int64, JoinValue]{}, false, it.Err()
		}
		if err := ob.record(); err != nil {
			return collection.Pair[int64, JoinValue]{}, false, err
		}
		k, v := f(it.Value())
		return collection.Pair[int64, JoinValue]{Key: k, Value: v}, true, nil
	}, it.Close)
}

// drain reads it to the end, calling f for each element, and closes it.
func drain[T any](it collection.Iterator[T], f func(T) error) error {
	defer it.Close()
	for it.Next() {
		if err := f(it.Value()); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	return it.Close()
}

// emitter reads the join map and emits contributions: the flatMap of Spark's example. It is
// the records iterator of the iteration's shuffle writer, which pulls from it while its sorter
// fills, so the join map is being read while the second aggregation grows.
type emitter struct {
	j      *job
	m      *executor.CoGroupMap[int64, JoinValue]
	ctx    context.Context
	joined collection.Iterator[collection.Pair[int64, [][]JoinValue]] // nil until the first Next
	first  bool
	ob     *observer

	links  []int64 // destinations of the current page not yet emitted
	share  float64
	cur    collection.Pair[int64, float64]
	forced int64 // forced spills of the join map seen so far
	err    error
	done   bool
}

func (e *emitter) Next() bool {
	if e.done {
		return false
	}
	if e.joined == nil {
		// Under strict accounting the map's merge holds readers of its spill files, which
		// cannot spill, but at most half of the task's share of memory (see collection's
		// "Merge memory and bounded merges"): the contributions' aggregation filling from it
		// keeps room.
		joined, err := e.m.Iterator(e.ctx)
		if err != nil {
			e.err, e.done = err, true
			return false
		}
		e.joined = joined
	}
	for len(e.links) == 0 {
		if !e.joined.Next() {
			// Done with the join: its memory goes back to the task before the writer's sorter
			// merges its own spills.
			e.err = errors.Join(e.joined.Err(), e.Close())
			return false
		}
		e.checkForcedSpill()
		page := e.joined.Value().Value
		links, ranks := page[linksInput], page[ranksInput]
		if len(links) == 0 || (!e.first && len(ranks) == 0) {
			continue // not in both links and ranks: the inner join drops it
		}
		rank := 1.0
		if !e.first {
			var sum float64
			for _, c := range ranks {
				sum += c.Contribution
			}
			rank = (1 - Damping) + Damping*sum
		}
		e.links, e.share = links[0].Links, rank/float64(len(links[0].Links))
	}
	e.cur = collection.Pair[int64, float64]{Key: e.links[0], Value: e.share}
	e.links = e.links[1:]
	if err := e.ob.record(); err != nil {
		e.err, e.done = err, true
		return false
	}
	return true
}

// checkForcedSpill tells the observer when the join map was force-spilled since the last record.
func (e *emitter) checkForcedSpill() {
	o := e.j.cfg.Observer
	if o == nil || o.JoinForcedSpill == nil {
		return
	}
	if n := e.m.Metrics().ForcedSpills; n > e.forced {
		e.forced = n
		o.JoinForcedSpill(e.ob.ev)
	}
}

func (e *emitter) Value() collection.Pair[int64, float64] { return e.cur }
func (e *emitter) Err() error                             { return e.err }

// Close closes the join map (releasing its memory and deleting its spills) and records its
// metrics.
func (e *emitter) Close() error {
	if e.m == nil {
		return nil
	}
	e.done, e.links = true, nil
	e.checkForcedSpill() // one while the last page was read
	var err error
	if e.joined != nil {
		err = e.joined.Close()
	}
	err = errors.Join(err, e.m.Close())
	s := e.m.Metrics()
	e.j.add(Stats{Spills: s.Spills + s.ForcedSpills, JoinForcedSpills: s.ForcedSpills,
		MemoryBytesSpilled: s.MemoryBytesSpilled, DiskBytesSpilled: s.DiskBytesSpilled})
	e.m, e.joined = nil, nil
	return err
}

// ranks runs the last stage: task p sums the contributions of partition p of the last
// iteration's shuffle into ranks.
func (j *job) ranks(ctx context.Context, dep *shuffle.Dependency[int64, float64, float64]) (*Result, error) {
	res := &Result{}
	if j.cfg.CollectRanks {
		res.Ranks = map[int64]float64{}
	}
	var mu sync.Mutex
	err := j.runner.Run(ctx, j.parts, func(ctx context.Context, tc *shuffle.TaskContext, p int) error {
		r, err := shuffle.NewReader(ctx, tc, dep, p)
		if err != nil {
			return err
		}
		ob := newObserver(j.cfg.Observer, nil, PhaseRanks, j.cfg.Iterations+1, p, tc.TaskManager())
		top := make([]VertexRank, 0, j.cfg.Top+1)
		var n int64
		var all []VertexRank
		err = drain[collection.Pair[int64, float64]](r, func(kv collection.Pair[int64, float64]) error {
			v := VertexRank{Vertex: kv.Key, Rank: (1 - Damping) + Damping*kv.Value}
			n++
			top = topk.Push(top, v, j.cfg.Top, higher)
			if j.cfg.CollectRanks {
				all = append(all, v)
			}
			return ob.record()
		})
		j.add(readStats(r.Metrics()))
		if err != nil {
			return err
		}
		j.endTask(tc)
		mu.Lock()
		defer mu.Unlock()
		res.Vertices += n
		for _, v := range top {
			res.Top = topk.Push(res.Top, v, j.cfg.Top, higher)
		}
		for _, v := range all {
			res.Ranks[v.Vertex] = v.Rank
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// higher orders ranks highest first, ties by vertex id.
func higher(a, b VertexRank) int {
	if c := cmp.Compare(b.Rank, a.Rank); c != 0 {
		return c
	}
	return cmp.Compare(a.Vertex, b.Vertex)
}
