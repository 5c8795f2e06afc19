package memory

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"unsafe"
	"weak"

	"github.com/stretchr/testify/require"
)

const poolPage = 1 << 20

// TestPagePoolReusesFreedPage: a page freed through a task is handed out again for the next page
// of the same size, in both modes, with its old bytes (pages are not zeroed), and the accounting
// is back to zero.
func TestPagePoolReusesFreedPage(t *testing.T) {
	for _, mode := range []Mode{OnHeap, OffHeap} {
		t.Run(mode.String(), func(t *testing.T) {
			m := newPoolUMM(t, mode, 4*poolPage)
			tm := NewTaskManager(m, 1, TaskConfig{})
			c := newTestConsumer(tm, mode, "c")
			ctx := context.Background()
			p, err := tm.AllocatePage(ctx, poolPage, c)
			require.NoError(t, err)
			// keep holds the on-heap page strongly, so the collector cannot take it from the pool.
			keep := p.Bytes()
			keep[0], keep[poolPage-1] = 7, 9
			tm.FreePage(p, c)
			require.Nil(t, p.Bytes())
			require.Zero(t, m.ExecutionUsed())

			q, err := tm.AllocatePage(ctx, poolPage, c)
			require.NoError(t, err)
			require.Equal(t, unsafe.SliceData(keep), unsafe.SliceData(q.Bytes()))
			require.EqualValues(t, poolPage, q.Size())
			require.Equal(t, []byte{7, 9}, []byte{q.Bytes()[0], q.Bytes()[poolPage-1]})
			require.EqualValues(t, poolPage, m.ExecutionUsed())
			tm.FreePage(q, c)
			require.Zero(t, tm.Close())
			require.Zero(t, m.ExecutionUsed())
			require.NoError(t, m.Close())
			require.Zero(t, m.pages.pooled())
		})
	}
}

// TestPagePoolOnHeapPageIsCollectable: the pool holds a freed on-heap page weakly, so a garbage
// collection takes it back (the budget is the memory: a freed page is garbage, pooled or not),
// and the next page is a new one.
func TestPagePoolOnHeapPageIsCollectable(t *testing.T) {
	m := newPoolUMM(t, OnHeap, 4*poolPage)
	tm := NewTaskManager(m, 1, TaskConfig{})
	c := newTestConsumer(tm, OnHeap, "c")
	ctx := context.Background()
	w := allocateAndFree(t, tm, c)
	require.Len(t, m.pages.heap, 1)
	runtime.GC()
	require.Nil(t, w.Value(), "the pooled page survived a garbage collection")

	q, err := tm.AllocatePage(ctx, poolPage, c)
	require.NoError(t, err)
	require.Equal(t, make([]byte, poolPage), q.Bytes(), "a new page is zeroed")
	require.Empty(t, m.pages.heap)
	tm.FreePage(q, c)
	require.Zero(t, tm.Close())
	require.Zero(t, m.ExecutionUsed())
}

// allocateAndFree allocates a page, frees it and returns a weak pointer to its memory: no strong
// reference to the memory outlives the call.
//
//go:noinline
func allocateAndFree(t *testing.T, tm *TaskManager, c Consumer) weak.Pointer[byte] {
	p, err := tm.AllocatePage(context.Background(), poolPage, c)
	require.NoError(t, err)
	w := weak.Make(unsafe.SliceData(p.Bytes()))
	tm.FreePage(p, c)
	return w
}

// TestPagePoolOffHeapStaysInTheBudget: pooled off-heap mappings plus the off-heap memory in use
// never exceed the off-heap size, the pool is trimmed when an acquisition takes the memory it
// counted on, and UnifiedManager.Close unmaps the rest.
func TestPagePoolOffHeapStaysInTheBudget(t *testing.T) {
	const size = 4 * poolPage
	m := newPoolUMM(t, OffHeap, size)
	tm := NewTaskManager(m, 1, TaskConfig{})
	c := newTestConsumer(tm, OffHeap, "pages")
	other := newTestConsumer(tm, OffHeap, "other")
	ctx := context.Background()
	var pages []*Page
	for range 4 {
		p, err := tm.AllocatePage(ctx, poolPage, c)
		require.NoError(t, err)
		pages = append(pages, p)
	}
	for _, p := range pages {
		tm.FreePage(p, c)
	}
	require.EqualValues(t, size, m.pages.pooled())

	// other takes 3 pages' worth without a page, then a page of another size leaves room for no
	// pooled page.
	other.use(t, 3*poolPage)
	p, err := tm.AllocatePage(ctx, poolPage/2, c)
	require.NoError(t, err)
	require.LessOrEqual(t, m.pages.pooled()+m.ExecutionUsed(), int64(size))
	require.Zero(t, m.pages.pooled())
	tm.FreePage(p, c)
	require.LessOrEqual(t, m.pages.pooled()+m.ExecutionUsed(), int64(size))
	other.Free(3 * poolPage)

	require.Zero(t, tm.Close())
	require.Zero(t, m.ExecutionUsed())
	require.NoError(t, m.Close())
	require.Zero(t, m.pages.pooled())
}

// TestPagePoolConcurrentTasks: tasks of one manager allocate, fill and free pages of a few sizes
// at once (run with -race); every page a task holds is its own, and the accounting ends at zero.
func TestPagePoolConcurrentTasks(t *testing.T) {
	for _, mode := range []Mode{OnHeap, OffHeap} {
		t.Run(mode.String(), func(t *testing.T) {
			const tasks, rounds = 4, 50
			m := newPoolUMM(t, mode, tasks*4*poolPage)
			var wg sync.WaitGroup
			leaked := make([]int64, tasks)
			for g := range tasks {
				wg.Go(func() {
					tm := NewTaskManager(m, TaskID(g), TaskConfig{})
					c := newTestConsumer(tm, mode, "c")
					for r := range rounds {
						var held []*Page
						for k := range 1 + r%3 {
							p, err := tm.AllocatePage(context.Background(), int64(poolPage>>(k%2)), c)
							if err != nil {
								panic(err)
							}
							fill(p.Bytes(), byte(g))
							held = append(held, p)
						}
						for _, p := range held {
							if !filled(p.Bytes(), byte(g)) {
								panic("memory: a page held by one task was written by another")
							}
							tm.FreePage(p, c)
						}
					}
					leaked[g] = tm.Close()
				})
			}
			wg.Wait()
			require.Equal(t, make([]int64, tasks), leaked)
			require.Zero(t, m.ExecutionUsed())
			require.NoError(t, m.Close())
			require.Zero(t, m.pages.pooled())
		})
	}
}

func fill(b []byte, v byte) {
	for i := 0; i < len(b); i += 512 {
		b[i] = v
	}
}

func filled(b []byte, v byte) bool {
	for i := 0; i < len(b); i += 512 {
		if b[i] != v {
			return false
		}
	}
	return true
}

func newPoolUMM(t *testing.T, mode Mode, size int64) *UnifiedManager {
	t.Helper()
	cfg := Config{SystemMemory: size, ReservedMemory: NoReservedMemory, Fraction: 1, NumCores: 1}
	if mode == OffHeap {
		cfg.SystemMemory, cfg.OffHeapEnabled, cfg.OffHeapSize = 1<<20, true, size
	}
	m, err := NewUnifiedManager(cfg)
	require.NoError(t, err)
	return m
}
