package storage

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"
)

// Errors of the disk layer.
var (
	// ErrClosed is returned by a DiskBlockManager, Scope or DiskStore used after Close.
	ErrClosed = errors.New("storage: closed")
	// ErrBlockExists is returned when creating a block file that already exists.
	ErrBlockExists = errors.New("storage: block already exists")
	// ErrBlockNotFound is returned when opening or reading a block that does not exist.
	ErrBlockNotFound = errors.New("storage: block not found")
)

const (
	defaultSubDirsPerDir = 64 // spark.diskStore.subDirectories
	localDirPrefix       = "blockmgr-"
	// A local directory's lock file is its path plus lockSuffix; a flock on it marks the
	// directory's owner as alive, and it starts with lockContent (see lockDir).
	lockSuffix  = ".lock"
	lockContent = "spillway local directory owned by pid "
)

// DiskConfig configures a DiskBlockManager. The zero value means Spark's defaults.
type DiskConfig struct {
	// Dirs are the root directories (Spark's spark.local.dir). The manager creates one
	// "blockmgr-*" directory under each root and removes it on Close; block files are spread
	// over them by hash. Default: one root, os.TempDir().
	Dirs []string
	// KeepStaleDirs disables removing stale local directories. Each manager holds a lock on a
	// file beside each of its directories ("blockmgr-*.lock") for as long as it is open. By
	// default a new manager removes the local directories under its roots whose lock file no
	// process holds: those of processes killed before they could Close. It never touches a
	// directory without such a lock file (made by something else, Spark for one).
	KeepStaleDirs bool
	// SubDirsPerDir is the number of hashed subdirectories per local directory, created
	// lazily. Default 64 (spark.diskStore.subDirectories).
	SubDirsPerDir int
	// FS performs every file operation. Default OSFS{}.
	FS FS
	// Logger receives directory creation and deletion (Info) and deletion failures (Warn).
	// Default: no logging.
	Logger *zap.Logger
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c DiskConfig) Validate() error {
	var errs []error
	if c.SubDirsPerDir < 0 {
		errs = append(errs, fmt.Errorf("storage: DiskConfig.SubDirsPerDir %d is negative", c.SubDirsPerDir))
	}
	for i, d := range c.Dirs {
		if d == "" {
			errs = append(errs, fmt.Errorf("storage: DiskConfig.Dirs[%d] is empty", i))
		}
	}
	return errors.Join(errs...)
}

// DiskBlockManager is Spark's DiskBlockManager: it maps block ids to files under its local
// directories (hashed into subdirectories), creates block and temporary block files, and tracks
// every file it creates so that each is deleted by Remove, by the Scope that created it when that
// Scope closes (a task or spill owner ending), or by Close. Bytes written to its files are
// counted. It is safe for concurrent use.
type DiskBlockManager struct {
	fs      FS
	log     *zap.Logger
	dirs    []string
	locks   []*os.File // dirs[i]'s lock file (nil where flock is unavailable)
	subDirs int
	written atomic.Int64

	mu      sync.Mutex
	madeSub map[string]bool          // subdirectories created
	files   map[BlockID]*trackedFile // every live file this manager created
	peak    int                      // most entries files held since it was last rebuilt
	closed  bool
}

// shrinkMin is the fewest entries a map of live files must have held before it is rebuilt
// smaller: a Go map keeps the buckets of its largest size, so after many files came and went
// (a collection's thousands of spills, merged) it is copied into a map of the live ones once
// they are fewer than an eighth of its peak.
const shrinkMin = 1024

