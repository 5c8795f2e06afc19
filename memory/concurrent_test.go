package memory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A herd of blocked tasks is woken by one release, and every waiter gets its share.
func TestConcurrentHerdIsWoken(t *testing.T) {
	ctx := testCtx(t)
	m := newUMM(t, 1000, 0)
	waits := waitHook(&m.mon)
	owner := NewTaskManager(m, 0, TaskConfig{})
	c0 := newTestConsumer(owner, OnHeap, "owner")
	require.EqualValues(t, 1000, c0.use(t, 1000))

	const waiters = 7
	results := make([]<-chan result, waiters)
	for i := range results {
		tm := NewTaskManager(m, TaskID(i+1), TaskConfig{})
		c := newTestConsumer(tm, OnHeap, fmt.Sprintf("c%d", i+1))
		results[i] = async(func() (int64, error) { return c.Acquire(ctx, 100) })
	}
	awaitWaiting(t, ctx, waits, waiters) // all seven block at once
	for _, r := range results {
		requireNotDone(t, r)
	}
	require.EqualValues(t, 1000, owner.Close())
	for _, r := range results {
		require.Equal(t, result{n: 100}, await(t, ctx, r))
	}
	require.EqualValues(t, 700, m.ExecutionUsed())
	require.Zero(t, m.Metrics().Waiting)
}

// safeStore is a goroutine-safe evictor for the stress test. Its lock comes after the manager's.
type safeStore struct {
	mu     sync.Mutex
	blocks [2][]int64
}

func (s *safeStore) EvictBlocksToFreeSpace(_ Block, space int64, mode Mode) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var freed int64
	n := 0
	for n < len(s.blocks[mode]) && freed < space {
		freed += s.blocks[mode][n]
		n++
	}
	if freed < space {
		return 0, nil
	}
	s.blocks[mode] = s.blocks[mode][n:]
	return freed, nil
}

// Many goroutines, each a task with two spilling consumers, acquire (blocking), allocate pages,
// release, and exit and restart, while two cachers fill and drain storage. Every goroutine must
// finish (no waiter is stranded) well before the safety deadline, and everything returns to zero.
func TestConcurrentNoWaiterStranded(t *testing.T) {
	const tasks, rounds = 16, 500
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	m, err := NewUnifiedManager(Config{SystemMemory: 64 << 10, ReservedMemory: NoReservedMemory, Fraction: 1,
		PageSize: 1024})
	require.NoError(t, err)
	store := &safeStore{}
	m.SetEvictor(store)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	errs := make(chan error, tasks+2)
	var wg sync.WaitGroup
	for g := range tasks {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(g)))
			errs <- runTask(ctx, m, rng, g, rounds)
		})
	}
	stop := make(chan struct{})
	var cachers sync.WaitGroup
	for g := range 2 {
		cachers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(100+g)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := 1 + rng.Int64N(16<<10)
				ok, err := m.AcquireStorage(testBlock("cached"), n, OnHeap)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					store.mu.Lock()
					store.blocks[OnHeap] = append(store.blocks[OnHeap], n)
					store.mu.Unlock()
				}
				store.mu.Lock()
				var drop int64
				if bs := store.blocks[OnHeap]; len(bs) > 4 {
					drop, store.blocks[OnHeap] = bs[0], bs[1:]
				}
				store.mu.Unlock()
				m.ReleaseStorage(drop, OnHeap)
			}
		})
	}
	wg.Wait()
	close(stop)
	cachers.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	mt := m.Metrics()
	t.Logf("waits %d, spills %d, evictions %d", mt.Waits, mt.SpillsRequested, mt.EvictionsRequested)
	require.Zero(t, mt.Waiting)
	require.Zero(t, m.ExecutionUsed())
	require.Empty(t, mt.Pools[OnHeap].Tasks)
	p := mt.Pools[OnHeap]
	require.Equal(t, p.Max, p.ExecutionPoolSize+p.StoragePoolSize)
	store.mu.Lock()
	var cached int64
	for _, b := range store.blocks[OnHeap] {
		cached += b
	}
	store.mu.Unlock()
	require.Equal(t, cached, m.StorageUsed())
}

// runTask is one goroutine of TestConcurrentNoWaiterStranded: it restarts its task (a new id)
// every 50 rounds and checks that Close finds exactly what its consumers hold.
func runTask(ctx context.Context, m *UnifiedManager, rng *rand.Rand, g, rounds int) error {
	var tm *TaskManager
	var cs [2]*randConsumer
	start := func(round int) {
		tm = NewTaskManager(m, TaskID(g*1000+round), TaskConfig{})
		for i := range cs {
			cs[i] = &randConsumer{partial: i == 1}
			cs[i].Init(tm, OnHeap, fmt.Sprintf("g%d-c%d", g, i), cs[i])
		}
	}
	finish := func() error {
		held := cs[0].Used() + cs[1].Used()
		if leaked := tm.Close(); leaked != held {
			return fmt.Errorf("task %d: Close released %d, consumers held %d", tm.ID(), leaked, held)
		}
		return nil
	}
	start(0)
	for round := range rounds {
		c := cs[rng.IntN(2)]
		if rng.IntN(4) == 0 {
			p, err := c.AllocatePage(ctx, 1+rng.Int64N(4096))
			switch {
			case err == nil:
				c.pages = append(c.pages, p)
			case !errors.Is(err, ErrOutOfMemory):
				return err
			}
		} else if _, err := c.Acquire(ctx, 1+rng.Int64N(8<<10)); err != nil {
			return err
		}
		if plain := c.Used() - c.pageBytes(); plain > 0 && rng.IntN(2) == 0 {
			c.Free(rng.Int64N(plain + 1))
		}
		if len(c.pages) > 0 && rng.IntN(3) == 0 {
			c.FreePage(c.pages[0])
			c.pages = c.pages[1:]
		}
		if round%50 == 49 {
			if err := finish(); err != nil {
				return err
			}
			start(round + 1)
		}
	}
	return finish()
}
