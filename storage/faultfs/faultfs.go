// Package faultfs is a fault-injecting storage.FS for tests: it can fail every operation the
// disk layer performs (opens, reads, writes, closes, syncs, stats, removes, renames, directory
// creation) on the Nth call, with a seeded probability, once the disk is "full", and can make
// writes torn or short. It counts calls and injected faults per operation and lists the files it
// created that still exist, for leak checks. It is test support, not part of the production API;
// engines built on spillway can use it in their own tests.
//
// Spark has no counterpart: its suites inject faults with mocks of DiskBlockObjectWriter.
package faultfs

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/spillway/spillway/storage"
)

// ErrInjected is wrapped by every error the FS injects (check with errors.Is).
var ErrInjected = errors.New("faultfs: injected fault")

// Op is a kind of file-system operation a Rule can fail.
type Op uint8

// The operations, one per method of storage.FS and storage.File that can fail.
const (
	OpenRead  Op = iota // OpenFile for reading only
	OpenWrite           // OpenFile for writing or creating
	Read                // File.Read
	ReadAt              // File.ReadAt
	Write               // File.Write
	Close               // File.Close (the file is closed even when the call fails)
	Sync                // File.Sync
	Stat                // File.Stat
	Remove              // FS.Remove
	RemoveAll           // FS.RemoveAll
	Rename              // FS.Rename
	Mkdir               // FS.MkdirAll and FS.MkdirTemp
	numOps
)

var opNames = [numOps]string{"open-read", "open-write", "read", "readAt", "write", "close", "sync", "stat",
	"remove", "removeAll", "rename", "mkdir"}

// String returns the operation's name, e.g. "open-write".
func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", o)
}

// Ops returns every operation kind, in declaration order.
func Ops() []Op {
	ops := make([]Op, numOps)
	for i := range ops {
		ops[i] = Op(i)
	}
	return ops
}

// Mode is what a faulted call does.
type Mode uint8

const (
	// Fail makes the call do nothing and return an error (Close still closes the file).
	Fail Mode = iota
	// Torn (Write only) writes a part of the bytes, then returns the count and an error.
	Torn
	// Short (Write only) writes a part of the bytes and returns the count with a nil error,
	// breaking io.Writer's contract: it finds callers that ignore short counts. Callers such as
	// bufio.Writer report io.ErrShortWrite, which does not wrap ErrInjected.
	Short
)

// Rule fails calls of one operation. Exactly one trigger (Nth, Prob or AfterBytes) is set.
type Rule struct {
	Op   Op
	Mode Mode
	// Nth fails the Nth matching call of Op (1 is the first), once.
	Nth int64
	// Prob fails each matching call with this probability, drawn from the FS's seeded source.
	Prob float64
	// AfterBytes (Write only) fails every write that would take the bytes written through the
	// FS beyond AfterBytes: a disk that fills up. A Torn write writes up to the limit.
	AfterBytes int64
	// Match, if set, restricts the rule to calls on paths it accepts (for Rename, the old path).
	Match func(path string) bool
}

func (r Rule) validate() error {
	triggers := 0
	for _, set := range []bool{r.Nth > 0, r.Prob > 0, r.AfterBytes > 0} {
		if set {
			triggers++
		}
	}
	switch {
	case r.Op >= numOps:
		return fmt.Errorf("faultfs: rule for unknown %v", r.Op)
	case triggers != 1:
		return fmt.Errorf("faultfs: rule for %v needs exactly one of Nth (%d), Prob (%g), AfterBytes (%d)", r.Op, r.Nth, r.Prob, r.AfterBytes)
	case r.Prob > 1:
		return fmt.Errorf("faultfs: rule for %v has probability %g above 1", r.Op, r.Prob)
	case r.AfterBytes > 0 && r.Op != Write:
		return fmt.Errorf("faultfs: AfterBytes applies to write, not %v", r.Op)
	case r.Mode != Fail && r.Op != Write:
		return fmt.Errorf("faultfs: mode %d applies to write, not %v", r.Mode, r.Op)
	}
	return nil
}

