package faultfs_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/storage"
	"github.com/spillway/spillway/storage/faultfs"
)

// create makes a file through fsys and returns it.
func create(t *testing.T, fsys *faultfs.FS, name string) storage.File {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	require.NoError(t, err)
	return f
}

func TestEveryOpCanFail(t *testing.T) {
	// fsOps and fileOps run one call of an operation and return its error.
	fsOps := map[faultfs.Op]func(fsys *faultfs.FS, dir string) error{
		faultfs.OpenRead: func(fsys *faultfs.FS, dir string) error {
			_, err := fsys.OpenFile(filepath.Join(dir, "f"), os.O_RDONLY, 0)
			return err
		},
		faultfs.OpenWrite: func(fsys *faultfs.FS, dir string) error {
			_, err := fsys.OpenFile(filepath.Join(dir, "g"), os.O_RDWR|os.O_CREATE, 0o644)
			return err
		},
		faultfs.Remove:    func(fsys *faultfs.FS, dir string) error { return fsys.Remove(filepath.Join(dir, "f")) },
		faultfs.RemoveAll: func(fsys *faultfs.FS, dir string) error { return fsys.RemoveAll(filepath.Join(dir, "sub")) },
		faultfs.Rename: func(fsys *faultfs.FS, dir string) error {
			return fsys.Rename(filepath.Join(dir, "f"), filepath.Join(dir, "h"))
		},
		faultfs.Mkdir: func(fsys *faultfs.FS, dir string) error { return fsys.MkdirAll(filepath.Join(dir, "sub", "x"), 0o755) },
	}
	fileOps := map[faultfs.Op]func(f storage.File) error{
		faultfs.Read:   func(f storage.File) error { _, err := f.Read(make([]byte, 1)); return err },
		faultfs.ReadAt: func(f storage.File) error { _, err := f.ReadAt(make([]byte, 1), 0); return err },
		faultfs.Write:  func(f storage.File) error { _, err := f.Write([]byte("x")); return err },
		faultfs.Close:  func(f storage.File) error { return f.Close() },
		faultfs.Sync:   func(f storage.File) error { return f.Sync() },
		faultfs.Stat:   func(f storage.File) error { _, err := f.Stat(); return err },
	}
	for _, op := range faultfs.Ops() {
		t.Run(op.String(), func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644))
			fsys := faultfs.New(nil, 1, faultfs.Rule{Op: op, Nth: 2})
			run := func() error {
				if fo, ok := fileOps[op]; ok {
					f, err := fsys.OpenFile(filepath.Join(dir, "f"), os.O_RDWR, 0)
					require.NoError(t, err)
					if op != faultfs.Close {
						defer f.Close()
					}
					return fo(f)
				}
				return fsOps[op](fsys, dir)
			}
			require.NoError(t, run(), "the first call passes")
			err := run()
			require.ErrorIs(t, err, faultfs.ErrInjected, "the second call fails")
			require.ErrorContains(t, err, op.String())
			var pe *os.PathError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, int64(1), fsys.Faults(op))
			require.GreaterOrEqual(t, fsys.Calls(op), int64(2))
		})
	}
}

func TestWriteModes(t *testing.T) {
	tests := []struct {
		name    string
		rule    faultfs.Rule
		writes  []int
		want    []int // bytes each write reports
		errs    []bool
		content int
	}{
		{"nth fails", faultfs.Rule{Op: faultfs.Write, Nth: 2}, []int{10, 10, 10}, []int{10, 0, 10}, []bool{false, true, false}, 20},
		{"disk full", faultfs.Rule{Op: faultfs.Write, AfterBytes: 25}, []int{10, 10, 10, 10}, []int{10, 10, 0, 0}, []bool{false, false, true, true}, 20},
		{"disk full torn", faultfs.Rule{Op: faultfs.Write, AfterBytes: 25, Mode: faultfs.Torn}, []int{10, 10, 10, 10}, []int{10, 10, 5, 0}, []bool{false, false, true, true}, 25},
		{"short", faultfs.Rule{Op: faultfs.Write, AfterBytes: 15, Mode: faultfs.Short}, []int{10, 10}, []int{10, 5}, []bool{false, false}, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := faultfs.New(nil, 1, tt.rule)
			name := filepath.Join(t.TempDir(), "f")
			f := create(t, fsys, name)
			for i, n := range tt.writes {
				got, err := f.Write(make([]byte, n))
				require.Equal(t, tt.want[i], got, "write %d", i)
				if tt.errs[i] {
					require.ErrorIs(t, err, faultfs.ErrInjected, "write %d", i)
				} else {
					require.NoError(t, err, "write %d", i)
				}
			}
			require.NoError(t, f.Close())
			st, err := os.Stat(name)
			require.NoError(t, err)
			require.Equal(t, int64(tt.content), st.Size())
		})
	}
	t.Run("torn writes less than asked", func(t *testing.T) {
		fsys := faultfs.New(nil, 7, faultfs.Rule{Op: faultfs.Write, Prob: 1, Mode: faultfs.Torn})
		f := create(t, fsys, filepath.Join(t.TempDir(), "f"))
		defer f.Close()
		for range 100 {
			n, err := f.Write(make([]byte, 8))
			require.ErrorIs(t, err, faultfs.ErrInjected)
			require.Less(t, n, 8)
		}
	})
}

