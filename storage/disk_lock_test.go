//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package storage

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// mkLocalDir makes root/name holding a 1000-byte block file and, if withLock, a lock file as
// lockDir writes it, not locked.
func mkLocalDir(t *testing.T, root, name string, withLock bool) string {
	t.Helper()
	dir := filepath.Join(root, name)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "0a"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "0a", "temp_local_x"), make([]byte, 1000), 0o644))
	if withLock {
		require.NoError(t, os.WriteFile(dir+lockSuffix, []byte(fmt.Sprintf("%s%d\n", lockContent, 1)), 0o644))
	}
	return dir
}

// A new manager removes the local directories whose lock nobody holds, and only those: not one
// whose lock another open file holds (another manager, here or in another process), not one
// without a lock file, not one whose lock file lockDir did not write, and none at all with
// KeepStaleDirs.
func TestDiskBlockManagerRemovesStaleDirs(t *testing.T) {
	root := t.TempDir()
	stale := mkLocalDir(t, root, "blockmgr-stale", true)
	held := mkLocalDir(t, root, "blockmgr-held", true)
	noLock := mkLocalDir(t, root, "blockmgr-nolock", false)
	foreign := mkLocalDir(t, root, "blockmgr-foreign", false)
	require.NoError(t, os.WriteFile(foreign+lockSuffix, []byte("not ours"), 0o644))
	other := mkLocalDir(t, root, "other", true)
	f, err := os.Open(held + lockSuffix) // a separate open file: flock locks it apart from any other
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	live := newTestDisk(t, DiskConfig{Dirs: []string{root}, KeepStaleDirs: true}).LocalDirs()[0]
	require.DirExists(t, stale, "KeepStaleDirs")

	core, logs := observer.New(zapcore.InfoLevel)
	m, err := NewDiskBlockManager(DiskConfig{Dirs: []string{root}, Logger: zap.New(core)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	require.NoDirExists(t, stale)
	require.NoFileExists(t, stale+lockSuffix)
	for _, d := range []string{held, noLock, foreign, other, live} {
		require.DirExists(t, d)
	}
	removed := logs.FilterMessage("deleted stale local directory").AllUntimed()
	require.Len(t, removed, 1)
	require.Equal(t, map[string]any{"dir": stale, "size": "1000 B"}, removed[0].ContextMap())

	require.NoError(t, f.Close()) // the holder exits
	newTestDisk(t, DiskConfig{Dirs: []string{root}})
	require.NoDirExists(t, held)
	require.DirExists(t, m.LocalDirs()[0])
}

const childRootEnv = "SPILLWAY_TEST_KILLED_MANAGER_ROOT"

// A process that exits without closing its manager (killed) leaves its local directory; the
// next manager on the same root removes it. The child is this test binary run again.
func TestDiskBlockManagerRemovesDirsOfKilledProcess(t *testing.T) {
	if root := os.Getenv(childRootEnv); root != "" {
		m, err := NewDiskBlockManager(DiskConfig{Dirs: []string{root}})
		if err == nil {
			var f File
			if _, f, err = m.CreateTempShuffle(); err == nil {
				_, err = f.Write(make([]byte, 4096))
			}
		}
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("dir:", m.LocalDirs()[0])
		os.Exit(0) // no Close, no deferred cleanup: as if killed
	}
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskBlockManagerRemovesDirsOfKilledProcess$")
	cmd.Env = append(os.Environ(), childRootEnv+"="+root)
	out, err := cmd.Output()
	require.NoError(t, err, "child output: %s", out)
	dir, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "dir: ")
	require.True(t, ok, "child output: %s", out)
	require.Len(t, regularFiles(t, dir), 1, "the child's block file is left")
	require.FileExists(t, dir+lockSuffix)

	m := newTestDisk(t, DiskConfig{Dirs: []string{root}})
	require.NoDirExists(t, dir)
	require.NoFileExists(t, dir+lockSuffix)
	entries := mustReadDir(t, root)
	require.Len(t, entries, 2, "the new manager's directory and lock file")
	require.Equal(t, m.LocalDirs()[0], filepath.Join(root, entries[0].Name()))
}

// A local directory that cannot be deleted keeps its lock file: the next manager on the same
// root removes it once this one has released the lock.
func TestDiskBlockManagerUndeletableDirIsLeftStale(t *testing.T) {
	root := t.TempDir()
	ffs := &failingRemoveFS{}
	m, err := NewDiskBlockManager(DiskConfig{Dirs: []string{root}, FS: ffs})
	require.NoError(t, err)
	_, f, err := m.CreateTempShuffle()
	require.NoError(t, err)
	require.NoError(t, f.Close())
	ffs.removeAlls.Store(1)
	require.ErrorIs(t, m.Close(), errInjected)
	dir := m.LocalDirs()[0]
	require.FileExists(t, dir+lockSuffix)

	m2 := newTestDisk(t, DiskConfig{Dirs: []string{root}})
	require.NoDirExists(t, dir)
	require.DirExists(t, m2.LocalDirs()[0])
}
