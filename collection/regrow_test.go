package collection

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
)

// pinnedConsumer holds execution memory and never gives it up when asked to spill.
type pinnedConsumer struct{ base memory.ConsumerBase }

func (c *pinnedConsumer) Spill(int64, memory.Consumer) (int64, error) { return 0, nil }
func (c *pinnedConsumer) Used() int64                                 { return c.base.Used() }
func (c *pinnedConsumer) Mode() memory.Mode                           { return c.base.Mode() }

// TestExternalMapRegrow checks the growth of the table a spill starts: after a spill of the
// map's own, its first growth goes straight to the capacity of the table spilled (2048 slots for
// 1001 keys); after a forced spill, or when the task cannot grant the memory, it doubles from 64
// slots as usual. Each case inserts 1002 keys (the map spills before the 1002nd) and 100 more.
func TestExternalMapRegrow(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		acc   memory.Accounting
		force bool // the 1001 keys are spilled by another consumer, not by the map
		pin   bool // after the spill another consumer takes all the task's free memory but 16 KiB
		want  int  // capacity after the 100 keys
	}{
		{"own spill", memory.Strict, false, false, 2048},
		{"own spill/spark accounting", memory.SparkAllowances, false, false, 2048},
		{"forced spill", memory.Strict, true, false, 256},
		{"memory short", memory.SparkAllowances, false, true, 256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const budget = 4 << 20
			tm := newTestTaskAccounting(t, budget, tc.acc)
			cfg := SpillConfig{ForceSpillElements: 1000, InitialThreshold: NoInitialThreshold}
			if tc.force {
				cfg.ForceSpillElements = 0
			}
			m, err := NewExternalAppendOnlyMap(tm, newTestScope(t, nil), sumAgg[int](), intCodec, int64Codec,
				ExternalMapConfig[int]{SpillConfig: cfg})
			require.NoError(t, err)
			defer func() { require.NoError(t, m.Close()) }()
			for k := range 1001 {
				require.NoError(t, m.Insert(ctx, k, 1))
			}
			if tc.force {
				_, err := m.Spill(1, newTestConsumer(tm))
				require.NoError(t, err)
			}
			require.NoError(t, m.Insert(ctx, 1001, 1))
			require.Equal(t, 1, m.NumSpills())
			if tc.pin {
				p := &pinnedConsumer{}
				p.base.Init(tm, memory.OnHeap, "pinned", p)
				free := budget - tm.Manager().ExecutionUsedForTask(tm.ID()) - 16<<10
				got, err := p.base.Acquire(ctx, free)
				require.NoError(t, err)
				require.Equal(t, free, got)
				defer p.base.Free(got)
			}
			for k := 1002; k < 1102; k++ {
				require.NoError(t, m.Insert(ctx, k, 1))
			}
			require.Equal(t, 1, m.NumSpills())
			m.sp.Lock()
			capacity := m.current.Capacity()
			m.sp.Unlock()
			require.Equal(t, tc.want, capacity)
			it, err := m.Iterator(ctx)
			require.NoError(t, err)
			require.Len(t, drain(t, it), 1102)
		})
	}
}

// TestExternalGrouperRegrow: the grouper's table regrows as the map's does, straight to the
// spilled table's capacity after its own spill, doubling from 64 slots after a forced one.
func TestExternalGrouperRegrow(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		force bool
		want  int
	}{
		{"own spill", false, 2048},
		{"forced spill", true, 256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := newTestTaskAccounting(t, 4<<20, memory.Strict)
			cfg := SpillConfig{ForceSpillElements: 1000, InitialThreshold: NoInitialThreshold}
			if tc.force {
				cfg.ForceSpillElements = 0
			}
			g, err := NewExternalGrouper(tm, newTestScope(t, nil), int64Codec, int64Codec, ExternalMapConfig[int64]{SpillConfig: cfg})
			require.NoError(t, err)
			defer func() { require.NoError(t, g.Close()) }()
			for k := range int64(1001) {
				require.NoError(t, g.Insert(ctx, k, 1))
			}
			if tc.force {
				_, err := g.Spill(1, newTestConsumer(tm))
				require.NoError(t, err)
			}
			for k := int64(1001); k < 1102; k++ {
				require.NoError(t, g.Insert(ctx, k, 1))
			}
			require.Equal(t, 1, g.NumSpills())
			g.sp.Lock()
			capacity := g.current.Capacity()
			g.sp.Unlock()
			require.Equal(t, tc.want, capacity)
		})
	}
}