// shrunk returns m, or a copy of it sized for its entries if it held at least shrinkMin and
// eight times its entries since *peak was set, which it then updates.
func shrunk[V any](m map[BlockID]V, peak *int) map[BlockID]V {
	*peak = max(*peak, len(m))
	if *peak < shrinkMin || len(m) >= *peak/8 {
		return m
	}
	c := make(map[BlockID]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	*peak = len(m)
	return c
}

type trackedFile struct {
	path  string
	scope *Scope // nil: owned by the manager
}

// NewDiskBlockManager removes stale local directories (see DiskConfig.KeepStaleDirs), creates
// its own and returns the manager. On error nothing is left behind.
func NewDiskBlockManager(cfg DiskConfig) (*DiskBlockManager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &DiskBlockManager{
		fs:      cfg.FS,
		log:     cfg.Logger,
		subDirs: cfg.SubDirsPerDir,
		madeSub: map[string]bool{},
		files:   map[BlockID]*trackedFile{},
	}
	if m.fs == nil {
		m.fs = OSFS{}
	}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	m.log = m.log.Named("storage")
	if m.subDirs == 0 {
		m.subDirs = defaultSubDirsPerDir
	}
	roots := cfg.Dirs
	if len(roots) == 0 {
		roots = []string{os.TempDir()}
	}
	if !cfg.KeepStaleDirs {
		for _, root := range roots {
			m.removeStaleDirs(root)
		}
	}
	for _, root := range roots {
		dir, err := m.fs.MkdirTemp(root, localDirPrefix)
		if err != nil {
			err = fmt.Errorf("storage: creating a local directory in %s: %w", root, err)
			return nil, errors.Join(err, m.removeDirs())
		}
		m.dirs = append(m.dirs, dir)
		lock, err := lockDir(dir)
		m.locks = append(m.locks, lock)
		if err != nil {
			err = fmt.Errorf("storage: creating the lock file of local directory %s: %w", dir, err)
			return nil, errors.Join(err, m.removeDirs())
		}
		m.log.Info("created local directory", zap.String("dir", dir))
	}
	return m, nil
}

// removeStaleDirs removes the local directories under root, and their lock files, whose lock no
// process holds. Failures are logged: they do not stop this manager.
func (m *DiskBlockManager) removeStaleDirs(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return // MkdirTemp reports an unusable root
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, localDirPrefix) || !strings.HasSuffix(name, lockSuffix) {
			continue
		}
		dir := filepath.Join(root, strings.TrimSuffix(name, lockSuffix))
		lock := lockStale(dir + lockSuffix)
		if lock == nil {
			continue
		}
		size := dirSize(dir)
		if err := m.removeDir(dir, lock); err != nil {
			m.log.Warn("error deleting stale local directory", zap.String("dir", dir), zap.Error(err))
		} else {
			m.log.Info("deleted stale local directory", zap.String("dir", dir), zap.String("size", humanize.IBytes(uint64(size))))
		}
	}
}

// dirSize returns the bytes of the regular files under dir, as far as they can be listed.
func dirSize(dir string) int64 {
	var size int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				size += info.Size()
			}
		}
		return nil
	})
	return size
}

// LocalDirs returns the directories the manager created (Spark's localDirs).
func (m *DiskBlockManager) LocalDirs() []string { return append([]string(nil), m.dirs...) }

// File returns the path of id's file (Spark's getFile), creating its hashed subdirectory. It does
// not create the file.
func (m *DiskBlockManager) File(id BlockID) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fileLocked(id)
}

func (m *DiskBlockManager) fileLocked(id BlockID) (string, error) {
	if m.closed {
		return "", ErrClosed
	}
	if id.IsZero() {
		panic("storage: file of the zero BlockID")
	}
	name := id.String()
	h := fnv.New32a()
	h.Write([]byte(name))
	hash := h.Sum32()
	dir := m.dirs[hash%uint32(len(m.dirs))]
	sub := filepath.Join(dir, fmt.Sprintf("%02x", hash/uint32(len(m.dirs))%uint32(m.subDirs)))
	if !m.madeSub[sub] {
		if err := m.fs.MkdirAll(sub, 0o755); err != nil {
			return "", fmt.Errorf("storage: creating block subdirectory %s: %w", sub, err)
		}
		m.madeSub[sub] = true
	}
	return filepath.Join(sub, name), nil
}

// Contains reports whether the manager holds a live file for id (Spark's containsBlock).
func (m *DiskBlockManager) Contains(id BlockID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.files[id]
	return ok
}