// FS is a storage.FS that injects the faults of its rules into the calls it passes to a base FS.
// It is safe for concurrent use; with concurrent callers, which call is the Nth depends on their
// interleaving.
type FS struct {
	base storage.FS

	mu      sync.Mutex
	rng     *rand.Rand
	rules   []Rule
	seen    []int64 // matching calls per rule
	off     bool
	calls   [numOps]int64
	faults  [numOps]int64
	written int64               // bytes written through the FS
	live    map[string]struct{} // files created through the FS and not removed through it
}

// New returns an FS over base (nil: storage.OSFS) with the given rules, drawing probabilities
// and torn-write sizes from a PCG source seeded with seed. It panics on an invalid rule.
func New(base storage.FS, seed uint64, rules ...Rule) *FS {
	if base == nil {
		base = storage.OSFS{}
	}
	for _, r := range rules {
		if err := r.validate(); err != nil {
			panic(err)
		}
	}
	return &FS{
		base:  base,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		rules: slices.Clone(rules),
		seen:  make([]int64, len(rules)),
		live:  map[string]struct{}{},
	}
}

// SetEnabled turns fault injection on (the default) or off; calls are counted either way.
func (f *FS) SetEnabled(on bool) {
	f.mu.Lock()
	f.off = !on
	f.mu.Unlock()
}

// Calls returns the number of calls of op so far, faulted or not.
func (f *FS) Calls(op Op) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Faults returns the number of faults injected into calls of op so far.
func (f *FS) Faults(op Op) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faults[op]
}

// TotalFaults returns the number of faults injected so far.
func (f *FS) TotalFaults() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, c := range f.faults {
		n += c
	}
	return n
}

// Written returns the bytes written through the FS so far.
func (f *FS) Written() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written
}

// Live returns, sorted, the files created through the FS that it has not seen removed (by
// Remove, RemoveAll of a parent, or Rename away).
func (f *FS) Live() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.live))
	for p := range f.live {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// String summarizes the calls and faults per operation, e.g. "write 12/1 close 4/0".
func (f *FS) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var parts []string
	for op := range numOps {
		if f.calls[op] > 0 {
			parts = append(parts, fmt.Sprintf("%v %d/%d", op, f.calls[op], f.faults[op]))
		}
	}
	return strings.Join(parts, " ")
}

// fault is the decision for one call.
type fault struct {
	mode Mode
	keep int // bytes a Torn or Short write writes
	err  error
}

// check counts a call of op on path with n bytes (writes) and returns the fault to inject, if any.
func (f *FS) check(op Op, path string, n int) *fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if f.off {
		return nil
	}
	for i, r := range f.rules {
		if r.Op != op || (r.Match != nil && !r.Match(path)) {
			continue
		}
		f.seen[i]++
		var why string
		keep := -1
		switch {
		case r.Nth > 0 && f.seen[i] == r.Nth:
			why = fmt.Sprintf("call %d", r.Nth)
		case r.Prob > 0 && f.rng.Float64() < r.Prob:
			why = fmt.Sprintf("probability %g", r.Prob)
		case r.AfterBytes > 0 && f.written+int64(n) > r.AfterBytes:
			why = fmt.Sprintf("disk full: %d of %d bytes written", f.written, r.AfterBytes)
			keep = int(max(0, r.AfterBytes-f.written))
		default:
			continue
		}
		ft := &fault{mode: r.Mode}
		if r.Mode != Fail {
			if keep < 0 {
				keep = 0
				if n > 1 {
					keep = f.rng.IntN(n)
				}
			}
			ft.keep = min(keep, max(n-1, 0))
		}
		f.faults[op]++
		if r.Mode != Short {
			ft.err = &fs.PathError{Op: op.String(), Path: path, Err: fmt.Errorf("%w (%s)", ErrInjected, why)}
		}
		return ft
	}
	return nil
}

func (f *FS) wrote(n int) {
	if n > 0 {
		f.mu.Lock()
		f.written += int64(n)
		f.mu.Unlock()
	}
}

