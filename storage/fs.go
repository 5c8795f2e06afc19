package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

// FS is the file-system seam of the disk layer: every file the DiskBlockManager and DiskStore
// create, open or delete goes through it. OSFS is the default; tests inject failures with FaultFS.
// Spark has no such seam (it uses java.io.File directly).
type FS interface {
	// OpenFile is os.OpenFile.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// MkdirAll is os.MkdirAll.
	MkdirAll(path string, perm fs.FileMode) error
	// MkdirTemp is os.MkdirTemp.
	MkdirTemp(dir, pattern string) (string, error)
	// Remove is os.Remove.
	Remove(name string) error
	// RemoveAll is os.RemoveAll.
	RemoveAll(path string) error
}

// File is the part of *os.File the disk layer uses.
// Spark has no counterpart: it uses java.io.File directly; this seam exists for fault injection.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	Name() string
	Stat() (fs.FileInfo, error)
}

// OSFS is the FS of the operating system (package os).
// Spark has no counterpart: it uses java.io.File directly; this seam exists for fault injection.
type OSFS struct{}

// OpenFile implements FS.
func (OSFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a typed nil *os.File
	}
	return f, nil
}

// MkdirAll implements FS.
func (OSFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

// MkdirTemp implements FS.
func (OSFS) MkdirTemp(dir, pattern string) (string, error) { return os.MkdirTemp(dir, pattern) }

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// RemoveAll implements FS.
func (OSFS) RemoveAll(path string) error { return os.RemoveAll(path) }

// ErrInjected is the error FaultFS returns for an injected fault.
var ErrInjected = errors.New("storage: injected file-system fault")

// FaultFS wraps an FS and injects failures, for tests of error paths (full disks, failed opens).
// It is safe for concurrent use.
// Spark has no counterpart: its suites inject faults with mocks of DiskBlockObjectWriter.
type FaultFS struct {
	// Base is the wrapped FS; nil means OSFS.
	Base FS
	// OpenFault, if set, is called before every OpenFile; a non-nil result is returned instead
	// of opening.
	OpenFault func(name string, flag int) error
	// WriteFault, if set, is called before every Write with the file name, the bytes the file
	// has been given so far and the size of the write; a non-nil result fails the write
	// without writing anything.
	WriteFault func(name string, written int64, n int) error
}

// FailWritesAfter returns a FaultFS over base whose writes fail with ErrInjected once the
// files opened through it have been given limit bytes in total (a disk that fills up).
func FailWritesAfter(base FS, limit int64) *FaultFS {
	var mu sync.Mutex
	var total int64
	return &FaultFS{Base: base, WriteFault: func(name string, _ int64, n int) error {
		mu.Lock()
		defer mu.Unlock()
		if total+int64(n) > limit {
			return fmt.Errorf("%w: write of %d bytes to %s after %d of %d bytes", ErrInjected, n, name, total, limit)
		}
		total += int64(n)
		return nil
	}}
}

func (f *FaultFS) base() FS {
	if f.Base == nil {
		return OSFS{}
	}
	return f.Base
}

// OpenFile implements FS.
func (f *FaultFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if f.OpenFault != nil {
		if err := f.OpenFault(name, flag); err != nil {
			return nil, err
		}
	}
	file, err := f.base().OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

// MkdirAll implements FS.
func (f *FaultFS) MkdirAll(path string, perm fs.FileMode) error { return f.base().MkdirAll(path, perm) }

// MkdirTemp implements FS.
func (f *FaultFS) MkdirTemp(dir, pattern string) (string, error) {
	return f.base().MkdirTemp(dir, pattern)
}

// Remove implements FS.
func (f *FaultFS) Remove(name string) error { return f.base().Remove(name) }

// RemoveAll implements FS.
func (f *FaultFS) RemoveAll(path string) error { return f.base().RemoveAll(path) }

type faultFile struct {
	File
	fs      *FaultFS
	written int64
}

func (f *faultFile) Write(p []byte) (int, error) {
	if f.fs.WriteFault != nil {
		if err := f.fs.WriteFault(f.Name(), f.written, len(p)); err != nil {
			return 0, err
		}
	}
	n, err := f.File.Write(p)
	f.written += int64(n)
	return n, err
}