// Create creates id's file for writing and reading (it must not exist: ErrBlockExists) and tracks
// it until Remove or Close. Writes through the returned File are counted in BytesWritten.
func (m *DiskBlockManager) Create(id BlockID) (File, error) { return m.create(id, nil) }

// CreateTempLocal creates a file for a new TempLocalBlockID (Spark's createTempLocalBlock, used
// by ExternalAppendOnlyMap spills), tracked like Create.
func (m *DiskBlockManager) CreateTempLocal() (BlockID, File, error) {
	return m.createTemp(TempLocalBlockID, nil)
}

// CreateTempShuffle creates a file for a new TempShuffleBlockID (Spark's createTempShuffleBlock,
// used by ExternalSorter spills), tracked like Create.
func (m *DiskBlockManager) CreateTempShuffle() (BlockID, File, error) {
	return m.createTemp(TempShuffleBlockID, nil)
}

func (m *DiskBlockManager) createTemp(mk func(string) BlockID, s *Scope) (BlockID, File, error) {
	for range 8 { // a collision of random UUIDs is practically impossible; retry anyway like Spark
		id := mk(NewTempID())
		f, err := m.create(id, s)
		if errors.Is(err, ErrBlockExists) {
			continue
		}
		if err != nil {
			return BlockID{}, nil, err
		}
		return id, f, nil
	}
	return BlockID{}, nil, errors.New("storage: could not find a free temp block id")
}

func (m *DiskBlockManager) create(id BlockID, s *Scope) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s != nil && s.closed {
		return nil, ErrClosed
	}
	if _, ok := m.files[id]; ok {
		return nil, fmt.Errorf("%w: %s", ErrBlockExists, id)
	}
	path, err := m.fileLocked(id)
	if err != nil {
		return nil, err
	}
	f, err := m.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %s (file %s)", ErrBlockExists, id, path)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: creating file for block %s: %w", id, err)
	}
	m.files[id] = &trackedFile{path: path, scope: s}
	m.peak = max(m.peak, len(m.files))
	if s != nil {
		s.ids[id] = struct{}{}
		s.peak = max(s.peak, len(s.ids))
	}
	return &countingFile{File: f, m: m, s: s}, nil
}

// Open opens id's file for reading. It is ErrBlockNotFound if the manager holds no file for id.
func (m *DiskBlockManager) Open(id BlockID) (File, error) {
	m.mu.Lock()
	tf, ok := m.files[id]
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrBlockNotFound, id)
	}
	f, err := m.fs.OpenFile(tf.path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("storage: opening file of block %s: %w", id, err)
	}
	return f, nil
}

// Remove deletes id's file and stops tracking it. It reports whether there was such a file; a
// failed deletion is logged ("Error deleting") and returned, and the file stays tracked so that
// Close tries again.
func (m *DiskBlockManager) Remove(id BlockID) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.removeLocked(id)
}

func (m *DiskBlockManager) removeLocked(id BlockID) (bool, error) {
	tf, ok := m.files[id]
	if !ok {
		return false, nil
	}
	if err := m.fs.Remove(tf.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Still tracked: a later Remove, the scope's Close or the manager's Close tries again.
		m.log.Warn("error deleting block file", zap.Stringer("block", id), zap.String("file", tf.path), zap.Error(err))
		return true, fmt.Errorf("storage: deleting file of block %s: %w", id, err)
	}
	delete(m.files, id)
	m.files = shrunk(m.files, &m.peak)
	if s := tf.scope; s != nil {
		delete(s.ids, id)
		s.ids = shrunk(s.ids, &s.peak)
	}
	return true, nil
}

// BytesWritten returns the bytes written to the manager's files so far (Spark's disk bytes
// written / spilled, for all owners).
func (m *DiskBlockManager) BytesWritten() int64 { return m.written.Load() }

// Files returns the number of live files the manager tracks.
func (m *DiskBlockManager) Files() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.files)
}

