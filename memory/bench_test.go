package memory

import (
	"context"
	"sync"
	"testing"
)

func benchManager(b *testing.B) *UnifiedManager {
	m, err := NewUnifiedManager(Config{SystemMemory: 1 << 30, ReservedMemory: NoReservedMemory, Fraction: 1})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkAcquireReleaseUncontended is one task acquiring and releasing 1 KiB of execution memory.
func BenchmarkAcquireReleaseUncontended(b *testing.B) {
	m := benchManager(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.AcquireExecution(ctx, 1024, 1, OnHeap); err != nil {
			b.Fatal(err)
		}
		m.ReleaseExecution(1024, 1, OnHeap)
	}
}

// BenchmarkAcquireRelease16Tasks is the same with 16 goroutines on distinct tasks sharing the
// manager's lock; ns/op is wall time per acquire+release pair across all goroutines.
func BenchmarkAcquireRelease16Tasks(b *testing.B) {
	const goroutines = 16
	m := benchManager(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := range goroutines {
		n := b.N / goroutines
		if g < b.N%goroutines {
			n++
		}
		wg.Go(func() {
			task := TaskID(g)
			for range n {
				if _, err := m.AcquireExecution(ctx, 1024, task, OnHeap); err != nil {
					panic(err)
				}
				m.ReleaseExecution(1024, task, OnHeap)
			}
		})
	}
	wg.Wait()
}

// BenchmarkTaskManagerAcquireWithSpill: two consumers of one task take turns acquiring the whole
// pool, so every acquisition forces exactly one spill of the other consumer.
func BenchmarkTaskManagerAcquireWithSpill(b *testing.B) {
	m, err := NewUnifiedManager(Config{SystemMemory: 1 << 20, ReservedMemory: NoReservedMemory, Fraction: 1})
	if err != nil {
		b.Fatal(err)
	}
	tm := NewTaskManager(m, 1, TaskConfig{})
	cs := [2]*testConsumer{newTestConsumer(tm, OnHeap, "a"), newTestConsumer(tm, OnHeap, "b")}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if got, err := cs[i&1].Acquire(ctx, 1<<20); err != nil || got != 1<<20 {
			b.Fatalf("got %d, %v", got, err)
		}
		i++
	}
	b.StopTimer()
	if spills := m.Metrics().SpillsRequested; spills != int64(i-1) {
		b.Fatalf("%d spills for %d acquisitions", spills, i)
	}
	tm.Close()
}
