// Command quickstart is the usage example of README.md: an executor with a 16 MiB budget runs a
// task that counts words with an ExternalAppendOnlyMap, which spills to disk when the task's
// share of memory runs out. internal/archtest checks that README.md shows this file verbatim.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/memory/memtest"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "quickstart counts 2,000,000 words in a 16 MiB budget, spilling to disk.")
	}
	flag.Parse()
	ctx := context.Background()

	// One executor: 16 MiB shared by all its tasks, files in a temporary directory.
	const budget = 16 << 20
	ex, err := executor.New(executor.Config{Budget: budget})
	if err != nil {
		log.Fatal(err)
	}
	defer ex.Close() // deletes every file

	// Word count that spills to disk when the task's share of memory runs out.
	sum := collection.Aggregator[string, int64, int64]{
		CreateCombiner: func(v int64) int64 { return v },
		MergeValue:     func(c, v int64) int64 { return c + v },
		MergeCombiners: func(a, b int64) int64 { return a + b },
	}
	// The live heap at every garbage collection from here on, to compare with the budget.
	heap := memtest.Start()
	// One task: tc holds its memory manager and its disk scope, released when it ends.
	err = ex.Runner.Run(ctx, 1, func(ctx context.Context, tc *shuffle.TaskContext, _ int) error {
		counts, err := collection.NewExternalAppendOnlyMap(tc.TaskManager(), tc.Disk(), sum,
			storage.StringCodec{}, storage.VarintCodec[int64]{}, collection.ExternalMapConfig[string]{})
		if err != nil {
			return err
		}
		defer counts.Close() // releases memory, deletes spill files
		for i := range 2_000_000 {
			if err := counts.Insert(ctx, fmt.Sprintf("word-%d", i%400_000), 1); err != nil {
				return err
			}
		}
		it, err := counts.Iterator(ctx)
		if err != nil {
			return err
		}
		defer it.Close()
		n := 0
		for it.Next() {
			n++ // it.Value() is a collection.Pair[string, int64]
		}
		fmt.Println(n, "distinct words;", counts.Metrics().Spills, "spills to disk")
		return it.Err()
	})
	if err != nil {
		log.Fatal(err)
	}
	p := heap.Stop()
	fmt.Printf("peak live heap %.1f MiB (the most the garbage collector found live; budget %d MiB, %.1f× the budget)\n",
		float64(p.Peak)/(1<<20), budget>>20, float64(p.Peak)/budget)
}