// Close deletes every tracked file and the local directories it created (Spark's stop with
// deleteFilesOnStop). Later calls return nil; other methods then return ErrClosed.
func (m *DiskBlockManager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	var errs []error
	for id := range m.files {
		if _, err := m.removeLocked(id); err != nil {
			errs = append(errs, err)
		}
	}
	m.closed = true
	errs = append(errs, m.removeDirs())
	m.log.Info("disk block manager closed", zap.String("bytes", humanize.IBytes(uint64(m.written.Load()))))
	return errors.Join(errs...)
}

// removeDirs deletes the local directories and their lock files.
func (m *DiskBlockManager) removeDirs() error {
	var errs []error
	for i, d := range m.dirs {
		if err := m.removeDir(d, m.locks[i]); err != nil {
			m.log.Warn("error deleting local directory", zap.String("dir", d), zap.Error(err))
			errs = append(errs, fmt.Errorf("storage: deleting local directory %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// removeDir deletes dir, then its lock file if lock (which holds the lock) is not nil, and
// releases the lock. A directory that cannot be deleted keeps its lock file, unlocked, so the
// next manager on the same root deletes it.
func (m *DiskBlockManager) removeDir(dir string, lock *os.File) error {
	err := m.fs.RemoveAll(dir)
	if lock != nil {
		if err == nil {
			if err = os.Remove(dir + lockSuffix); errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		}
		_ = lock.Close() // releases the lock
	}
	return err
}

// Scope groups the files one owner (a task, a spilling collection) creates through a
// DiskBlockManager: Close deletes every file created through the scope that is still live, so
// nothing outlives its owner, on success or on error. Spark deletes spill files in the task
// completion listener and in each collection's cleanup; a Scope is that, made explicit. It is
// safe for concurrent use.
type Scope struct {
	m       *DiskBlockManager
	ids     map[BlockID]struct{} // guarded by m.mu
	peak    int                  // guarded by m.mu: see shrunk
	closed  bool                 // guarded by m.mu
	written atomic.Int64
}

// NewScope returns a new, empty Scope.
func (m *DiskBlockManager) NewScope() *Scope {
	return &Scope{m: m, ids: map[BlockID]struct{}{}}
}

// Manager returns the DiskBlockManager the scope creates files in.
func (s *Scope) Manager() *DiskBlockManager { return s.m }

// Create is DiskBlockManager.Create with the file owned by the scope.
func (s *Scope) Create(id BlockID) (File, error) { return s.m.create(id, s) }

// CreateTempLocal is DiskBlockManager.CreateTempLocal with the file owned by the scope.
func (s *Scope) CreateTempLocal() (BlockID, File, error) {
	return s.m.createTemp(TempLocalBlockID, s)
}

// CreateTempShuffle is DiskBlockManager.CreateTempShuffle with the file owned by the scope.
func (s *Scope) CreateTempShuffle() (BlockID, File, error) {
	return s.m.createTemp(TempShuffleBlockID, s)
}

// Remove deletes a file (of this scope or not) like DiskBlockManager.Remove.
func (s *Scope) Remove(id BlockID) (bool, error) { return s.m.Remove(id) }

// Files returns the number of live files the scope owns.
func (s *Scope) Files() int {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return len(s.ids)
}

// Contains reports whether id is a live file of the scope.
func (s *Scope) Contains(id BlockID) bool {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	_, ok := s.ids[id]
	return ok
}

// BytesWritten returns the bytes written to files created through the scope (Spark's
// diskBytesSpilled for one task or collection).
func (s *Scope) BytesWritten() int64 { return s.written.Load() }

// Close deletes every live file the scope owns; afterwards Create fails with ErrClosed. A file
// whose deletion fails is reported and stays tracked by the manager, whose Close tries again.
// Later calls return nil.
func (s *Scope) Close() error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for id := range s.ids {
		if _, err := s.m.removeLocked(id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// countingFile counts the bytes written to a manager's file.
type countingFile struct {
	File
	m *DiskBlockManager
	s *Scope
}

func (f *countingFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.m.written.Add(int64(n))
	if f.s != nil {
		f.s.written.Add(int64(n))
	}
	return n, err
}
