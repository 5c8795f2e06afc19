package memory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// modelStore is a MemoryStore stand-in for the randomized test: it keeps cached blocks per mode
// and evicts whole blocks, oldest first, only when enough can be freed (like evictBlocksToFreeSpace),
// sometimes failing after dropping one block.
type modelStore struct {
	rng    *rand.Rand
	blocks [2][]int64
	unroll [2]int64
	fails  int
}

func (s *modelStore) EvictBlocksToFreeSpace(_ Block, space int64, mode Mode) (int64, error) {
	if s.rng.IntN(20) == 0 && len(s.blocks[mode]) > 0 {
		s.fails++
		freed := s.blocks[mode][0]
		s.blocks[mode] = s.blocks[mode][1:]
		return freed, errEvict
	}
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

func (s *modelStore) used(mode Mode) int64 {
	total := s.unroll[mode]
	for _, b := range s.blocks[mode] {
		total += b
	}
	return total
}

var errEvict = errors.New("disk failure while dropping a block")

// randConsumer holds plain memory and pages; Spill frees pages first, then plain memory (all of
// it, or min(plain, size) when partial).
type randConsumer struct {
	ConsumerBase
	partial bool
	pages   []*Page
}

func (c *randConsumer) pageBytes() int64 {
	var n int64
	for _, p := range c.pages {
		n += p.Size()
	}
	return n
}

func (c *randConsumer) Spill(size int64, _ Consumer) (int64, error) {
	var released int64
	for _, p := range c.pages {
		released += p.Size()
		c.FreePage(p)
	}
	c.pages = nil
	plain := c.Used()
	if c.partial {
		plain = min(plain, max(0, size-released))
	}
	c.Free(plain)
	return released + plain, nil
}

type randTask struct {
	tm        *TaskManager
	consumers []*randConsumer
}

// TestRandomizedInvariants performs tens of thousands of random acquires, releases, spills,
// page allocations, storage and unroll operations and task exits by 8 tasks × 3 consumers, and
// checks the invariants of doc.go after every step.
func TestRandomizedInvariants(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	const steps = 30000
	m, err := NewUnifiedManager(Config{SystemMemory: 100_000, ReservedMemory: NoReservedMemory, Fraction: 1,
		StorageFraction: 0.3, OffHeapSize: 40_000, PageSize: 512})
	require.NoError(t, err)
	store := &modelStore{rng: rng}
	m.SetEvictor(store)

	// Invariant 3: no grant lifts a task above 1/N of the pool's potential size.
	var grants int
	var unfair error
	for _, mode := range []Mode{OnHeap, OffHeap} {
		p := m.exec[mode]
		p.onGrant = func(task TaskID, granted int64) {
			if granted == 0 {
				return
			}
			grants++
			if limit := p.maxSize() / int64(len(p.tasks)); p.tasks[task] > limit && unfair == nil {
				unfair = fmt.Errorf("%s: a grant of %d lifted task %d to %d, above 1/N = %d", mode, granted, task, p.tasks[task], limit)
			}
		}
	}

	nextID := TaskID(0)
	newTask := func() *randTask {
		nextID++
		rt := &randTask{tm: NewTaskManager(m, nextID, TaskConfig{})}
		for i, mode := range []Mode{OnHeap, OnHeap, OffHeap} {
			c := &randConsumer{partial: rng.IntN(2) == 0}
			c.Init(rt.tm, mode, fmt.Sprintf("t%d-c%d", nextID, i), c)
			rt.consumers = append(rt.consumers, c)
		}
		return rt
	}
	tasks := make([]*randTask, 8)
	for i := range tasks {
		tasks[i] = newTask()
	}
	// A done context: a request that would wait returns context.Canceled at once.
	done, cancel := context.WithCancel(context.Background())
	cancel()

	var waits, exits int
	for step := range steps {
		rt := tasks[rng.IntN(len(tasks))]
		c := rt.consumers[rng.IntN(len(rt.consumers))]
		mode := Mode(rng.IntN(2))
		switch op := rng.IntN(100); {
		case op < 35:
			_, err := c.Acquire(done, 1+rng.Int64N(8000))
			switch {
			case errors.Is(err, context.Canceled):
				waits++
			case !errors.Is(err, errEvict):
				require.NoError(t, err, "step %d", step)
			}
		case op < 55:
			if plain := c.Used() - c.pageBytes(); plain > 0 {
				c.Free(rng.Int64N(plain + 1))
			}
		case op < 62:
			if c.Mode() == OnHeap {
				p, err := c.AllocatePage(done, 1+rng.Int64N(4000))
				switch {
				case err == nil:
					c.pages = append(c.pages, p)
				case errors.Is(err, ErrOutOfMemory), errors.Is(err, context.Canceled), errors.Is(err, errEvict):
				default:
					require.NoError(t, err, "step %d", step)
				}
			}
		case op < 68:
			if len(c.pages) > 0 {
				i := rng.IntN(len(c.pages))
				c.FreePage(c.pages[i])
				c.pages = append(c.pages[:i], c.pages[i+1:]...)
			}
		case op < 78:
			n := 1 + rng.Int64N(12000)
			ok, err := m.AcquireStorage(testBlock("b"), n, mode)
			if err == nil && ok {
				store.blocks[mode] = append(store.blocks[mode], n)
			}
		case op < 84:
			if bs := store.blocks[mode]; len(bs) > 0 {
				i := rng.IntN(len(bs))
				m.ReleaseStorage(bs[i], mode)
				store.blocks[mode] = append(bs[:i], bs[i+1:]...)
			}
		case op < 89:
			n := 1 + rng.Int64N(3000)
			if ok, err := m.AcquireUnroll(testBlock("u"), n, mode); err == nil && ok {
				store.unroll[mode] += n
			}
		case op < 94:
			if u := store.unroll[mode]; u > 0 {
				if rng.IntN(2) == 0 {
					m.ReleaseUnroll(u, mode)
					store.unroll[mode] = 0
				} else {
					size := 1 + rng.Int64N(2*u)
					if ok, err := m.TransferUnrollToStorage(testBlock("u"), u, size, mode); err == nil && ok {
						store.unroll[mode] = 0
						store.blocks[mode] = append(store.blocks[mode], size)
					}
				}
			}
		default:
			var held int64
			for _, c := range rt.consumers {
				held += c.Used()
			}
			require.Equal(t, held, rt.tm.Close(), "step %d: Close releases exactly what the consumers held", step)
			exits++
			*rt = *newTask()
		}
		require.NoError(t, unfair, "step %d", step)
		checkInvariants(t, m, store, tasks, step)
	}
	mt := m.Metrics()
	t.Logf("%d grants, %d would-wait, %d exits, %d spills (%d bytes), %d evictions (%d failed)",
		grants, waits, exits, mt.SpillsRequested, mt.SpillBytesReleased, mt.EvictionsRequested, store.fails)
	require.Positive(t, mt.SpillsRequested)
	require.Positive(t, mt.EvictionsRequested)
	require.Positive(t, waits)

	for _, rt := range tasks {
		rt.tm.Close()
	}
	m.ReleaseAllStorage()
	require.Zero(t, m.ExecutionUsed())
	require.Zero(t, m.StorageUsed())
	for _, mode := range []Mode{OnHeap, OffHeap} {
		require.Empty(t, m.exec[mode].tasks)
	}
}

// checkInvariants checks doc.go's invariants 1-4 and the consumers' bookkeeping. It compares
// with plain ifs: testify's helpers capture call stacks and would dominate the run time.
func checkInvariants(t *testing.T, m *UnifiedManager, store *modelStore, tasks []*randTask, step int) {
	t.Helper()
	if err := invariantError(m, store, tasks); err != nil {
		t.Fatalf("step %d: %v", step, err)
	}
}

func invariantError(m *UnifiedManager, store *modelStore, tasks []*randTask) error {
	mt := m.Metrics()
	for _, mode := range []Mode{OnHeap, OffHeap} {
		p := mt.Pools[mode]
		if p.ExecutionPoolSize+p.StoragePoolSize != p.Max {
			return fmt.Errorf("%s: pool sizes %d + %d != maximum %d", mode, p.ExecutionPoolSize, p.StoragePoolSize, p.Max)
		}
		if p.ExecutionUsed < 0 || p.ExecutionUsed > p.ExecutionPoolSize || p.StorageUsed < 0 || p.StorageUsed > p.StoragePoolSize {
			return fmt.Errorf("%s: use outside pool: execution %d/%d storage %d/%d", mode, p.ExecutionUsed, p.ExecutionPoolSize, p.StorageUsed, p.StoragePoolSize)
		}
		var sum int64
		for task, held := range p.Tasks {
			if held < 0 {
				return fmt.Errorf("%s: task %d holds %d", mode, task, held)
			}
			sum += held
		}
		if sum != p.ExecutionUsed {
			return fmt.Errorf("%s: per-task sum %d != execution used %d", mode, sum, p.ExecutionUsed)
		}
		if u := store.used(mode); u != p.StorageUsed {
			return fmt.Errorf("%s: storage used %d != cached blocks + unroll %d", mode, p.StorageUsed, u)
		}
		for _, rt := range tasks {
			var held int64
			for _, c := range rt.consumers {
				if c.Mode() == mode {
					held += c.Used()
				}
			}
			id := rt.tm.ID()
			if pool, cur, peak := p.Tasks[id], rt.tm.current[mode].Load(), rt.tm.PeakExecution(mode); held != pool || held != cur || held > peak {
				return fmt.Errorf("%s task %d: consumers hold %d, pool says %d, current %d, peak %d", mode, id, held, pool, cur, peak)
			}
		}
	}
	return nil
}
