package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"sync"
)

// errInjected is the error of faultyFS's faults.
var errInjected = errors.New("storage test: injected fault")

// faultyFS is the in-package test double of the FS seam: storage's own tests cannot import
// storage/faultfs, which imports storage. It fails opens and writes on demand; the other
// operations go to the operating system.
type faultyFS struct {
	OSFS
	// openFault, if set, is called before every OpenFile; an error is returned instead.
	openFault func(name string) error
	// writeFault, if set, is called before every Write; an error fails the write, which
	// writes nothing.
	writeFault func(name string, n int) error
}

// failWritesAfter returns a faultyFS whose writes fail once limit bytes have been written in
// all (a disk that fills up).
func failWritesAfter(limit int64) *faultyFS {
	var mu sync.Mutex
	var total int64
	return &faultyFS{writeFault: func(name string, n int) error {
		mu.Lock()
		defer mu.Unlock()
		if total+int64(n) > limit {
			return fmt.Errorf("%w: write of %d bytes to %s after %d of %d bytes", errInjected, n, name, total, limit)
		}
		total += int64(n)
		return nil
	}}
}

func (f *faultyFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if f.openFault != nil {
		if err := f.openFault(name); err != nil {
			return nil, err
		}
	}
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: file, fs: f}, nil
}

type faultyFile struct {
	File
	fs *faultyFS
}

func (f *faultyFile) Write(p []byte) (int, error) {
	if f.fs.writeFault != nil {
		if err := f.fs.writeFault(f.Name(), len(p)); err != nil {
			return 0, err
		}
	}
	return f.File.Write(p)
}
