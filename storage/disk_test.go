package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

// regularFiles lists the regular files under dir (a missing dir has none).
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

func newTestDisk(t *testing.T, cfg DiskConfig) *DiskBlockManager {
	t.Helper()
	if len(cfg.Dirs) == 0 {
		cfg.Dirs = []string{t.TempDir()}
	}
	cfg.Logger = zaptest.NewLogger(t)
	m, err := NewDiskBlockManager(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m
}

func TestDiskBlockManagerDefaultDir(t *testing.T) {
	m, err := NewDiskBlockManager(DiskConfig{})
	require.NoError(t, err)
	dirs := m.LocalDirs()
	require.Len(t, dirs, 1)
	require.Equal(t, filepath.Clean(os.TempDir()), filepath.Dir(dirs[0]))
	require.True(t, strings.HasPrefix(filepath.Base(dirs[0]), "blockmgr-"))
	_, f, err := m.CreateTempLocal()
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, m.Close())
	_, err = os.Stat(dirs[0])
	require.ErrorIs(t, err, fs.ErrNotExist, "Close removes the directory it created")
	require.NoError(t, m.Close(), "Close is idempotent")
	_, err = m.Create(RDDBlockID(0, 0))
	require.ErrorIs(t, err, ErrClosed)
}

func TestDiskBlockManagerLayout(t *testing.T) {
	roots := []string{t.TempDir(), t.TempDir()}
	m := newTestDisk(t, DiskConfig{Dirs: roots, SubDirsPerDir: 4})
	dirs := m.LocalDirs()
	require.Len(t, dirs, 2)
	used := map[string]bool{}
	for i := range 200 {
		id := RDDBlockID(1, i)
		p, err := m.File(id)
		require.NoError(t, err)
		require.Equal(t, id.String(), filepath.Base(p))
		sub := filepath.Dir(p)
		require.Contains(t, dirs, filepath.Dir(sub))
		require.Regexp(t, `^0[0-3]$`, filepath.Base(sub))
		used[sub] = true
		p2, _ := m.File(id)
		require.Equal(t, p, p2, "stable")
	}
	require.Len(t, used, 8, "200 names spread over 2 dirs x 4 subdirs")
}

func TestDiskBlockManagerCreateOpenRemove(t *testing.T) {
	m := newTestDisk(t, DiskConfig{})
	id := RDDBlockID(3, 4)
	f, err := m.Create(id)
	require.NoError(t, err)
	_, err = f.Write([]byte("hello"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, int64(5), m.BytesWritten())
	require.True(t, m.Contains(id))
	require.Equal(t, 1, m.Files())

	_, err = m.Create(id)
	require.ErrorIs(t, err, ErrBlockExists)

	r, err := m.Open(id)
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))
	require.NoError(t, r.Close())

	removed, err := m.Remove(id)
	require.NoError(t, err)
	require.True(t, removed)
	removed, err = m.Remove(id)
	require.NoError(t, err)
	require.False(t, removed)
	_, err = m.Open(id)
	require.ErrorIs(t, err, ErrBlockNotFound)
	require.Empty(t, regularFiles(t, m.LocalDirs()[0]))
}

func TestDiskBlockManagerTempBlocks(t *testing.T) {
	m := newTestDisk(t, DiskConfig{})
	id1, f1, err := m.CreateTempLocal()
	require.NoError(t, err)
	id2, f2, err := m.CreateTempShuffle()
	require.NoError(t, err)
	require.Equal(t, KindTempLocal, id1.Kind())
	require.Equal(t, KindTempShuffle, id2.Kind())
	require.NoError(t, f1.Close())
	require.NoError(t, f2.Close())
	p, err := m.File(id1)
	require.NoError(t, err)
	require.Equal(t, p, f1.Name())
	require.Len(t, regularFiles(t, m.LocalDirs()[0]), 2)
}

