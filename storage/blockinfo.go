package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/spillway/spillway/memory"
)

// Task ids with a special meaning to BlockInfoManager.
const (
	// NoWriter is the writer of a block nobody holds the write lock of (Spark's
	// BlockInfo.NO_WRITER).
	NoWriter memory.TaskID = -1
	// NonTaskID is the task id for lock holders that are not tasks, such as a driver-side or
	// test goroutine (Spark's BlockInfo.NON_TASK_WRITER).
	NonTaskID memory.TaskID = -1024
)

// BlockInfo is Spark's BlockInfo: what the BlockInfoManager knows about one block. Level is set
// when the block is created. Size (bytes) is written by the holder of the block's write lock and
// read by holders of a read lock; the lock hand-over orders these accesses.
type BlockInfo struct {
	Level Level
	Size  int64

	// guarded by BlockInfoManager.mu
	readers int           // read locks held, by all tasks
	writer  memory.TaskID // NoWriter or the task holding the write lock
	waiters int           // goroutines waiting for changed
	changed chan struct{} // closed (and replaced) when a lock is released or the block removed
}

// BlockInfoManager is Spark's BlockInfoManager: it keeps each block's BlockInfo and its
// reader/writer lock. Many tasks may hold read locks on a block (a task may take the same read
// lock several times: locks are counted per task) or one task the write lock. Blocking
// acquisitions wait until the lock can be taken, the block disappears, or ctx ends. Locks are
// recorded per task so ReleaseAllLocksForTask can release what a finished task forgot. It is
// safe for concurrent use.
//
// Misuse panics: releasing a lock that is not held, removing a block without its write lock,
// and (unlike Spark, which would hang) blocking on a lock the same task holds in a conflicting
// mode.
type BlockInfoManager struct {
	mu         sync.Mutex
	infos      map[BlockID]*BlockInfo
	readLocks  map[memory.TaskID]map[BlockID]int
	writeLocks map[memory.TaskID]map[BlockID]struct{}
}

// NewBlockInfoManager returns an empty BlockInfoManager.
func NewBlockInfoManager() *BlockInfoManager {
	return &BlockInfoManager{
		infos:      map[BlockID]*BlockInfo{},
		readLocks:  map[memory.TaskID]map[BlockID]int{},
		writeLocks: map[memory.TaskID]map[BlockID]struct{}{},
	}
}

// LockForReading is Spark's lockForReading: it takes a read lock on id for task and returns the
// block's info and true. It returns false if the block does not exist, or (when blocking is false)
// if another task holds the write lock. When blocking, it waits for the writer to release; ctx
// ending stops the wait with ctx.Err(). Read locks are re-entrant: each must be released.
func (m *BlockInfoManager) LockForReading(ctx context.Context, task memory.TaskID, id BlockID, blocking bool) (*BlockInfo, bool, error) {
	return m.lock(ctx, task, id, blocking, false)
}

// LockForWriting is Spark's lockForWriting: it takes the write lock on id for task, which needs
// no reader and no other writer, and returns the block's info and true. It returns false if the
// block does not exist, or (when blocking is false) if the lock is held. When blocking, it waits;
// ctx ending stops the wait with ctx.Err().
func (m *BlockInfoManager) LockForWriting(ctx context.Context, task memory.TaskID, id BlockID, blocking bool) (*BlockInfo, bool, error) {
	return m.lock(ctx, task, id, blocking, true)
}

func (m *BlockInfoManager) lock(ctx context.Context, task memory.TaskID, id BlockID, blocking, write bool) (*BlockInfo, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		info := m.infos[id]
		if info == nil {
			return nil, false, nil
		}
		if info.writer == NoWriter && (!write || info.readers == 0) {
			if write {
				info.writer = task
				addTo(m.writeLocks, task, id, struct{}{})
			} else {
				info.readers++
				m.readLocks[task] = incr(m.readLocks[task], id)
			}
			return info, true, nil
		}
		if !blocking {
			return nil, false, nil
		}
		if info.writer == task || write && m.readLocks[task][id] > 0 {
			panic(fmt.Sprintf("storage: task %d would wait forever for a %s lock on block %s it holds itself (writer %d, its read locks %d)",
				task, mode(write), id, info.writer, m.readLocks[task][id]))
		}
		ch := info.changed
		info.waiters++
		m.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
		m.mu.Lock()
		info.waiters--
		if err != nil {
			return nil, false, err
		}
	}
}

