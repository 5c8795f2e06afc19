package shuffle

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/storage/faultfs"
)

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
// stage makes (one per run, on one core so the n-th call is the same in every run), with the three
// writers: the spilling sort writer (with map-side combine), the spilling serialized writer, whose
// spill files are merged into the map output, and the bypass-merge writer, whose temporary
// partition files are deleted after the map output is complete. Every run must fail with the injected error and
// leave no memory, no registered shuffle and no file but the one whose removal failed: never a
// shuffle data or index file of the failed map, nor of the maps that succeeded.
func TestMapStageFaultLeavesNothing(t *testing.T) {
	inputs := make([][]collection.Pair[int, int64], 3)
	for m := range inputs {
		inputs[m] = genRecords(13, m, 1500, 400)
	}
	// run runs the map stage with fsys's faults armed only while the stage runs, and returns the
	// stage's error and the calls of op it made.
	run := func(t *testing.T, threshold int, mapSide bool, fsys *faultfs.FS, op faultfs.Op) (error, int64) {
		e := newTestEnvFS(t, 4<<20, RunnerConfig{Cores: 1, Shuffle: Config{
			BypassMergeThreshold: threshold,
			// Spills forced by count, whatever the memory: a few spill files per sort writer.
			Spill: collection.SpillConfig{BatchSize: 64, ForceSpillElements: 400},
		}}, fsys)
		dep := intDep(e.runner, 4, mapSide, mapSide, false)
		before := fsys.Calls(op)
		fsys.SetEnabled(true)
		_, err := RunMapStage(context.Background(), e.runner, dep, len(inputs), func(_ context.Context, _ *TaskContext, m int) (collection.Iterator[collection.Pair[int, int64]], error) {
			return collection.SliceIterator(inputs[m]), nil
		})
		fsys.SetEnabled(false)
		calls := fsys.Calls(op) - before
		if err == nil {
			return nil, calls
		}
		require.Zero(t, e.mm.ExecutionUsed(), "execution memory in use")
		require.Zero(t, e.disk.Files(), "tracked block files left")
		_, regErr := e.runner.registry.MapStatuses(dep.ShuffleID)
		require.ErrorIs(t, regErr, ErrUnknownShuffle, "the failed shuffle is unregistered")
		left := filesIn(t, e.disk.LocalDirs())
		if op != faultfs.Remove {
			require.Empty(t, left, "files left after a failed %v", op)
		}
		require.ElementsMatch(t, fsys.Live(), left, "files left besides those whose removal failed")
		for _, p := range left {
			require.False(t, strings.HasPrefix(filepath.Base(p), "shuffle_"), "map output %s left", p)
			require.NoError(t, os.Remove(p)) // what the failed removal could not do
		}
		return err, calls
	}
	newFS := func(op faultfs.Op, n int64) *faultfs.FS {
		var rules []faultfs.Rule
		if n > 0 {
			rules = append(rules, faultfs.Rule{Op: op, Nth: n})
		}
		fsys := faultfs.New(nil, 1, rules...)
		fsys.SetEnabled(false)
		return fsys
	}
	for _, w := range []struct {
		name      string
		threshold int
		mapSide   bool
	}{{"sort", NoBypassMerge, true}, {"serialized", NoBypassMerge, false}, {"bypass-merge", 0, false}} {
		for _, op := range []faultfs.Op{faultfs.OpenWrite, faultfs.OpenRead, faultfs.Write, faultfs.Remove} {
			t.Run(w.name+"/"+op.String(), func(t *testing.T) {
				err, calls := run(t, w.threshold, w.mapSide, newFS(op, 0), op)
				require.NoError(t, err)
				t.Logf("%d calls of %v", calls, op)
				for n := int64(1); n <= calls; n++ {
					err, _ := run(t, w.threshold, w.mapSide, newFS(op, n), op)
					require.ErrorIs(t, err, faultfs.ErrInjected, "%v %d of %d", op, n, calls)
				}
			})
		}
	}
}
