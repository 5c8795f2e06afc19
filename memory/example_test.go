package memory_test

import (
	"context"
	"fmt"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/memory"
)

type blockID string

func (b blockID) String() string { return string(b) }

func size(n int64) string { return humanize.IBytes(uint64(n)) }

// A 1 GiB process with Spark's defaults: 300 MiB reserved, 60% of the rest unified, half of that
// protected for storage. Execution borrows free storage memory; storage borrows free execution
// memory; neither takes memory the other is using.
func ExampleUnifiedManager() {
	m, err := memory.NewUnifiedManager(memory.Config{SystemMemory: 1 << 30})
	if err != nil {
		panic(err)
	}
	pool := m.Metrics().Pools[memory.OnHeap]
	fmt.Println("unified region:", size(pool.Max), "storage region:", size(pool.StorageRegion))

	ctx := context.Background()
	got, err := m.AcquireExecution(ctx, 300<<20, 1, memory.OnHeap)
	if err != nil {
		panic(err)
	}
	fmt.Println("task 1 got", size(got), "of execution memory")

	ok, err := m.AcquireStorage(blockID("rdd_0_0"), 200<<20, memory.OnHeap)
	if err != nil {
		panic(err)
	}
	fmt.Println("cache 200 MiB block:", ok, "- at most", size(m.MaxOnHeapStorage()), "can be cached now")

	m.ReleaseExecution(got, 1, memory.OnHeap)
	fmt.Println("execution used:", size(m.ExecutionUsed()), "storage used:", size(m.StorageUsed()))
	// Output:
	// unified region: 434 MiB storage region: 217 MiB
	// task 1 got 300 MiB of execution memory
	// cache 200 MiB block: false - at most 134 MiB can be cached now
	// execution used: 0 B storage used: 0 B
}

// buffer is a consumer that holds a real byte buffer and spills by dropping it (a real one would
// write it to disk first).
type buffer struct {
	memory.ConsumerBase
	data []byte
}

func (b *buffer) grow(ctx context.Context, n int64) error {
	got, err := b.Acquire(ctx, n)
	if err != nil {
		return err
	}
	b.data = append(b.data, make([]byte, got)...)
	return nil
}

func (b *buffer) Spill(_ int64, trigger memory.Consumer) (int64, error) {
	n := b.Used()
	fmt.Printf("%v spills %s for %v\n", b, size(n), trigger)
	b.data = nil // drop every reference so the garbage collector can reclaim it
	b.Free(n)
	return n, nil
}

// Two consumers of one task share its memory: when the second cannot get enough, the task
// manager asks the first to spill.
func ExampleTaskManager() {
	m, err := memory.NewUnifiedManager(memory.Config{Budget: 64 << 20})
	if err != nil {
		panic(err)
	}
	tm := memory.NewTaskManager(m, 1, memory.TaskConfig{})
	sorter, agg := &buffer{}, &buffer{}
	sorter.Init(tm, memory.OnHeap, "sorter", sorter)
	agg.Init(tm, memory.OnHeap, "aggregator", agg)

	ctx := context.Background()
	if err := sorter.grow(ctx, 48<<20); err != nil {
		panic(err)
	}
	if err := agg.grow(ctx, 32<<20); err != nil {
		panic(err)
	}
	fmt.Println("sorter holds", size(sorter.Used()), "aggregator holds", size(agg.Used()))
	fmt.Println("peak", size(tm.PeakExecution(memory.OnHeap)))

	agg.data = nil
	agg.Free(agg.Used())
	fmt.Println("leaked:", tm.Close())
	// Output:
	// sorter spills 48 MiB for aggregator
	// sorter holds 0 B aggregator holds 32 MiB
	// peak 48 MiB
	// leaked: 0
}

// "This many bytes for Spillway": Budget is the unified region itself, and SetGoMemoryLimit
// sets the Go memory limit to it plus an allowance for the rest of the process, so the
// collector keeps the process near the budget; Close restores the previous limit.
func ExampleConfig_budget() {
	m, err := memory.NewUnifiedManager(memory.Config{Budget: 64 << 20, SetGoMemoryLimit: true})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	s := m.Sizing()
	fmt.Println("sized from:", s.Source)
	fmt.Println("unified region:", size(s.OnHeap), "allowance:", size(s.NonSpillwayAllowance), "Go memory limit:", size(s.GoMemoryLimit))

	_, err = memory.NewUnifiedManager(memory.Config{SystemMemory: 16 << 20})
	fmt.Println(err)
	// Output:
	// sized from: Config.Budget
	// unified region: 64 MiB allowance: 48 MiB Go memory limit: 112 MiB
	// memory: INVALID_DRIVER_MEMORY.SYSTEM_MEMORY: Config.SystemMemory 16 MiB (16777216 bytes) must be at least 450 MiB (471859200 bytes, 1.5 × Config.ReservedMemory 300 MiB); for a plain budget set Config.Budget alone, or set Config.ReservedMemory to NoReservedMemory
}