func mode(write bool) string {
	if write {
		return "write"
	}
	return "read"
}

func addTo[V any](m map[memory.TaskID]map[BlockID]V, task memory.TaskID, id BlockID, v V) {
	if m[task] == nil {
		m[task] = map[BlockID]V{}
	}
	m[task][id] = v
}

func incr(counts map[BlockID]int, id BlockID) map[BlockID]int {
	if counts == nil {
		counts = map[BlockID]int{}
	}
	counts[id]++
	return counts
}

// LockNewBlockForWriting is Spark's lockNewBlockForWriting: if id does not exist it is created
// with the given level, write-locked by task, and (info, true) is returned. If it exists (another
// task won the race to create it), false is returned, together with the info and a read lock when
// keepReadLock is true (waiting, as LockForReading does, for the writer to finish; if the block
// disappears meanwhile the whole operation is retried), or with a nil info otherwise.
func (m *BlockInfoManager) LockNewBlockForWriting(ctx context.Context, task memory.TaskID, id BlockID, level Level, keepReadLock bool) (*BlockInfo, bool, error) {
	if id.IsZero() {
		panic("storage: LockNewBlockForWriting of the zero BlockID")
	}
	for {
		m.mu.Lock()
		if m.infos[id] == nil {
			info := &BlockInfo{Level: level, writer: task, changed: make(chan struct{})}
			m.infos[id] = info
			addTo(m.writeLocks, task, id, struct{}{})
			m.mu.Unlock()
			return info, true, nil
		}
		m.mu.Unlock()
		if !keepReadLock {
			return nil, false, nil
		}
		info, ok, err := m.LockForReading(ctx, task, id, true)
		if err != nil || ok {
			return info, false, err
		}
	}
}

// notify wakes the goroutines waiting on info.
func (info *BlockInfo) notify() {
	if info.waiters > 0 {
		close(info.changed)
		info.changed = make(chan struct{})
	}
}

// Unlock is Spark's unlock: it releases task's write lock on id if it holds it, else one of
// task's read locks. It panics if task holds no lock on id.
func (m *BlockInfoManager) Unlock(task memory.TaskID, id BlockID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	info := m.infos[id]
	if info == nil {
		panic(fmt.Sprintf("storage: task %d unlocked block %s, which does not exist", task, id))
	}
	switch {
	case info.writer == task:
		info.writer = NoWriter
		delete(m.writeLocks[task], id)
	case m.readLocks[task][id] > 0:
		m.releaseRead(task, id, info, 1)
	default:
		panic(fmt.Sprintf("storage: task %d unlocked block %s without holding a lock on it (writer %d, readers %d)",
			task, id, info.writer, info.readers))
	}
	info.notify()
}

func (m *BlockInfoManager) releaseRead(task memory.TaskID, id BlockID, info *BlockInfo, n int) {
	info.readers -= n
	if m.readLocks[task][id] -= n; m.readLocks[task][id] == 0 {
		delete(m.readLocks[task], id)
	}
}

// DowngradeLock is Spark's downgradeLock: task's write lock on id becomes a read lock, atomically.
// It panics if task does not hold the write lock.
func (m *BlockInfoManager) DowngradeLock(task memory.TaskID, id BlockID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	info := m.writeLocked(task, id, "downgraded")
	info.writer = NoWriter
	delete(m.writeLocks[task], id)
	info.readers++
	m.readLocks[task] = incr(m.readLocks[task], id)
	info.notify()
}

func (m *BlockInfoManager) writeLocked(task memory.TaskID, id BlockID, op string) *BlockInfo {
	info := m.infos[id]
	if info == nil || info.writer != task {
		writer := NoWriter
		if info != nil {
			writer = info.writer
		}
		panic(fmt.Sprintf("storage: task %d %s block %s without holding its write lock (writer %d)", task, op, id, writer))
	}
	return info
}