// OpenFile implements storage.FS.
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (storage.File, error) {
	op := OpenRead
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 {
		op = OpenWrite
	}
	if ft := f.check(op, name, 0); ft != nil {
		return nil, ft.err
	}
	file, err := f.base.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if flag&os.O_CREATE != 0 {
		f.mu.Lock()
		f.live[filepath.Clean(name)] = struct{}{}
		f.mu.Unlock()
	}
	return &File{f: file, fs: f}, nil
}

// MkdirAll implements storage.FS.
func (f *FS) MkdirAll(path string, perm fs.FileMode) error {
	if ft := f.check(Mkdir, path, 0); ft != nil {
		return ft.err
	}
	return f.base.MkdirAll(path, perm)
}

// MkdirTemp implements storage.FS.
func (f *FS) MkdirTemp(dir, pattern string) (string, error) {
	if ft := f.check(Mkdir, filepath.Join(dir, pattern), 0); ft != nil {
		return "", ft.err
	}
	return f.base.MkdirTemp(dir, pattern)
}

// Remove implements storage.FS.
func (f *FS) Remove(name string) error {
	if ft := f.check(Remove, name, 0); ft != nil {
		return ft.err
	}
	if err := f.base.Remove(name); err != nil {
		return err
	}
	f.mu.Lock()
	delete(f.live, filepath.Clean(name))
	f.mu.Unlock()
	return nil
}

// RemoveAll implements storage.FS.
func (f *FS) RemoveAll(path string) error {
	if ft := f.check(RemoveAll, path, 0); ft != nil {
		return ft.err
	}
	if err := f.base.RemoveAll(path); err != nil {
		return err
	}
	path = filepath.Clean(path)
	f.mu.Lock()
	for p := range f.live {
		if p == path || strings.HasPrefix(p, path+string(filepath.Separator)) {
			delete(f.live, p)
		}
	}
	f.mu.Unlock()
	return nil
}

// Rename implements storage.FS.
func (f *FS) Rename(oldpath, newpath string) error {
	if ft := f.check(Rename, oldpath, 0); ft != nil {
		return ft.err
	}
	if err := f.base.Rename(oldpath, newpath); err != nil {
		return err
	}
	oldpath, newpath = filepath.Clean(oldpath), filepath.Clean(newpath)
	f.mu.Lock()
	if _, ok := f.live[oldpath]; ok {
		delete(f.live, oldpath)
		f.live[newpath] = struct{}{}
	}
	f.mu.Unlock()
	return nil
}

// File is a storage.File opened through an FS; its calls are subject to the FS's rules.
type File struct {
	f  storage.File
	fs *FS
}

// Name implements storage.File.
func (f *File) Name() string { return f.f.Name() }

// Read implements storage.File.
func (f *File) Read(p []byte) (int, error) {
	if ft := f.fs.check(Read, f.Name(), len(p)); ft != nil {
		return 0, ft.err
	}
	return f.f.Read(p)
}

// ReadAt implements storage.File.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if ft := f.fs.check(ReadAt, f.Name(), len(p)); ft != nil {
		return 0, ft.err
	}
	return f.f.ReadAt(p, off)
}

// Write implements storage.File.
func (f *File) Write(p []byte) (int, error) {
	ft := f.fs.check(Write, f.Name(), len(p))
	if ft == nil {
		n, err := f.f.Write(p)
		f.fs.wrote(n)
		return n, err
	}
	if ft.mode == Fail {
		return 0, ft.err
	}
	n, err := f.f.Write(p[:ft.keep])
	f.fs.wrote(n)
	if err != nil {
		return n, err
	}
	return n, ft.err
}

// Close implements storage.File. A faulted Close still closes the file.
func (f *File) Close() error {
	ft := f.fs.check(Close, f.Name(), 0)
	err := f.f.Close()
	if ft != nil {
		return ft.err
	}
	return err
}

// Sync implements storage.File.
func (f *File) Sync() error {
	if ft := f.fs.check(Sync, f.Name(), 0); ft != nil {
		return ft.err
	}
	return f.f.Sync()
}

// Stat implements storage.File.
func (f *File) Stat() (fs.FileInfo, error) {
	if ft := f.fs.check(Stat, f.Name(), 0); ft != nil {
		return nil, ft.err
	}
	return f.f.Stat()
}
