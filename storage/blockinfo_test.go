package storage

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spillway/spillway/memory"
	"github.com/stretchr/testify/require"
)

// waitForWaiters spins (yielding, no sleeps) until n goroutines wait on id's lock.
func waitForWaiters(m *BlockInfoManager, id BlockID, n int) {
	for {
		m.mu.Lock()
		info := m.infos[id]
		got := 0
		if info != nil {
			got = info.waiters
		}
		m.mu.Unlock()
		if got >= n {
			return
		}
		runtime.Gosched()
	}
}

func newWritten(t *testing.T, m *BlockInfoManager, task memory.TaskID, id BlockID) *BlockInfo {
	t.Helper()
	info, created, err := m.LockNewBlockForWriting(context.Background(), task, id, MemoryOnly, false)
	require.NoError(t, err)
	require.True(t, created)
	return info
}

// Ported from Spark's BlockInfoManagerSuite.
func TestBlockInfoManager(t *testing.T) {
	ctx := context.Background()
	a := TestBlockID("a")

	t.Run("get non-existent block", func(t *testing.T) {
		m := NewBlockInfoManager()
		info, ok, err := m.LockForReading(ctx, 1, a, true)
		require.NoError(t, err)
		require.False(t, ok)
		require.Nil(t, info)
		_, ok, _ = m.LockForWriting(ctx, 1, a, true)
		require.False(t, ok)
	})

	t.Run("block can only be created once", func(t *testing.T) {
		m := NewBlockInfoManager()
		info := newWritten(t, m, 1, a)
		require.Equal(t, MemoryOnly, info.Level)
		info2, created, err := m.LockNewBlockForWriting(ctx, 2, a, DiskOnly, false)
		require.NoError(t, err)
		require.False(t, created)
		require.Nil(t, info2)
		r, w, ok := m.LockState(a)
		require.True(t, ok)
		require.Equal(t, 0, r)
		require.Equal(t, memory.TaskID(1), w)
	})

	t.Run("read locks are reentrant", func(t *testing.T) {
		m := NewBlockInfoManager()
		newWritten(t, m, 0, a)
		m.Unlock(0, a)
		for range 2 {
			_, ok, err := m.LockForReading(ctx, 1, a, false)
			require.NoError(t, err)
			require.True(t, ok)
		}
		_, ok, _ := m.LockForReading(ctx, 2, a, false)
		require.True(t, ok)
		require.Equal(t, 2, m.ReadLocks(1, a))
		r, _, _ := m.LockState(a)
		require.Equal(t, 3, r)
		_, ok, _ = m.LockForWriting(ctx, 3, a, false)
		require.False(t, ok, "readers exclude the writer")
		m.Unlock(1, a)
		m.Unlock(1, a)
		m.Unlock(2, a)
		require.Panics(t, func() { m.Unlock(1, a) })
		_, ok, _ = m.LockForWriting(ctx, 3, a, false)
		require.True(t, ok)
	})

	t.Run("lockNewBlockForWriting waits for the writer and keeps a read lock", func(t *testing.T) {
		m := NewBlockInfoManager()
		newWritten(t, m, 1, a)
		done := make(chan bool)
		go func() {
			info, created, err := m.LockNewBlockForWriting(ctx, 2, a, MemoryOnly, true)
			require.NoError(t, err)
			require.NotNil(t, info)
			done <- created
		}()
		waitForWaiters(m, a, 1)
		m.Unlock(1, a)
		require.False(t, <-done)
		require.Equal(t, 1, m.ReadLocks(2, a))
	})

	t.Run("lockNewBlockForWriting retries when the block is removed", func(t *testing.T) {
		m := NewBlockInfoManager()
		newWritten(t, m, 1, a)
		done := make(chan bool)
		go func() {
			_, created, err := m.LockNewBlockForWriting(ctx, 2, a, MemoryOnly, true)
			require.NoError(t, err)
			done <- created
		}()
		waitForWaiters(m, a, 1)
		m.RemoveBlock(1, a)
		require.True(t, <-done, "the waiter creates the block after it vanished")
		_, w, _ := m.LockState(a)
		require.Equal(t, memory.TaskID(2), w)
	})

	t.Run("blocking read waits for writer; removal wakes with not found", func(t *testing.T) {
		m := NewBlockInfoManager()
		newWritten(t, m, 1, a)
		_, ok, err := m.LockForReading(ctx, 2, a, false)
		require.NoError(t, err)
		require.False(t, ok)
		got := make(chan bool, 2)
		for task := range 2 {
			go func() {
				_, ok, err := m.LockForReading(ctx, memory.TaskID(10+task), a, true)
				require.NoError(t, err)
				got <- ok
			}()
		}
		waitForWaiters(m, a, 2)
		m.RemoveBlock(1, a)
		require.False(t, <-got)
		require.False(t, <-got)
		require.False(t, m.Contains(a))
	})

	t.Run("downgrade lets readers in", func(t *testing.T) {
		m := NewBlockInfoManager()
		newWritten(t, m, 1, a)
		got := make(chan bool)
		go func() {
			_, ok, err := m.LockForReading(ctx, 2, a, true)
			require.NoError(t, err)
			got <- ok
		}()
		waitForWaiters(m, a, 1)
		m.DowngradeLock(1, a)
		require.True(t, <-got)
		r, w, _ := m.LockState(a)
		require.Equal(t, 2, r)
		require.Equal(t, NoWriter, w)
		require.Equal(t, 1, m.ReadLocks(1, a))
	})

	t.Run("blocking write waits for readers; ctx cancel stops the wait", func(t *testing.T) {
		m := NewBlockInfoManager()
		newWritten(t, m, 1, a)
		m.DowngradeLock(1, a)
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error)
		go func() {
			_, ok, err := m.LockForWriting(cctx, 2, a, true)
			require.False(t, ok)
			errc <- err
		}()
		waitForWaiters(m, a, 1)
		cancel()
		require.ErrorIs(t, <-errc, context.Canceled)
		m.mu.Lock()
		require.Equal(t, 0, m.infos[a].waiters)
		m.mu.Unlock()

		done := make(chan bool)
		go func() {
			_, ok, err := m.LockForWriting(ctx, 2, a, true)
			require.NoError(t, err)
			done <- ok
		}()
		waitForWaiters(m, a, 1)
		m.Unlock(1, a)
		require.True(t, <-done)
	})

	t.Run("release all locks for task and leak report", func(t *testing.T) {
		m := NewBlockInfoManager()
		b, c := TestBlockID("b"), TestBlockID("c")
		newWritten(t, m, 0, a)
		m.Unlock(0, a)
		newWritten(t, m, 0, b)
		m.Unlock(0, b)
		newWritten(t, m, 1, c) // write lock held by task 1
		for range 3 {
			_, ok, _ := m.LockForReading(ctx, 1, a, false)
			require.True(t, ok)
		}
		_, ok, _ := m.LockForReading(ctx, 1, b, false)
		require.True(t, ok)
		_, ok, _ = m.LockForReading(ctx, 2, b, false)
		require.True(t, ok)

		waiting := make(chan bool)
		go func() {
			_, ok, err := m.LockForWriting(ctx, 3, a, true)
			require.NoError(t, err)
			waiting <- ok
		}()
		waitForWaiters(m, a, 1)

		ids := m.ReleaseAllLocksForTask(1)
		require.Equal(t, []BlockID{a, b, c}, ids)
		require.True(t, <-waiting)
		require.Empty(t, m.ReleaseAllLocksForTask(1))
		r, w, _ := m.LockState(b)
		require.Equal(t, 1, r, "task 2's read lock stays")
		require.Equal(t, NoWriter, w)
		_, w, _ = m.LockState(c)
		require.Equal(t, NoWriter, w)

		err := LockLeakReport(1, ids)
		require.ErrorIs(t, err, ErrLockLeak)
		require.EqualError(t, err, "3 block locks were not released by task 1: [test_a, test_b, test_c]")
		require.NoError(t, LockLeakReport(1, nil))
	})

	t.Run("misuse panics", func(t *testing.T) {
		m := NewBlockInfoManager()
		newWritten(t, m, 1, a)
		require.PanicsWithValue(t, "storage: task 2 removed block test_a without holding its write lock (writer 1)", func() { m.RemoveBlock(2, a) })
		require.Panics(t, func() { m.DowngradeLock(2, a) })
		require.Panics(t, func() { m.Unlock(2, a) })
		require.Panics(t, func() { m.Unlock(2, TestBlockID("zz")) })
		require.Panics(t, func() { m.LockForReading(ctx, 1, a, true) }, "would deadlock on itself")
		require.NotNil(t, m.AssertLockedForWriting(1, a))
		require.Panics(t, func() { m.AssertLockedForWriting(2, a) })
		m.DowngradeLock(1, a)
		require.Panics(t, func() { m.LockForWriting(ctx, 1, a, true) }, "no upgrade")
		_, ok, err := m.LockForWriting(ctx, 1, a, false)
		require.NoError(t, err)
		require.False(t, ok)
	})

	t.Run("clear wakes waiters", func(t *testing.T) {
		m := NewBlockInfoManager()
		newWritten(t, m, 1, a)
		got := make(chan bool)
		go func() {
			_, ok, err := m.LockForReading(ctx, 2, a, true)
			require.NoError(t, err)
			got <- ok
		}()
		waitForWaiters(m, a, 1)
		m.Clear()
		require.False(t, <-got)
		require.Equal(t, 0, m.Len())
	})
}

