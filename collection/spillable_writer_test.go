package collection

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/memory"
)

// writerColl is a collection reduced to its Spillable: held stands for the bytes of its
// in-memory data, which a spill (forced or not) drops.
type writerColl struct {
	sp   Spillable
	io   ioMemory
	held int64
}

func (f *writerColl) Spill(size int64, trigger memory.Consumer) (int64, error) {
	return f.sp.Spill(size, trigger)
}
func (f *writerColl) Used() int64       { return f.sp.Used() }
func (f *writerColl) Mode() memory.Mode { return f.sp.Mode() }

func (f *writerColl) force() (bool, int64, error) {
	if f.held == 0 {
		return false, 0, nil
	}
	f.held = 0
	return true, 0, nil
}

func (f *writerColl) spill() (int64, error) { f.held = 0; return 0, nil }
func (f *writerColl) size() int64           { return f.held }

// hookConsumer holds memory it gives back when asked to spill, after running onSpill.
type hookConsumer struct {
	base    memory.ConsumerBase
	spill   bool // Spill gives back what it holds (false: a filler that cannot spill)
	onSpill func()
}

func (c *hookConsumer) Spill(int64, memory.Consumer) (int64, error) {
	if c.onSpill != nil {
		c.onSpill()
	}
	n := c.base.Used()
	if !c.spill || n == 0 {
		return 0, nil
	}
	c.base.Free(n)
	return n, nil
}
func (c *hookConsumer) Used() int64       { return c.base.Used() }
func (c *hookConsumer) Mode() memory.Mode { return c.base.Mode() }

// TestForcedSpillDuringAcquisitionKeepsWriter: in memory.Strict accounting, when a forced spill
// empties a collection while it waits for execution memory at its memory check, the collection
// gives the grant back (it was for data now on disk) and then reserves its spill writer, whose
// reservation the forced spill released. Before, it kept the grant, which could take the
// whole share, and failed the insert for want of its spill writer's buffers while holding it
// (the cogroup's "cannot hold a record ... for its spill writer, holding 0 B" with the map
// holding 3.9 MiB). The forced spill comes from a hook of another consumer that the task asks
// to spill during the collection's acquisition, as a consumer of another goroutine would.
func TestForcedSpillDuringAcquisitionKeepsWriter(t *testing.T) {
	const budget, rec, small = 1 << 20, 4 << 10, 1 << 10
	ctx := context.Background()
	tm := newTestTask(t, budget)
	f := &writerColl{}
	f.io.Init(tm, "fake")
	f.sp.Init(tm, f, "fake", SpillConfig{InitialThreshold: NoInitialThreshold}, f.force)
	f.sp.reserveWriterOn(&f.io)
	writer := writerCost(f.sp.Config(), rec, 1<<62)

	// The first record: the writer, then the memory check's grant.
	f.sp.Lock()
	defer f.sp.Unlock()
	require.NoError(t, f.sp.admit(ctx, 0, 0, rec, f.spill, f.size))
	f.held += rec
	f.sp.retain(rec)
	require.Equal(t, writer, f.io.Used())
	threshold := f.sp.Threshold()
	require.Positive(t, threshold)

	// The rest of the task's share: a filler that cannot spill, and a small consumer that, asked
	// to spill, first has the collection force-spilled (releasing its memory and its writer).
	filler := &hookConsumer{}
	filler.base.Init(tm, memory.OnHeap, "filler", filler)
	hook := &hookConsumer{spill: true}
	hook.base.Init(tm, memory.OnHeap, "hook", hook)
	used := tm.Manager().ExecutionUsedForTask(1)
	require.Equal(t, int64(small), hook.use(t, small))
	free := budget - used - small
	got, err := filler.base.Acquire(ctx, free)
	require.NoError(t, err)
	require.Equal(t, free, got)
	var released int64
	var forceErr error
	hook.onSpill = func() {
		// The collection's lock is released while it acquires; Spill takes it.
		if released == 0 {
			released, forceErr = f.Spill(1, hook)
		}
	}

	// The next record's check asks for more than what the forced spill and the hook give back,
	// so the grant takes all of it and nothing would be left for the writer.
	est := threshold + writer + small
	require.NoError(t, f.sp.admit(ctx, est, 0, rec, f.spill, f.size))
	require.NoError(t, forceErr)
	require.Equal(t, threshold, released, "the hook force-spilled the collection")
	require.Equal(t, writer, f.io.Used(), "the writer is reserved again")
	require.Equal(t, int64(rec), f.sp.Used(), "only the record is held")
	require.Equal(t, int64(1), f.sp.Metrics().ForcedSpills)

	f.sp.MarkClosed()
	filler.base.Free(free)
	require.Zero(t, f.io.Used())
}

func (c *hookConsumer) use(t *testing.T, n int64) int64 {
	t.Helper()
	got, err := c.base.Acquire(context.Background(), n)
	require.NoError(t, err)
	return got
}
