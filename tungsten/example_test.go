package tungsten_test

import (
	"context"
	"fmt"
	"os"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
	"github.com/spillway/spillway/tungsten"
)

// newTask returns a task whose Tungsten pages are off-heap when offHeap, with budget bytes, and a
// disk scope for spills; cleanup releases both.
func newTask(budget int64, offHeap bool) (*memory.TaskManager, *storage.Scope, func()) {
	cfg := memory.Config{SystemMemory: budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 1, PageSize: 64 << 10}
	if offHeap {
		cfg.OffHeapEnabled, cfg.OffHeapSize = true, budget
	}
	mm, err := memory.NewUnifiedManager(cfg)
	if err != nil {
		panic(err)
	}
	tm := memory.NewTaskManager(mm, 1, memory.TaskConfig{})
	dir, err := os.MkdirTemp("", "tungsten-example")
	if err != nil {
		panic(err)
	}
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{dir}})
	if err != nil {
		panic(err)
	}
	scope := disk.NewScope()
	return tm, scope, func() {
		_ = scope.Close()
		_ = disk.Close()
		_ = os.RemoveAll(dir)
		if leaked := tm.Close(); leaked != 0 {
			fmt.Println("leaked", leaked)
		}
	}
}

// Summing values by string key in off-heap pages, on a budget small enough to spill: the
// spilled result comes back in key order.
func ExampleAggregator() {
	ctx := context.Background()
	tm, scope, cleanup := newTask(1<<20, true)
	defer cleanup()

	sum := func(a, b int64) int64 { return a + b }
	agg, err := tungsten.NewAggregator(ctx, tm, scope, tungsten.StringKey{}, tungsten.Int64Key{}, sum, tungsten.AggregatorConfig{})
	if err != nil {
		panic(err)
	}
	defer agg.Close()
	for i := range 125_000 {
		if err := agg.Insert(ctx, fmt.Sprintf("user-%05d", i%25_000), 1); err != nil {
			panic(err)
		}
	}
	it, err := agg.Iterator(ctx)
	if err != nil {
		panic(err)
	}
	defer it.Close()
	n := 0
	for it.Next() {
		if n < 2 {
			fmt.Println(it.Value().Key, it.Value().Value)
		}
		n++
	}
	if err := it.Err(); err != nil {
		panic(err)
	}
	fmt.Println(n, "keys; spilled:", agg.Metrics().Spills > 0)
	// Output:
	// user-00000 5
	// user-00001 5
	// 25000 keys; spilled: true
}

// Sorting int64 keys: the key prefix is the whole key, so the pointer array is radix sorted.
func ExampleSorter() {
	ctx := context.Background()
	tm, scope, cleanup := newTask(1<<20, false)
	defer cleanup()

	s, err := tungsten.NewSorter(ctx, tm, scope, tungsten.Int64Key{}, tungsten.StringKey{}, tungsten.SorterConfig{})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	for _, p := range []tungsten.Pair[int64, string]{{Key: 3, Value: "c"}, {Key: -7, Value: "minus seven"}, {Key: 42, Value: "answer"}, {Key: 0, Value: "zero"}} {
		if err := s.Insert(ctx, p.Key, p.Value); err != nil {
			panic(err)
		}
	}
	it, err := s.Iterator(ctx)
	if err != nil {
		panic(err)
	}
	defer it.Close()
	for it.Next() {
		fmt.Println(it.Value().Key, it.Value().Value)
	}
	// Output:
	// -7 minus seven
	// 0 zero
	// 3 c
	// 42 answer
}

// The byte-level map: look a key up, append it if absent, update its value in place.
func ExampleBytesToBytesMap() {
	ctx := context.Background()
	tm, scope, cleanup := newTask(1<<20, false)
	defer cleanup()

	m, err := tungsten.NewBytesToBytesMap(ctx, tm, scope, tungsten.MapConfig{})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	for _, w := range []string{"to", "be", "or", "not", "to", "be"} {
		loc := m.Lookup([]byte(w))
		if !loc.IsDefined() {
			if ok, err := loc.Append(ctx, []byte(w), []byte{0}); !ok || err != nil {
				panic("out of memory")
			}
		}
		loc.Value()[0]++
	}
	for it := m.Iterator(ctx); it.Next(); {
		fmt.Printf("%s=%d\n", it.Key(), it.Value()[0])
	}
	fmt.Println("held exactly", m.Used(), "bytes: one 64 KiB page and 64 slots of 16 bytes")
	// Output:
	// to=2
	// be=2
	// or=1
	// not=1
	// held exactly 66560 bytes: one 64 KiB page and 64 slots of 16 bytes
}
