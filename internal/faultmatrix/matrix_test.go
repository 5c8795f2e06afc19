package faultmatrix

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
	"github.com/spillway/spillway/storage/faultfs"
)

const (
	seedEnv = "SPILLWAY_FAULT_SEED" // base seed of the random runs
	runsEnv = "SPILLWAY_FAULT_RUNS" // random runs per workload
	longEnv = "SPILLWAY_FAULT_LONG" // sweep every call position, more random runs
)

// The workloads' data: records pairs, spilled every forceSpill elements (six spills or so), so
// spills do not depend on memory estimates.
const (
	records    = 2400
	keys       = 300
	forceSpill = records / 6
	mapTasks   = 3 // shuffle map tasks
	partitions = 4 // shuffle reduce partitions (bypass-merge: at most the threshold)
)

var (
	int64Codec storage.Codec[int64] = storage.VarintCodec[int64]{}
	sumAgg                          = collection.Aggregator[int64, int64, int64]{
		CreateCombiner: func(v int64) int64 { return v },
		MergeValue:     func(c, v int64) int64 { return c + v },
		MergeCombiners: func(a, b int64) int64 { return a + b },
	}
	spillConfig = collection.SpillConfig{ForceSpillElements: forceSpill, BatchSize: 64}
)

// input returns records pairs (key, value) with keys in [0, keys) and the sum per key.
func input(n int) ([]collection.Pair[int64, int64], map[int64]int64) {
	in := make([]collection.Pair[int64, int64], n)
	sums := map[int64]int64{}
	for i := range in {
		k := int64(i*7919) % keys
		in[i] = collection.Pair[int64, int64]{Key: k, Value: int64(i)}
		sums[k] += int64(i)
	}
	return in, sums
}

// wrongError is a wrong result: always a failure of the cell.
type wrongError struct{ msg string }

func (e *wrongError) Error() string { return "WRONG RESULT: " + e.msg }

func wrongf(format string, args ...any) error { return &wrongError{fmt.Sprintf(format, args...)} }

// env is what one run of a workload gets.
type env struct {
	fs  *faultfs.FS
	mm  *memory.UnifiedManager
	dm  *storage.DiskBlockManager
	tms []*memory.TaskManager
}

// task returns a new TaskManager, checked for leaks after the run.
func (e *env) task() *memory.TaskManager {
	tm := memory.NewTaskManager(e.mm, memory.TaskID(len(e.tms)+1), memory.TaskConfig{})
	e.tms = append(e.tms, tm)
	return tm
}

// A workload runs against an env and returns the errors of the library calls it made (nil
// entries are ignored) and wrongErrors for wrong results. It closes everything it opened
// except the DiskBlockManager.
type workload struct {
	name   string
	memory int64 // the UnifiedManager's memory, on and off heap
	run    func(ctx context.Context, e *env) []error
}

func workloads() []workload {
	ws := []workload{
		{"ExternalAppendOnlyMap", 32 << 20, runExternalMap},
		{"ExternalSorter", 32 << 20, runSorter},
		{"ExternalGrouper", 32 << 20, runGrouper},
		{"SortShuffleWriter", 32 << 20, func(ctx context.Context, e *env) []error { return runShuffle(ctx, e, true) }},
		{"BypassMergeWriter", 32 << 20, func(ctx context.Context, e *env) []error { return runShuffle(ctx, e, false) }},
	}
	// The replicated levels (DISK_ONLY_2, ...) take the same paths: replication is ignored.
	for _, level := range []storage.Level{storage.DiskOnly, storage.MemoryAndDisk, storage.MemoryAndDiskSer, storage.OffHeap} {
		ws = append(ws, workload{"BlockManager/" + level.String(), blockMemory, func(ctx context.Context, e *env) []error {
			return runBlockManager(ctx, e, level)
		}})
	}
	return ws
}

func runExternalMap(ctx context.Context, e *env) []error {
	in, want := input(records)
	scope := e.dm.NewScope()
	m, err := collection.NewExternalAppendOnlyMap(e.task(), scope, sumAgg, int64Codec, int64Codec,
		collection.ExternalMapConfig[int64]{SpillConfig: spillConfig})
	if err != nil {
		return []error{err, scope.Close()}
	}
	got := map[int64]int64{}
	err = func() error {
		if err := m.InsertAll(ctx, collection.SliceIterator(in)); err != nil {
			return err
		}
		it, err := m.Iterator(ctx)
		if err != nil {
			return err
		}
		for it.Next() {
			kv := it.Value()
			if _, dup := got[kv.Key]; dup {
				_ = it.Close()
				return wrongf("key %d returned twice", kv.Key)
			}
			got[kv.Key] = kv.Value
		}
		return errors.Join(it.Err(), it.Close())
	}()
	errs := []error{err, m.Close(), scope.Close()}
	if err == nil && !maps.Equal(got, want) {
		errs = append(errs, wrongf("%d keys, want %d, or wrong sums", len(got), len(want)))
	}
	return errs
}

