package memory

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// pageConsumer holds pages; its Spill frees them all (like a sorter spilling its array).
type pageConsumer struct {
	ConsumerBase
	pages []*Page
}

func (c *pageConsumer) Spill(_ int64, _ Consumer) (int64, error) {
	var n int64
	for _, p := range c.pages {
		n += p.Size()
		c.FreePage(p)
	}
	c.pages = nil
	return n, nil
}

func newPageConsumer(tm *TaskManager, mode Mode) *pageConsumer {
	c := &pageConsumer{}
	c.Init(tm, mode, "pages", c)
	return c
}

// GrowPage keeps a page's bytes and number, accounts its new size, and refuses (changing
// nothing) when the task cannot grant the growth or a spill freed the page meanwhile.
func TestGrowPage(t *testing.T) {
	const mib = 1 << 20
	for _, mode := range []Mode{OnHeap, OffHeap} {
		t.Run(mode.String(), func(t *testing.T) {
			var m *UnifiedManager
			if mode == OffHeap {
				m = newOffHeapUMM(t, 16*mib)
			} else {
				m = newUMM(t, 16*mib, 0)
			}
			ctx := context.Background()
			tm := NewTaskManager(m, 0, TaskConfig{})
			c := newPageConsumer(tm, mode)
			p, err := c.AllocatePage(ctx, 3*mib)
			require.NoError(t, err)
			c.pages = append(c.pages, p)
			for i := range p.Bytes() {
				p.Bytes()[i] = byte(i * 7 >> 3) // a pattern a copy must keep
			}
			number := p.Number()

			ok, err := c.GrowPage(ctx, p, 5*mib)
			require.NoError(t, err)
			require.True(t, ok)
			require.EqualValues(t, 5*mib, p.Size())
			require.Len(t, p.Bytes(), 5*mib)
			require.Equal(t, number, p.Number())
			require.Same(t, p, tm.Page(EncodePageNumberAndOffset(number, 0)))
			for i := range 3 * mib {
				if p.Bytes()[i] != byte(i*7>>3) {
					require.Failf(t, "byte lost", "byte %d of the grown page is %d, want %d", i, p.Bytes()[i], byte(i*7>>3))
				}
			}
			p.Bytes()[5*mib-1] = 1 // the new part is writable
			require.EqualValues(t, 5*mib, c.Used())
			require.EqualValues(t, 5*mib, m.Metrics().Pools[mode].ExecutionUsed)

			// 16 MiB cannot be had beside anything: the task spills c, which frees p.
			ok, err = c.GrowPage(ctx, p, 16*mib+1)
			require.NoError(t, err)
			require.False(t, ok)
			require.Nil(t, p.Bytes(), "the spill freed the page")
			require.Zero(t, c.Used())
			require.Zero(t, m.Metrics().Pools[mode].ExecutionUsed, "nothing stays acquired")
			require.Zero(t, tm.Close())
		})
	}
}

// stuckConsumer's Spill releases nothing.
type stuckConsumer struct{ pageConsumer }

func (c *stuckConsumer) Spill(int64, Consumer) (int64, error) { return 0, nil }

// A growth the task cannot grant even after asking for spills leaves the page as it was and
// nothing acquired. On-heap the new size is acquired in full beside the old page (the copy holds
// both); off-heap only the difference.
func TestGrowPageRefused(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		mode     Mode
		fits     int64 // the largest growth of a 2 MiB page that fits in 8 MiB
		tooLarge int64
	}{
		{OnHeap, 6 * mib, 6*mib + 1},
		{OffHeap, 8 * mib, 8*mib + 1},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			m := newUMM(t, 8*mib, 0)
			if tc.mode == OffHeap {
				m = newOffHeapUMM(t, 8*mib)
			}
			ctx := context.Background()
			tm := NewTaskManager(m, 0, TaskConfig{})
			c := &stuckConsumer{}
			c.Init(tm, tc.mode, "stuck", c)
			p, err := c.AllocatePage(ctx, 2*mib)
			require.NoError(t, err)
			require.EqualValues(t, 2*mib, p.Size())
			ok, err := c.GrowPage(ctx, p, tc.tooLarge)
			require.NoError(t, err)
			require.False(t, ok)
			require.EqualValues(t, 2*mib, p.Size())
			require.Len(t, p.Bytes(), 2*mib)
			require.EqualValues(t, 2*mib, m.Metrics().Pools[tc.mode].ExecutionUsed, "only the page stays acquired")
			ok, err = c.GrowPage(ctx, p, tc.fits)
			require.NoError(t, err)
			require.True(t, ok)
			require.EqualValues(t, tc.fits, m.Metrics().Pools[tc.mode].ExecutionUsed)
			c.FreePage(p)
			require.Zero(t, tm.Close())
		})
	}
}

func TestGrowPageMisusePanics(t *testing.T) {
	m := newUMM(t, 1<<20, 0)
	ctx := context.Background()
	tm := NewTaskManager(m, 0, TaskConfig{})
	c := newTestConsumer(tm, OnHeap, "c")
	p, err := c.AllocatePage(ctx, 1024)
	require.NoError(t, err)
	require.PanicsWithValue(t, fmt.Sprintf("memory: GrowPage of a page of %d bytes to %d bytes", p.Size(), p.Size()),
		func() { _, _ = c.GrowPage(ctx, p, p.Size()) })
	direct, err := NewPage(OnHeap, 10)
	require.NoError(t, err)
	require.PanicsWithValue(t, "memory: GrowPage of a page this task does not hold", func() { _, _ = c.GrowPage(ctx, direct, 20) })
	_, err = c.GrowPage(ctx, p, MaxPageSize+1)
	require.ErrorIs(t, err, ErrPageTooLarge)
	c.FreePage(p)
	require.Zero(t, tm.Close())
}
