//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// lockDir marks dir as owned by this process: it creates dir's lock file (dir+".lock", beside
// it) holding an exclusive flock, kept until the returned file is closed or the process exits,
// however it exits. The file is locked under a temporary name and then renamed, so a lock file
// another process finds is always already locked. Locks work on the operating system's files
// directly, not through FS.
func lockDir(dir string) (*os.File, error) {
	tmp := dir + lockSuffix + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		_, err = fmt.Fprintf(f, "%s%d\n", lockContent, os.Getpid())
	}
	if err == nil {
		err = os.Rename(tmp, dir+lockSuffix)
	}
	if err != nil {
		return nil, errors.Join(err, f.Close(), os.Remove(tmp))
	}
	return f, nil
}

// lockStale returns the lock file at path, locked, if it is one lockDir wrote and no process
// holds its lock (its owner has exited, or closed its manager); otherwise nil. flock locks belong
// to open files, so a lock another manager of this process holds counts as held.
func lockStale(path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	head := make([]byte, len(lockContent))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, []byte(lockContent)) ||
		syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		_ = f.Close()
		return nil
	}
	return f
}
