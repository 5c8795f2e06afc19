package shuffle

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage"
)

// nthFaultFS fails the n-th open, write or remove (counted while armed, 1-based) with
// storage.ErrInjected. Opens and writes fail through a storage.FaultFS; a failing remove leaves
// its file in place, as a real failed unlink does, and is recorded in kept.
type nthFaultFS struct {
	storage.FS // a *storage.FaultFS
	op         string
	n          int64
	armed      atomic.Bool
	calls      atomic.Int64 // calls of op while armed

	mu   sync.Mutex
	kept []string
}

func newNthFaultFS(op string, n int64) *nthFaultFS {
	f := &nthFaultFS{op: op, n: n}
	f.FS = &storage.FaultFS{
		OpenFault:  func(name string, _ int) error { return f.hit("open", name) },
		WriteFault: func(name string, _ int64, _ int) error { return f.hit("write", name) },
	}
	return f
}

func (f *nthFaultFS) hit(op, name string) error {
	if op != f.op || !f.armed.Load() {
		return nil
	}
	if f.calls.Add(1) == f.n {
		return fmt.Errorf("%w: %s %d of %s", storage.ErrInjected, op, f.n, filepath.Base(name))
	}
	return nil
}

func (f *nthFaultFS) Remove(name string) error {
	if err := f.hit("remove", name); err != nil {
		f.mu.Lock()
		f.kept = append(f.kept, name)
		f.mu.Unlock()
		return err
	}
	return f.FS.Remove(name)
}

// filesIn lists the regular files under dirs.
func filesIn(t testing.TB, dirs []string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		require.NoError(t, filepath.WalkDir(d, func(path string, de fs.DirEntry, err error) error {
			if err == nil && de.Type().IsRegular() {
				out = append(out, path)
			}
			return err
		}))
	}
	return out
}

// TestMapStageFaultLeavesNothing fails, in turn, every open, every write and every remove a map
// stage makes (one per run, on one core so the n-th call is the same in every run), with both
// writers: the spilling sort writer and the bypass-merge writer, whose temporary partition files
// are deleted after the map output is complete. Every run must fail with the injected error and
// leave no memory, no registered shuffle and no file but the one whose removal failed: never a
// shuffle data or index file of the failed map, nor of the maps that succeeded.
func TestMapStageFaultLeavesNothing(t *testing.T) {
	inputs := make([][]collection.Pair[int, int64], 3)
	for m := range inputs {
		inputs[m] = genRecords(13, m, 1500, 400)
	}
	run := func(t *testing.T, threshold int, fsys *nthFaultFS) error {
		e := newTestEnvFS(t, 4<<20, RunnerConfig{Cores: 1, Shuffle: Config{
			BypassMergeThreshold: threshold,
			// Spills forced by count, whatever the memory: a few spill files per sort writer.
			Spill: collection.SpillConfig{BatchSize: 64, ForceSpillElements: 400},
		}}, fsys)
		dep := intDep(e.runner, 4, false, false, false)
		fsys.armed.Store(true)
		_, err := RunMapStage(context.Background(), e.runner, dep, len(inputs), func(_ context.Context, _ *TaskContext, m int) (collection.Iterator[collection.Pair[int, int64]], error) {
			return collection.SliceIterator(inputs[m]), nil
		})
		fsys.armed.Store(false)
		if err == nil {
			return nil
		}
		require.Zero(t, e.mm.ExecutionUsed(), "execution memory in use")
		require.Zero(t, e.disk.Files(), "tracked block files left")
		_, regErr := e.runner.registry.MapStatuses(dep.ShuffleID)
		require.ErrorIs(t, regErr, ErrUnknownShuffle, "the failed shuffle is unregistered")
		left := filesIn(t, e.disk.LocalDirs())
		require.ElementsMatch(t, fsys.kept, left, "files left besides those whose removal failed")
		for _, p := range left {
			require.False(t, strings.HasPrefix(filepath.Base(p), "shuffle_"), "map output %s left", p)
			require.NoError(t, os.Remove(p)) // what the failed removal could not do
		}
		return err
	}
	for _, w := range []struct {
		name      string
		threshold int
	}{{"sort", NoBypassMerge}, {"bypass-merge", 0}} {
		for _, op := range []string{"open", "write", "remove"} {
			t.Run(w.name+"/"+op, func(t *testing.T) {
				clean := newNthFaultFS(op, 0)
				require.NoError(t, run(t, w.threshold, clean))
				calls := clean.calls.Load()
				require.Positive(t, calls)
				t.Logf("%d calls of %s", calls, op)
				for n := int64(1); n <= calls; n++ {
					fsys := newNthFaultFS(op, n)
					err := run(t, w.threshold, fsys)
					require.ErrorIs(t, err, storage.ErrInjected, "%s %d of %d", op, n, calls)
				}
			})
		}
	}
}
