// Command quickstart is the usage example of README.md: a task that counts words with an
// ExternalAppendOnlyMap, which spills to disk when the task's share of memory runs out.
// internal/archtest checks that README.md shows this file verbatim.
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/memory/memtest"
	"github.com/spillway/spillway/storage"
)

func main() {
	ctx := context.Background()

	// One executor: 16 MiB shared by all tasks (no reserved memory, all of it unified).
	const budget = 16 << 20
	mm, err := memory.NewUnifiedManager(memory.Config{
		SystemMemory: budget, ReservedMemory: memory.NoReservedMemory, Fraction: 1,
	})
	if err != nil {
		log.Fatal(err)
	}
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{}) // a temp dir, removed on Close
	if err != nil {
		log.Fatal(err)
	}
	defer disk.Close()

	// One task: its memory manager and its disk scope.
	tm := memory.NewTaskManager(mm, 1, memory.TaskConfig{})
	defer tm.Close() // reports leaked bytes
	scope := disk.NewScope()
	defer scope.Close()

	// Word count that spills to disk when the task's share of memory runs out.
	sum := collection.Aggregator[string, int64, int64]{
		CreateCombiner: func(v int64) int64 { return v },
		MergeValue:     func(c, v int64) int64 { return c + v },
		MergeCombiners: func(a, b int64) int64 { return a + b },
	}
	counts, err := collection.NewExternalAppendOnlyMap(tm, scope, sum,
		storage.StringCodec{}, storage.VarintCodec[int64]{}, collection.ExternalMapConfig[string]{})
	if err != nil {
		log.Fatal(err)
	}
	defer counts.Close() // releases memory, deletes spill files

	// The live heap at every garbage collection from here on, to compare with the budget.
	heap := memtest.Start()
	for i := range 2_000_000 {
		if err := counts.Insert(ctx, fmt.Sprintf("word-%d", i%400_000), 1); err != nil {
			log.Fatal(err)
		}
	}
	it, err := counts.Iterator()
	if err != nil {
		log.Fatal(err)
	}
	defer it.Close()
	n := 0
	for it.Next() {
		n++ // it.Value() is a collection.Pair[string, int64]
	}
	if err := it.Err(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "words;", counts.Metrics().Spills, "spills")
	p := heap.Stop()
	fmt.Printf("peak live heap %.1f MiB (budget %d MiB, %.1f× the budget)\n",
		float64(p.Peak)/(1<<20), budget>>20, float64(p.Peak)/budget)
}