// AssertLockedForWriting is Spark's assertBlockIsLockedForWriting: it returns id's info and
// panics unless task holds its write lock.
func (m *BlockInfoManager) AssertLockedForWriting(task memory.TaskID, id BlockID) *BlockInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writeLocked(task, id, "asserted a write lock on")
}

// RemoveBlock is Spark's removeBlock: it deletes id's info and its write lock, which task must
// hold (it panics otherwise), and wakes everyone waiting for the block, who then find it gone.
func (m *BlockInfoManager) RemoveBlock(task memory.TaskID, id BlockID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	info := m.writeLocked(task, id, "removed")
	delete(m.infos, id)
	delete(m.writeLocks[task], id)
	info.writer = NoWriter
	close(info.changed) // the info is gone: wake every waiter for good
}

// ReleaseAllLocksForTask is Spark's releaseAllLocksForTask: it releases every lock task holds
// and returns the ids of the blocks it held locks on (each once, sorted by name). Call it when a
// task ends; a non-empty result is a leak (see LockLeakReport).
func (m *BlockInfoManager) ReleaseAllLocksForTask(task memory.TaskID) []BlockID {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []BlockID
	for id := range m.writeLocks[task] {
		if info := m.infos[id]; info != nil && info.writer == task {
			info.writer = NoWriter
			info.notify()
		}
		ids = append(ids, id)
	}
	for id, n := range m.readLocks[task] {
		if info := m.infos[id]; info != nil {
			m.releaseRead(task, id, info, n)
			info.notify()
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	delete(m.writeLocks, task)
	delete(m.readLocks, task)
	slices.SortFunc(ids, func(a, b BlockID) int { return cmp.Compare(a.String(), b.String()) })
	return ids
}

// ErrLockLeak is matched (errors.Is) by a LockLeakError.
var ErrLockLeak = errors.New("storage: block locks leaked")

// LockLeakError reports block locks a task did not release before it ended (Spark's executor
// logs this, or throws with spark.storage.exceptionOnPinLeak).
type LockLeakError struct {
	Task   memory.TaskID
	Blocks []BlockID
}

// Error reads "<k> block locks were not released by task <t>: [<ids>]".
func (e *LockLeakError) Error() string {
	names := make([]string, len(e.Blocks))
	for i, b := range e.Blocks {
		names[i] = b.String()
	}
	return fmt.Sprintf("%d block locks were not released by task %d: [%s]", len(e.Blocks), e.Task, strings.Join(names, ", "))
}

// Is makes errors.Is(err, ErrLockLeak) true.
func (e *LockLeakError) Is(target error) bool { return target == ErrLockLeak }

// LockLeakReport returns a *LockLeakError for the ids ReleaseAllLocksForTask returned, or nil if
// there are none.
func LockLeakReport(task memory.TaskID, released []BlockID) error {
	if len(released) == 0 {
		return nil
	}
	return &LockLeakError{Task: task, Blocks: released}
}

// ReadLocks returns how many read locks task holds on id.
func (m *BlockInfoManager) ReadLocks(task memory.TaskID, id BlockID) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.readLocks[task][id]
}

// LockState returns the number of read locks held on id (by all tasks) and the task holding its
// write lock (NoWriter if none), and false if the block does not exist.
func (m *BlockInfoManager) LockState(id BlockID) (readers int, writer memory.TaskID, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	info := m.infos[id]
	if info == nil {
		return 0, NoWriter, false
	}
	return info.readers, info.writer, true
}

// Contains reports whether id exists.
func (m *BlockInfoManager) Contains(id BlockID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.infos[id] != nil
}

// Len returns the number of blocks.
func (m *BlockInfoManager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.infos)
}

// Clear is Spark's clear: it forgets every block and lock and wakes all waiters, who find their
// blocks gone. Used when the block manager stops.
func (m *BlockInfoManager) Clear() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, info := range m.infos {
		close(info.changed)
	}
	clear(m.infos)
	clear(m.readLocks)
	clear(m.writeLocks)
}