// A Scope's Close deletes exactly its own files; the manager's Close deletes the rest and the
// directories. Scopes are used from many goroutines at once.
func TestScopeCloseDeletesItsFiles(t *testing.T) {
	m := newTestDisk(t, DiskConfig{})
	dir := m.LocalDirs()[0]
	keep, err := m.Create(RDDBlockID(0, 0))
	require.NoError(t, err)
	require.NoError(t, keep.Close())

	var wg sync.WaitGroup
	scopes := make([]*Scope, 4)
	for i := range scopes {
		scopes[i] = m.NewScope()
		wg.Go(func() {
			s := scopes[i]
			for j := range 10 {
				var f File
				var err error
				if j%2 == 0 {
					_, f, err = s.CreateTempLocal()
				} else {
					_, f, err = s.CreateTempShuffle()
				}
				require.NoError(t, err)
				_, err = fmt.Fprintf(f, "task %d file %d", i, j)
				require.NoError(t, err)
				require.NoError(t, f.Close())
			}
		})
	}
	wg.Wait()
	require.Len(t, regularFiles(t, dir), 41)
	require.Equal(t, 10, scopes[0].Files())
	require.Equal(t, int64(len("task 0 file 0"))*10, scopes[0].BytesWritten())
	require.Equal(t, scopes[0].BytesWritten()*4, m.BytesWritten())

	id, f, err := scopes[1].CreateTempLocal()
	require.NoError(t, err)
	require.NoError(t, f.Close())
	removed, err := scopes[1].Remove(id)
	require.NoError(t, err)
	require.True(t, removed)

	for _, s := range scopes {
		require.NoError(t, s.Close())
		require.NoError(t, s.Close())
	}
	require.Equal(t, []string{filepath.Join(filepath.Dir(regularFiles(t, dir)[0]), "rdd_0_0")}, regularFiles(t, dir))
	_, _, err = scopes[0].CreateTempLocal()
	require.ErrorIs(t, err, ErrClosed)

	require.NoError(t, m.Close())
	require.Empty(t, regularFiles(t, dir))
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestDiskBlockManagerFaults(t *testing.T) {
	t.Run("unusable root", func(t *testing.T) {
		good := t.TempDir()
		_, err := NewDiskBlockManager(DiskConfig{Dirs: []string{good, filepath.Join(good, "missing", "x")}})
		require.ErrorContains(t, err, "creating a local directory in")
		require.Empty(t, mustReadDir(t, good), "the directory made in the good root is removed again")
	})
	t.Run("open fails", func(t *testing.T) {
		ffs := &faultyFS{openFault: func(string) error { return errInjected }}
		m := newTestDisk(t, DiskConfig{FS: ffs})
		_, _, err := m.NewScope().CreateTempLocal()
		require.ErrorIs(t, err, errInjected)
		require.ErrorContains(t, err, "storage: creating file for block temp_local_")
		require.Equal(t, 0, m.Files())
		require.Empty(t, regularFiles(t, m.LocalDirs()[0]))
	})
	t.Run("disk fills up", func(t *testing.T) {
		m := newTestDisk(t, DiskConfig{FS: failWritesAfter(10)})
		s := m.NewScope()
		_, f, err := s.CreateTempShuffle()
		require.NoError(t, err)
		_, err = f.Write(make([]byte, 8))
		require.NoError(t, err)
		_, err = f.Write(make([]byte, 8))
		require.ErrorIs(t, err, errInjected)
		require.ErrorContains(t, err, "write of 8 bytes to")
		require.NoError(t, f.Close())
		require.Equal(t, int64(8), s.BytesWritten())
		require.NoError(t, s.Close())
		require.Empty(t, regularFiles(t, m.LocalDirs()[0]))
	})
	t.Run("config", func(t *testing.T) {
		_, err := NewDiskBlockManager(DiskConfig{SubDirsPerDir: -1})
		require.ErrorContains(t, err, "SubDirsPerDir -1 is negative")
		_, err = NewDiskBlockManager(DiskConfig{Dirs: []string{""}})
		require.ErrorContains(t, err, "Dirs[0] is empty")
	})
}

func mustReadDir(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	return es
}

// failingRemoveFS is the OS's FS whose next Remove and RemoveAll calls fail, as many as set.
type failingRemoveFS struct {
	OSFS
	removes, removeAlls atomic.Int32
}

func (f *failingRemoveFS) Remove(name string) error {
	if f.removes.Add(-1) >= 0 {
		return fmt.Errorf("%w: remove %s", errInjected, name)
	}
	return f.OSFS.Remove(name)
}

func (f *failingRemoveFS) RemoveAll(name string) error {
	if f.removeAlls.Add(-1) >= 0 {
		return fmt.Errorf("%w: remove all of %s", errInjected, name)
	}
	return f.OSFS.RemoveAll(name)
}

// A file whose deletion fails stays tracked, so the next Remove, the scope's Close or the
// manager's Close deletes it.
func TestDiskBlockManagerFailedDeleteKeepsTracking(t *testing.T) {
	ffs := &failingRemoveFS{}
	m := newTestDisk(t, DiskConfig{FS: ffs})
	dir := m.LocalDirs()[0]
	create := func(s *Scope) BlockID {
		id, f, err := s.CreateTempLocal()
		require.NoError(t, err)
		require.NoError(t, f.Close())
		return id
	}

	s := m.NewScope()
	id := create(s)
	ffs.removes.Store(1)
	removed, err := m.Remove(id)
	require.True(t, removed)
	require.ErrorIs(t, err, errInjected)
	require.ErrorContains(t, err, "storage: deleting file of block "+id.String())
	require.True(t, m.Contains(id))
	require.Equal(t, 1, s.Files())
	require.Len(t, regularFiles(t, dir), 1)
	removed, err = m.Remove(id)
	require.True(t, removed)
	require.NoError(t, err)
	require.False(t, m.Contains(id))
	require.Equal(t, 0, s.Files())

	id = create(s)
	ffs.removes.Store(1)
	require.ErrorIs(t, s.Close(), errInjected)
	require.True(t, m.Contains(id), "left for the manager's Close")
	require.Len(t, regularFiles(t, dir), 1)

	ffs.removes.Store(1)
	err = m.Close()
	require.ErrorIs(t, err, errInjected)
	require.ErrorContains(t, err, "storage: deleting file of block "+id.String())
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, fs.ErrNotExist, "deleting the directory deletes the file after all")
}

