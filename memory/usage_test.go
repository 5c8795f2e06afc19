package memory

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// usageConsumer is a Consumer that never spills.
type usageConsumer struct{ ConsumerBase }

func (c *usageConsumer) Spill(int64, Consumer) (int64, error) { return 0, nil }

func TestConsumerUsage(t *testing.T) {
	m := newUMM(t, 1000, 0)
	tm := NewTaskManager(m, 1, TaskConfig{})
	require.Empty(t, tm.ConsumerUsage())

	a, b := &usageConsumer{}, &usageConsumer{}
	a.Init(tm, OnHeap, "a", a)
	b.Init(tm, OnHeap, "b", b)
	ctx := testCtx(t)
	got, err := a.Acquire(ctx, 100)
	require.NoError(t, err)
	require.Equal(t, int64(100), got)
	got, err = b.Acquire(ctx, 30)
	require.NoError(t, err)
	require.Equal(t, int64(30), got)
	require.Equal(t, []ConsumerUsage{{"a", OnHeap, 100}, {"b", OnHeap, 30}}, tm.ConsumerUsage())

	// A consumer that released everything stays listed with 0, in its first-acquisition place.
	a.Free(100)
	require.Equal(t, []ConsumerUsage{{"a", OnHeap, 0}, {"b", OnHeap, 30}}, tm.ConsumerUsage())

	// The snapshot is a copy: later changes do not show through it.
	snap := tm.ConsumerUsage()
	b.Free(30)
	require.Equal(t, int64(30), snap[1].Used)
	require.Equal(t, int64(0), tm.Close())
	require.Empty(t, tm.ConsumerUsage())
}