func runSorter(ctx context.Context, e *env) []error {
	in, _ := input(records)
	scope := e.dm.NewScope()
	s, err := collection.NewExternalSorter(e.task(), scope, int64Codec, int64Codec,
		collection.SorterConfig[int64, int64, int64]{Ordering: cmp.Compare[int64], Spill: spillConfig})
	if err != nil {
		return []error{err, scope.Close()}
	}
	var got []collection.Pair[int64, int64]
	err = func() error {
		if err := s.InsertAll(ctx, collection.SliceIterator(in)); err != nil {
			return err
		}
		it, err := s.Iterator(ctx)
		if err != nil {
			return err
		}
		got, err = collection.Collect(it)
		return err
	}()
	errs := []error{err, s.Close(), scope.Close()}
	if err == nil {
		if !slices.IsSortedFunc(got, func(a, b collection.Pair[int64, int64]) int { return cmp.Compare(a.Key, b.Key) }) {
			errs = append(errs, wrongf("output not sorted by key"))
		}
		byPair := func(a, b collection.Pair[int64, int64]) int {
			return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Value, b.Value))
		}
		want := slices.SortedFunc(slices.Values(in), byPair)
		slices.SortFunc(got, byPair)
		if !slices.Equal(got, want) {
			errs = append(errs, wrongf("%d records, want %d, or different records", len(got), len(want)))
		}
	}
	return errs
}

// runGrouper groups records where one key has two thirds of the values (a group larger than
// several spills).
func runGrouper(ctx context.Context, e *env) []error {
	in, _ := input(records)
	type agg struct{ n, sum int64 }
	want := map[int64]agg{}
	for i := range in {
		if i%3 != 0 {
			in[i].Key = -1 // the huge key
		}
		a := want[in[i].Key]
		want[in[i].Key] = agg{a.n + 1, a.sum + in[i].Value}
	}
	scope := e.dm.NewScope()
	g, err := collection.NewExternalGrouper(e.task(), scope, int64Codec, int64Codec,
		collection.ExternalMapConfig[int64]{SpillConfig: spillConfig})
	if err != nil {
		return []error{err, scope.Close()}
	}
	got := map[int64]agg{}
	err = func() error {
		if err := g.InsertAll(ctx, collection.SliceIterator(in)); err != nil {
			return err
		}
		it, err := g.Iterator(ctx)
		if err != nil {
			return err
		}
		for it.Next() {
			grp := it.Value()
			if _, dup := got[grp.Key]; dup {
				_ = it.Close()
				return wrongf("group %d returned twice", grp.Key)
			}
			var a agg
			for grp.Values.Next() {
				a.n++
				a.sum += grp.Values.Value()
			}
			if err := grp.Values.Err(); err != nil {
				_ = it.Close()
				return err
			}
			got[grp.Key] = a
		}
		return errors.Join(it.Err(), it.Close())
	}()
	errs := []error{err, g.Close(), scope.Close()}
	if err == nil && !maps.Equal(got, want) {
		errs = append(errs, wrongf("%d groups, want %d, or wrong values", len(got), len(want)))
	}
	return errs
}

