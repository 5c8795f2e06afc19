package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// testBlock is a Block for tests.
type testBlock string

func (b testBlock) String() string { return string(b) }

// newUMM is the harness's createMemoryManager(maxOnHeap, maxOffHeap): fraction 1, no reserved
// memory, storage fraction 0.5, one core. Spark accepts 0 on-heap memory; Config reads 0 as
// "detect", so 0 becomes 1 byte here (the scenario note allows a tiny on-heap size).
func newUMM(t testing.TB, onHeap, offHeap int64) *UnifiedManager {
	t.Helper()
	m, _ := newObservedUMM(t, onHeap, offHeap)
	return m
}

func newObservedUMM(t testing.TB, onHeap, offHeap int64) (*UnifiedManager, *observer.ObservedLogs) {
	t.Helper()
	if onHeap == 0 {
		onHeap = 1
	}
	core, logs := observer.New(zapcore.DebugLevel)
	m, err := NewUnifiedManager(Config{
		SystemMemory: onHeap, ReservedMemory: NoReservedMemory, Fraction: 1, StorageFraction: 0.5,
		OffHeapSize: offHeap, NumCores: 1, Logger: zap.New(core),
	})
	require.NoError(t, err)
	return m, logs
}

// fakeEvictor is MemoryManagerSuite's makeMemoryStore: it frees exactly the bytes asked for when
// that many are in use, recording every call.
type fakeEvictor struct {
	m       *UnifiedManager
	calls   []int64
	evicted int
}

// EvictBlocksToFreeSpace runs with m's lock held, so it may read the pool directly.
func (f *fakeEvictor) EvictBlocksToFreeSpace(_ Block, space int64, mode Mode) (int64, error) {
	f.calls = append(f.calls, space)
	if space <= f.m.storage[mode].used {
		f.evicted++
		return space, nil
	}
	return 0, nil
}

// assertEvicted checks that exactly one evict call asked for n bytes, then resets the recorder
// (assertEvictBlocksToFreeSpaceCalled).
func (f *fakeEvictor) assertEvicted(t *testing.T, n int64) {
	t.Helper()
	require.Equal(t, []int64{n}, f.calls, "evict calls")
	require.NotZero(t, f.evicted, "evicted blocks")
	f.calls, f.evicted = nil, 0
}

// assertNotEvicted checks that no evict call happened (assertEvictBlocksToFreeSpaceNotCalled).
func (f *fakeEvictor) assertNotEvicted(t *testing.T) {
	t.Helper()
	require.Empty(t, f.calls, "evict calls")
	require.Zero(t, f.evicted, "evicted blocks")
}

func withFakeEvictor(m *UnifiedManager) *fakeEvictor {
	f := &fakeEvictor{m: m}
	m.SetEvictor(f)
	return f
}

// badEvictor is makeBadMemoryStore.
type badEvictor struct{}

func (badEvictor) EvictBlocksToFreeSpace(Block, int64, Mode) (int64, error) {
	return 0, fmt.Errorf("bad memory store!")
}

// testCtx is a safety-net deadline for tests that wait; no test relies on it firing.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitHook installs mon.onWait and returns a channel receiving, for every wait that begins, the
// number of goroutines waiting at that moment. It must be called before any goroutine uses the
// monitor. The hook sends with the lock held, so the channel is large enough never to block.
func waitHook(mon *monitor) <-chan int {
	ch := make(chan int, 1<<16)
	mon.onWait = func(waiting int) { ch <- waiting }
	return ch
}

// awaitWaits blocks until n more waits have begun: the proof that a request "blocks".
func awaitWaits(t *testing.T, ctx context.Context, ch <-chan int, n int) {
	t.Helper()
	for range n {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no waiter appeared: %v", ctx.Err())
		}
	}
}

// awaitWaiting blocks until a wait begins with exactly k goroutines waiting.
func awaitWaiting(t *testing.T, ctx context.Context, ch <-chan int, k int) {
	t.Helper()
	for {
		select {
		case n := <-ch:
			if n == k {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%d waiters never appeared: %v", k, ctx.Err())
		}
	}
}

// result is the outcome of an acquire run in a goroutine.
type result struct {
	n   int64
	err error
}

// async runs f in a goroutine; the returned channel yields its result once.
func async(f func() (int64, error)) <-chan result {
	ch := make(chan result, 1)
	go func() {
		n, err := f()
		ch <- result{n, err}
	}()
	return ch
}

// await returns the goroutine's result, failing the test when ctx ends first.
func await(t *testing.T, ctx context.Context, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		t.Fatalf("acquire did not complete: %v", ctx.Err())
		return result{}
	}
}

// requireNotDone checks that the goroutine has not completed (it is known to be waiting).
func requireNotDone(t *testing.T, ch <-chan result) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("acquire completed with %d, %v while it should wait", r.n, r.err)
	default:
	}
}