// Random concurrent lock traffic: a writer never overlaps a reader or another writer, and every
// task's locks are released at the end.
func TestBlockInfoManagerRandomConcurrent(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	m := NewBlockInfoManager()
	ids := []BlockID{TestBlockID("x"), TestBlockID("y"), TestBlockID("z")}
	var holders [3]atomic.Int64 // >0 readers, -1 writer
	for _, id := range ids {
		newWritten(t, m, 0, id)
		m.Unlock(0, id)
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			task := memory.TaskID(g + 1)
			for range 400 {
				i := rng.IntN(len(ids))
				if rng.IntN(3) == 0 {
					if _, ok, err := m.LockForWriting(context.Background(), task, ids[i], rng.IntN(2) == 0); err == nil && ok {
						require.True(t, holders[i].CompareAndSwap(0, -1), "writer overlaps")
						runtime.Gosched()
						require.True(t, holders[i].CompareAndSwap(-1, 0))
						m.Unlock(task, ids[i])
					}
				} else if _, ok, err := m.LockForReading(context.Background(), task, ids[i], rng.IntN(2) == 0); err == nil && ok {
					require.GreaterOrEqual(t, holders[i].Add(1), int64(1), "reader overlaps a writer")
					runtime.Gosched()
					holders[i].Add(-1)
					m.Unlock(task, ids[i])
				}
			}
			// Leak some locks at the end (waiting for nothing afterwards, so no wait cycle);
			// ReleaseAllLocksForTask frees them for the tasks still waiting.
			var leaked []BlockID
			for _, id := range ids {
				if _, ok, _ := m.LockForReading(context.Background(), task, id, false); ok && rng.IntN(2) == 0 {
					leaked = append(leaked, id)
				} else if ok {
					m.Unlock(task, id)
				}
			}
			require.Equal(t, leaked, m.ReleaseAllLocksForTask(task))
		})
	}
	wg.Wait()
	for _, id := range ids {
		r, w, ok := m.LockState(id)
		require.True(t, ok)
		require.Equal(t, 0, r)
		require.Equal(t, NoWriter, w)
	}
}