// TestScopeContains: a scope contains the live files it created, not another scope's nor the
// ones it deleted.
func TestScopeContains(t *testing.T) {
	m := newTestDisk(t, DiskConfig{})
	a, b := m.NewScope(), m.NewScope()
	id, f, err := a.CreateTempShuffle()
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.True(t, a.Contains(id))
	require.False(t, b.Contains(id), "another scope's file")
	ok, err := b.Remove(id)
	require.True(t, ok)
	require.NoError(t, err)
	require.False(t, a.Contains(id), "deleted")
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
}

// TestScopeManyFiles: after thousands of files came and went (the maps of live files are then
// rebuilt smaller), the manager and the scope still track exactly the live ones.
func TestScopeManyFiles(t *testing.T) {
	m := newTestDisk(t, DiskConfig{})
	s := m.NewScope()
	var ids []BlockID
	for range 3 * shrinkMin {
		id, f, err := s.CreateTempShuffle()
		require.NoError(t, err)
		require.NoError(t, f.Close())
		ids = append(ids, id)
	}
	for _, id := range ids[10:] {
		ok, err := s.Remove(id)
		require.True(t, ok)
		require.NoError(t, err)
	}
	require.Equal(t, 10, s.Files())
	require.Equal(t, 10, m.Files())
	for i, id := range ids {
		require.Equal(t, i < 10, s.Contains(id), "file %d", i)
		require.Equal(t, i < 10, m.Contains(id), "file %d", i)
	}
	require.NoError(t, s.Close())
	require.Zero(t, m.Files())
}