func TestProbabilityIsSeeded(t *testing.T) {
	pattern := func(seed uint64) []bool {
		fsys := faultfs.New(nil, seed, faultfs.Rule{Op: faultfs.Mkdir, Prob: 0.5})
		dir := t.TempDir()
		var out []bool
		for range 64 {
			out = append(out, fsys.MkdirAll(dir, 0o755) != nil)
		}
		return out
	}
	a := pattern(42)
	require.Equal(t, a, pattern(42))
	require.NotEqual(t, a, pattern(43))
	require.Contains(t, a, true)
	require.Contains(t, a, false)
}

func TestLiveFiles(t *testing.T) {
	dir := t.TempDir()
	fsys := faultfs.New(nil, 1, faultfs.Rule{Op: faultfs.Remove, Nth: 1})
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "sub", "b"), filepath.Join(dir, "c")
	require.NoError(t, fsys.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	for _, p := range []string{a, b, c} {
		require.NoError(t, create(t, fsys, p).Close())
	}
	require.Equal(t, []string{a, c, b}, fsys.Live())
	require.ErrorIs(t, fsys.Remove(a), faultfs.ErrInjected)
	require.Contains(t, fsys.Live(), a, "a failed remove leaves the file")
	require.NoError(t, fsys.Remove(a))
	require.NoError(t, fsys.Rename(c, a))
	require.Equal(t, []string{a, b}, fsys.Live())
	require.NoError(t, fsys.RemoveAll(filepath.Join(dir, "sub")))
	require.Equal(t, []string{a}, fsys.Live())
	f, err := fsys.OpenFile(a, os.O_RDONLY, 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, []string{a}, fsys.Live(), "opening for reading creates nothing")
}

func TestFailedCloseClosesTheFile(t *testing.T) {
	fsys := faultfs.New(nil, 1, faultfs.Rule{Op: faultfs.Close, Nth: 1})
	f := create(t, fsys, filepath.Join(t.TempDir(), "f"))
	require.ErrorIs(t, f.Close(), faultfs.ErrInjected)
	_, err := f.Write([]byte("x"))
	require.ErrorIs(t, err, os.ErrClosed)
}

func TestSetEnabledAndCounts(t *testing.T) {
	fsys := faultfs.New(nil, 1, faultfs.Rule{Op: faultfs.Write, Prob: 1})
	f := create(t, fsys, filepath.Join(t.TempDir(), "f"))
	defer f.Close()
	fsys.SetEnabled(false)
	_, err := f.Write([]byte("ok"))
	require.NoError(t, err)
	fsys.SetEnabled(true)
	_, err = f.Write([]byte("no"))
	require.ErrorIs(t, err, faultfs.ErrInjected)
	require.Equal(t, int64(2), fsys.Calls(faultfs.Write))
	require.Equal(t, int64(1), fsys.Faults(faultfs.Write))
	require.Equal(t, int64(1), fsys.TotalFaults())
	require.Equal(t, "open-write 1/0 write 2/1", fsys.String())
}

func TestMatch(t *testing.T) {
	dir := t.TempDir()
	fsys := faultfs.New(nil, 1, faultfs.Rule{Op: faultfs.OpenWrite, Prob: 1, Match: func(p string) bool { return filepath.Base(p) == "bad" }})
	require.NoError(t, create(t, fsys, filepath.Join(dir, "good")).Close())
	_, err := fsys.OpenFile(filepath.Join(dir, "bad"), os.O_RDWR|os.O_CREATE, 0o644)
	require.ErrorIs(t, err, faultfs.ErrInjected)
}

func TestInvalidRulesPanic(t *testing.T) {
	for name, r := range map[string]faultfs.Rule{
		"no trigger":          {Op: faultfs.Write},
		"two triggers":        {Op: faultfs.Write, Nth: 1, Prob: 0.5},
		"probability above 1": {Op: faultfs.Write, Prob: 2},
		"bytes on read":       {Op: faultfs.Read, AfterBytes: 1},
		"torn close":          {Op: faultfs.Close, Nth: 1, Mode: faultfs.Torn},
	} {
		t.Run(name, func(t *testing.T) {
			require.Panics(t, func() { faultfs.New(nil, 1, r) })
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	fsys := faultfs.New(nil, 3, faultfs.Rule{Op: faultfs.Write, Prob: 0.3})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			f := create(t, fsys, filepath.Join(dir, string(rune('a'+i))))
			for range 50 {
				_, _ = f.Write([]byte("0123456789"))
			}
			_ = f.Close()
		})
	}
	wg.Wait()
	require.Equal(t, int64(400), fsys.Calls(faultfs.Write))
	require.Positive(t, fsys.Faults(faultfs.Write))
	require.Len(t, fsys.Live(), 8)
}

// TestThroughDiskBlockManager checks that injected faults surface through the disk layer's
// wrapping and that a failed create leaves no file.
func TestThroughDiskBlockManager(t *testing.T) {
	fsys := faultfs.New(nil, 1, faultfs.Rule{Op: faultfs.OpenWrite, Nth: 1})
	dm, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{t.TempDir()}, FS: fsys})
	require.NoError(t, err)
	_, _, err = dm.CreateTempLocal()
	require.ErrorIs(t, err, faultfs.ErrInjected)
	require.Empty(t, fsys.Live())
	_, f, err := dm.CreateTempLocal()
	require.NoError(t, err)
	_, err = io.WriteString(f, "spill")
	require.NoError(t, errors.Join(err, f.Close()))
	require.Len(t, fsys.Live(), 1)
	require.NoError(t, dm.Close())
	require.Empty(t, fsys.Live())
}
