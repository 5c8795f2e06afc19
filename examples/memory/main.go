// Command memory shows Spillway's memory manager at work: two tasks share execution memory
// fairly (each at most 1/N, each guaranteed 1/2N before it has to wait), and a consumer is asked
// to spill when its task needs memory for another consumer. Run it with
//
//	go run ./examples/memory
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/memory/memtest"
)

func size(n int64) string { return humanize.IBytes(uint64(n)) }

// buffer is an execution-memory consumer holding a real byte buffer of exactly what it was
// granted. Spilling drops the buffer (a real collection would write it to a spill file first).
type buffer struct {
	memory.ConsumerBase
	data []byte
}

func newBuffer(tm *memory.TaskManager, name string) *buffer {
	b := &buffer{}
	b.Init(tm, memory.OnHeap, name, b)
	return b
}

func (b *buffer) grow(ctx context.Context, n int64) (int64, error) {
	got, err := b.Acquire(ctx, n)
	if err == nil {
		b.data = append(b.data, make([]byte, got)...)
	}
	return got, err
}

func (b *buffer) release() {
	b.data = nil
	b.Free(b.Used())
}

func (b *buffer) Spill(_ int64, trigger memory.Consumer) (int64, error) {
	n := b.Used()
	fmt.Printf("  %v spills %s so that %v can grow\n", b, size(n), trigger)
	b.release()
	return n, nil
}

func main() {
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), `memory shows Spillway's memory manager at work, step by step: two tasks share execution
memory fairly (each at most 1/N, each guaranteed 1/2N before it waits), and a consumer is asked
to spill when its task needs memory for another. It takes no flags.

Usage: go run ./examples/memory`)
	}
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "memory example:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A 64 MiB budget, all of it unified (no reserved memory), half protected for storage.
	m, err := memory.NewUnifiedManager(memory.Config{
		SystemMemory: 64 << 20, ReservedMemory: memory.NoReservedMemory, Fraction: 1,
	})
	if err != nil {
		return err
	}
	pool := m.Metrics().Pools[memory.OnHeap]
	heap := memtest.Start() // the live heap at every garbage collection from here on
	fmt.Printf("unified memory %s (storage region %s, execution pool %s)\n",
		size(pool.Max), size(pool.StorageRegion), size(pool.ExecutionPoolSize))

	task1 := memory.NewTaskManager(m, 1, memory.TaskConfig{})
	sorter := newBuffer(task1, "task-1 sorter")
	got, err := sorter.grow(ctx, 64<<20)
	if err != nil {
		return err
	}
	fmt.Printf("task 1 alone: its sorter gets %s (1/N of the pool with N = 1, free storage borrowed)\n", size(got))

	// Task 2 arrives. With N = 2 it is owed 1/2N = 16 MiB, but nothing is free: it waits.
	task2 := memory.NewTaskManager(m, 2, memory.TaskConfig{})
	agg := newBuffer(task2, "task-2 aggregator")
	done := make(chan error, 1)
	go func() {
		_, err := agg.grow(ctx, 24<<20)
		done <- err
	}()
	if err := waitForWaiters(ctx, m, 1); err != nil {
		return err
	}
	fmt.Println("task 2 asks for 24 MiB and waits for its 1/2N share (16 MiB)")

	// Task 1 needs memory for a second consumer. It already holds more than 1/N = 32 MiB, so the
	// pool grants nothing and the task manager asks its sorter to spill.
	hash := newBuffer(task1, "task-1 hash map")
	fmt.Println("task 1's hash map asks for 16 MiB:")
	got, err = hash.grow(ctx, 16<<20)
	if err != nil {
		return err
	}
	fmt.Printf("  task 1's hash map gets %s\n", size(got))
	if err := <-done; err != nil {
		return err
	}
	fmt.Printf("task 2 wakes up with %s\n", size(agg.Used()))

	mt := m.Metrics()
	fmt.Printf("now: task 1 holds %s, task 2 holds %s, each at most 1/N = %s\n",
		size(mt.Pools[memory.OnHeap].Tasks[1]), size(mt.Pools[memory.OnHeap].Tasks[2]), size(pool.Max/2))
	fmt.Printf("waits %d, spills %d releasing %s\n", mt.Waits, mt.SpillsRequested, size(mt.SpillBytesReleased))

	hash.release()
	agg.release()
	leaked := task1.Close() + task2.Close()
	fmt.Printf("tasks closed, leaked %s, execution memory in use %s\n", size(leaked), size(m.ExecutionUsed()))
	fmt.Println(heapLine(heap.Stop(), pool.Max))
	if leaked != 0 {
		return errors.New("managed memory leaked")
	}
	return nil
}

// waitForWaiters polls the manager's metrics until n tasks wait for memory. An example can
// afford to poll; the package's tests use a hook instead.
func waitForWaiters(ctx context.Context, m *memory.UnifiedManager, n int) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for m.Metrics().Waiting < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d blocked tasks: %w", n, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// heapLine puts the peak live heap of a run beside the memory budget.
func heapLine(p memtest.Peak, budget int64) string {
	return fmt.Sprintf("peak live heap %s (budget %s, %.1f× the budget)", size(p.Peak), size(budget), float64(p.Peak)/float64(budget))
}