// runShuffle writes records through RunMapStage (the sort writer with map-side combine and key
// ordering, or the bypass-merge writer) and reads every reduce partition back.
func runShuffle(ctx context.Context, e *env, sortWriter bool) []error {
	in, want := input(records)
	r, err := shuffle.NewRunner(shuffle.RunnerConfig{
		Memory: e.mm, Disk: e.dm, Cores: 1, Shuffle: shuffle.Config{Spill: spillConfig},
		ExceptionOnMemoryLeak: true, ExceptionOnPinLeak: true,
	})
	if err != nil {
		return []error{err}
	}
	dep := &shuffle.Dependency[int64, int64, int64]{
		ShuffleID: r.NewShuffleID(), Partitioner: shuffle.NewHashPartitioner[int64](partitions),
		KeyCodec: int64Codec, ValueCodec: int64Codec, CombinerCodec: int64Codec,
	}
	if sortWriter {
		dep.Aggregator, dep.MapSideCombine, dep.KeyOrdering = &sumAgg, true, cmp.Compare[int64]
	}
	var metrics []shuffle.WriteMetrics
	metrics, err = shuffle.RunMapStage(ctx, r, dep, mapTasks, func(_ context.Context, _ *shuffle.TaskContext, m int) (collection.Iterator[collection.Pair[int64, int64]], error) {
		return collection.SliceIterator(in[m*records/mapTasks : (m+1)*records/mapTasks]), nil
	})
	var mu sync.Mutex
	got := map[int64]int64{}
	var wrong []error
	if err == nil {
		wantWriter := map[bool]string{true: "sort", false: "bypass-merge"}[sortWriter]
		for _, m := range metrics {
			if m.Writer != wantWriter {
				wrong = append(wrong, wrongf("writer %q, want %q", m.Writer, wantWriter))
			}
		}
		err = r.Run(ctx, partitions, func(ctx context.Context, tc *shuffle.TaskContext, p int) error {
			rd, err := shuffle.NewReader(ctx, tc, dep, p)
			if err != nil {
				return err
			}
			last := int64(-1)
			for rd.Next() {
				kv := rd.Value()
				mu.Lock()
				if sortWriter && kv.Key <= last {
					wrong = append(wrong, wrongf("partition %d: key %d after %d", p, kv.Key, last))
				}
				last = kv.Key
				got[kv.Key] += kv.Value
				mu.Unlock()
			}
			return errors.Join(rd.Err(), rd.Close())
		})
	}
	errs := append([]error{err, r.Close()}, wrong...)
	if err == nil && !maps.Equal(got, want) {
		errs = append(errs, wrongf("%d keys, want %d, or wrong sums", len(got), len(want)))
	}
	return errs
}

// The BlockManager workload: blocks of growing size in a memory that holds about two of them,
// so blocks are evicted (and dropped to disk) or go to disk at once.
const (
	blocks      = 6
	valueBytes  = 100
	blockMemory = 24 << 10
)

func blockValues(i int) [][]byte {
	vs := make([][]byte, 30*(i+1))
	for j := range vs {
		vs[j] = []byte(strings.Repeat(strconv.Itoa(i*1000+j), valueBytes)[:valueBytes])
	}
	return vs
}

func runBlockManager(ctx context.Context, e *env, level storage.Level) []error {
	bm, err := storage.NewBlockManager(storage.Config{Memory: e.mm, Disk: e.dm,
		MemoryStore: storage.MemoryStoreConfig{UnrollMemoryThreshold: 1 << 10}})
	if err != nil {
		return []error{err}
	}
	const task = memory.TaskID(1)
	codec := storage.BytesCodec{}
	var errs []error
	stored := make([]bool, blocks)
	for i := range blocks {
		ok, err := storage.PutIterator(ctx, bm, task, storage.RDDBlockID(1, i), storage.SliceIterator(blockValues(i)), level, codec)
		errs = append(errs, err)
		stored[i] = ok && err == nil
	}
	for i := range blocks {
		id := storage.RDDBlockID(1, i)
		it, ok, err := storage.GetLocalValues(ctx, bm, task, id, codec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case !ok && stored[i]:
			errs = append(errs, wrongf("block %d was stored but is not found", i))
			continue
		case !ok:
			continue
		case !stored[i]:
			errs = append(errs, wrongf("block %d is found after its put failed", i))
		}
		vs, err := storage.Collect(it)
		errs = append(errs, err)
		if err == nil && !slices.EqualFunc(vs, blockValues(i), slices.Equal) {
			errs = append(errs, wrongf("block %d: %d values, want %d, or different values", i, len(vs), len(blockValues(i))))
		}
		b, ok, err := storage.GetLocalBytes(ctx, bm, task, id, codec)
		errs = append(errs, err)
		if ok && err == nil {
			_, err = io.Copy(io.Discard, b)
			errs = append(errs, err, b.Close())
		}
	}
	for i := range blocks {
		_, err := bm.Remove(ctx, task, storage.RDDBlockID(1, i))
		errs = append(errs, err)
	}
	return append(errs, bm.EndTask(task), bm.Close())
}

// outcome of one run.
type outcome int

const (
	success outcome = iota
	cleanError
	failure
)

// result of one run: its outcome, the faults injected and, for a failure, why.
type result struct {
	outcome outcome
	faults  map[faultfs.Op]int64
	why     []string
}

