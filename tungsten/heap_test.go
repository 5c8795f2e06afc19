package tungsten

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/memory/memtest"
)

// The task's memory is the bytes of the pages and arrays: on-heap the live heap grows by about
// what the aggregator holds and no more; off-heap the pages and the slot array are outside the Go
// heap, which stays flat while tens of MiB are held.
func TestLiveHeapIsThePages(t *testing.T) {
	const keys = 250_000
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			tm, scope := newTask(t, mode, 256*mib, 1*mib), newScope(t)
			base := memtest.LiveHeap()
			s := memtest.Start()
			a, err := NewAggregator(ctx, tm, scope, StringKey{}, Int64Key{}, sum, AggregatorConfig{})
			require.NoError(t, err)
			var buf []byte
			for i := range 2 * keys {
				buf = strconv.AppendInt(append(buf[:0], "key-"...), int64(i%keys)*7919, 10)
				require.NoError(t, a.Insert(ctx, string(buf), int64(i)))
			}
			used := a.Used()
			live := memtest.LiveHeap() - base
			peak := s.Stop()
			t.Logf("%s: held %d bytes, live heap grew by %d (%s)", mode, used, live, peak)
			require.GreaterOrEqual(t, used, int64(16*mib))
			if mode == memory.OnHeap {
				require.GreaterOrEqual(t, live, used*9/10, "the pages are on the Go heap")
				memtest.Require(t, peak, memtest.StrictBound(used))
			} else {
				require.Less(t, live, int64(2*mib), "off-heap pages stay out of the Go heap")
				memtest.Require(t, peak, memtest.StrictBound(0))
			}
			it, err := a.Iterator(ctx)
			require.NoError(t, err)
			require.Len(t, collect(t, it), keys)
			require.NoError(t, a.Close())
			require.Zero(t, a.Used())
		})
	}
}

// The task is charged exactly the bytes of the pages and arrays, nothing estimated.
func TestExactAccounting(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode memory.Mode) {
		tm, scope := newTask(t, mode, 64*mib, 64<<10), newScope(t)
		s := newSorter(t, tm, scope, uesConfig(true))
		m := newMap(t, tm, scope, MapConfig{})
		for i := range 20_000 {
			insertNumber(t, s, i)
			require.True(t, appendKV(t, m, long(i), long(i)))
		}
		var sorterPages, mapPages int64
		for _, p := range s.pages {
			sorterPages += p.Size()
		}
		for _, p := range m.dataPages {
			mapPages += p.Size()
		}
		require.Equal(t, sorterPages+s.inMem.memoryUsage(), s.Used())
		require.Equal(t, mapPages+m.array.bytes(), m.Used())
		// Besides, in memory.Strict accounting, each one's spill writer's buffers, on the Go heap.
		io := s.writer.io.Used() + m.writer.io.Used()
		require.Equal(t, writerCost(s.spill, 4)+writerCost(m.spill, uao+16), io)
		require.Equal(t, s.Used()+m.Used()+io, tm.Manager().ExecutionUsedForTask(tm.ID()))
	})
}
