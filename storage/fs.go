package storage

import (
	"io"
	"io/fs"
	"os"
)

// FS is the file-system seam of the disk layer: every file the DiskBlockManager and DiskStore
// create, open, rename or delete, and every directory they make, goes through it. OSFS is the
// default; tests inject faults into every operation with the FS of package storage/faultfs.
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
	// Rename is os.Rename (Spark renames a map output's temporary files into place).
	Rename(oldpath, newpath string) error
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
	// Sync is os.File.Sync (Spark's spark.shuffle.sync forces writes to disk with it).
	Sync() error
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

// Rename implements FS.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