// runOnce runs w once over fsys in a fresh directory under dir and checks the run's end state.
func runOnce(t *testing.T, dir string, w workload, fsys *faultfs.FS, shortWrites bool) (res result) {
	root, err := os.MkdirTemp(dir, "run-")
	require.NoError(t, err)
	defer func() { require.NoError(t, os.RemoveAll(root)) }()
	mm, err := memory.NewUnifiedManager(memory.Config{SystemMemory: w.memory, ReservedMemory: memory.NoReservedMemory,
		Fraction: 1, NumCores: 1, OffHeapSize: w.memory})
	require.NoError(t, err)
	var errs []error
	problem := func(format string, args ...any) { res.why = append(res.why, fmt.Sprintf(format, args...)) }
	dm, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{root}, FS: fsys})
	if err != nil {
		errs = append(errs, err)
	} else {
		e := &env{fs: fsys, mm: mm, dm: dm}
		func() {
			defer func() {
				if p := recover(); p != nil {
					problem("panic: %v\n%s", p, debug.Stack())
				}
			}()
			errs = append(errs, w.run(context.Background(), e)...)
		}()
		for _, tm := range e.tms {
			if leaked := tm.Close(); leaked != 0 {
				problem("task memory leak: %d bytes", leaked)
			}
		}
		if exec, stor := mm.ExecutionUsed(), mm.StorageUsed(); exec != 0 || stor != 0 {
			problem("memory held after the run: execution %d, storage %d bytes", exec, stor)
		}
		// A file whose deletion failed may outlive its owner only if the DiskBlockManager
		// still tracks it, so that its Close deletes it.
		var untracked []string
		for _, f := range regularFiles(t, root) {
			if isDirLock(f) {
				continue // the live manager's lock file, beside its directory
			}
			id, err := storage.ParseBlockID(filepath.Base(f))
			if err != nil || fsys.Faults(faultfs.Remove) == 0 || !dm.Contains(id) {
				untracked = append(untracked, f)
			}
		}
		if len(untracked) > 0 {
			problem("%d files left after the owners closed, not tracked by the DiskBlockManager (%d remove faults injected): %s",
				len(untracked), fsys.Faults(faultfs.Remove), strings.Join(untracked, ", "))
		}
		errs = append(errs, dm.Close())
	}
	files := regularFiles(t, root)
	if fsys.Faults(faultfs.RemoveAll) > 0 {
		// A directory Close could not remove keeps its (released) lock file, so that the next
		// manager on the root removes it as stale.
		files = slices.DeleteFunc(files, isDirLock)
	}
	if len(files) > 0 {
		problem("%d files left after DiskBlockManager.Close: %s", len(files), strings.Join(files, ", "))
	}
	failed := false
	for _, err := range errs {
		var wrong *wrongError
		switch {
		case err == nil:
			continue
		case errors.As(err, &wrong):
			problem("%v", wrong)
		case !errors.Is(err, faultfs.ErrInjected) && !(shortWrites && errors.Is(err, io.ErrShortWrite)):
			problem("error without the injected sentinel: %v", err)
		}
		failed = true
	}
	res.faults = map[faultfs.Op]int64{}
	for _, op := range faultfs.Ops() {
		if n := fsys.Faults(op); n > 0 {
			res.faults[op] = n
		}
	}
	switch {
	case len(res.why) > 0:
		res.outcome = failure
	case failed:
		res.outcome = cleanError
	}
	return res
}

// regularFiles lists the regular files under dir, relative to it.
func regularFiles(t *testing.T, dir string) []string {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

// isDirLock reports whether path is a DiskBlockManager's lock file ("blockmgr-*.lock" beside its
// directory).
func isDirLock(path string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, "blockmgr-") && strings.HasSuffix(base, ".lock")
}

// tally counts the runs of the matrix.
type tally struct {
	mu       sync.Mutex
	runs     [3]int
	faults   map[faultfs.Op]int64
	failures map[string]int // failed runs per cell
}

// add counts a run of cell and reports whether it is the cell's first failure.
func (ta *tally) add(cell string, res result) (first bool) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	ta.runs[res.outcome]++
	for op, n := range res.faults {
		ta.faults[op] += n
	}
	if res.outcome != failure {
		return false
	}
	ta.failures[cell]++
	return ta.failures[cell] == 1
}

func envInt(t *testing.T, name string, def uint64) uint64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err, "%s=%q", name, s)
	return v
}

// sweepPositions returns the call positions the sweep of an operation with calls calls fails:
// every one up to dense, then doubling, and the last call.
func sweepPositions(calls, dense int64) []int64 {
	var out []int64
	for p := int64(1); p <= calls; {
		out = append(out, p)
		if p < dense {
			p++
		} else {
			p *= 2
		}
	}
	if calls > 0 && out[len(out)-1] != calls {
		out = append(out, calls)
	}
	return out
}

// cell is one column of the matrix: an operation and what its faults do.
type cell struct {
	op   faultfs.Op
	mode faultfs.Mode
	name string
}

func cells() []cell {
	var cs []cell
	for _, op := range faultfs.Ops() {
		cs = append(cs, cell{op, faultfs.Fail, op.String()})
	}
	return append(cs, cell{faultfs.Write, faultfs.Torn, "write-torn"}, cell{faultfs.Write, faultfs.Short, "write-short"})
}

func TestFaultMatrix(t *testing.T) {
	long := os.Getenv(longEnv) != ""
	dense, randomRuns := int64(3), uint64(4)
	if long {
		dense, randomRuns = 1<<40, 40
	}
	randomRuns = envInt(t, runsEnv, randomRuns)
	seed := envInt(t, seedEnv, rand.Uint64())
	t.Logf("random runs: base seed %d (replay: %s=%d; %s=1 for one run); long mode (%s): %v", seed, seedEnv, seed, runsEnv, longEnv, long)
	ta := &tally{faults: map[faultfs.Op]int64{}, failures: map[string]int{}}
	replaying := os.Getenv(seedEnv) != ""
	for _, w := range workloads() {
		t.Run(w.name, func(t *testing.T) {
			dir := t.TempDir()
			base := faultfs.New(nil, 0)
			res := runOnce(t, dir, w, base, false)
			require.Equal(t, success, res.outcome, "the fault-free run: %v", res.why)
			t.Logf("fault-free run: %v, %d bytes written", base, base.Written())
			if !replaying {
				for _, c := range cells() {
					name := w.name + "/" + c.name
					calls := base.Calls(c.op)
					for _, p := range sweepPositions(calls, dense) {
						fsys := faultfs.New(nil, uint64(p), faultfs.Rule{Op: c.op, Mode: c.mode, Nth: p})
						res := runOnce(t, dir, w, fsys, c.mode == faultfs.Short)
						if ta.add(name, res) {
							t.Errorf("%s: fault at call %d of %d: %s", name, p, calls, strings.Join(res.why, "; "))
						}
					}
				}
				// Disk full at fractions of what the workload writes.
				for _, frac := range []int64{0, 1, 4, 7} {
					limit := base.Written() * frac / 8
					fsys := faultfs.New(nil, 1, faultfs.Rule{Op: faultfs.Write, Mode: faultfs.Torn, AfterBytes: max(limit, 1)})
					res := runOnce(t, dir, w, fsys, false)
					if ta.add(w.name+"/disk-full", res) {
						t.Errorf("%s/disk-full: full after %d of %d bytes: %s", w.name, limit, base.Written(), strings.Join(res.why, "; "))
					}
				}
			}
			// Seeded random runs: every operation the workload performs fails with a probability
			// that makes about one fault per run.
			var active []faultfs.Op
			for _, op := range faultfs.Ops() {
				if base.Calls(op) > 0 {
					active = append(active, op)
				}
			}
			for i := range randomRuns {
				s := seed + i
				rng := rand.New(rand.NewPCG(s, 0))
				var rules []faultfs.Rule
				for _, op := range active {
					r := faultfs.Rule{Op: op, Prob: 1 / float64(base.Calls(op)*int64(len(active)))}
					if op == faultfs.Write && rng.IntN(2) == 0 {
						r.Mode = faultfs.Torn
					}
					rules = append(rules, r)
				}
				fsys := faultfs.New(nil, s, rules...)
				res := runOnce(t, dir, w, fsys, false)
				if ta.add(w.name+"/random", res) {
					t.Errorf("%s/random: seed %d (replay: %s=%d %s=1): %s", w.name, s, seedEnv, s, runsEnv, strings.Join(res.why, "; "))
				}
			}
		})
	}
	var faults []string
	for _, op := range faultfs.Ops() {
		faults = append(faults, fmt.Sprintf("%v %d", op, ta.faults[op]))
	}
	t.Logf("runs %d: success %d, clean error %d, FAILURE %d; faults injected: %s",
		ta.runs[success]+ta.runs[cleanError]+ta.runs[failure], ta.runs[success], ta.runs[cleanError], ta.runs[failure],
		strings.Join(faults, ", "))
	for _, c := range slices.Sorted(maps.Keys(ta.failures)) {
		t.Logf("FAILING CELL %s: %d runs", c, ta.failures[c])
	}
}
