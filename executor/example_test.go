package executor_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"strings"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/executor"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

// orders yields partition p of a small table of (customer, amount) orders.
func orders(_ context.Context, _ *shuffle.TaskContext, p int) (collection.Iterator[collection.Pair[string, int64]], error) {
	rows := [][]collection.Pair[string, int64]{
		{{Key: "ada", Value: 30}, {Key: "bob", Value: 5}},
		{{Key: "ada", Value: 12}, {Key: "eve", Value: 7}},
	}
	return collection.FromSeq(slices.Values(rows[p])), nil
}

// cities yields the one partition of a (customer, city) table.
func cities(context.Context, *shuffle.TaskContext, int) (collection.Iterator[collection.Pair[string, string]], error) {
	return collection.FromSeq(slices.Values([]collection.Pair[string, string]{
		{Key: "ada", Value: "London"}, {Key: "bob", Value: "Paris"},
	})), nil
}

// An executor in a 16 MiB budget joins two keyed inputs; each reduce task gets its rows. The
// same call shuffles and spills when the sides are larger than the budget.
func ExampleJoin() {
	ex, err := executor.New(executor.Config{Budget: 16 << 20, Cores: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer ex.Close()

	left := executor.Input[string, int64]{Partitions: 2, Read: orders, Codec: storage.VarintCodec[int64]{}}
	right := executor.Input[string, string]{Partitions: 1, Read: cities, Codec: storage.StringCodec{}}
	rows := make([][]string, 2) // one slice per reduce task: tasks run at once
	cfg := executor.JoinConfig[string]{Partitioning: executor.Partitioning[string]{KeyCodec: storage.StringCodec{}, Partitions: 2},
		Kind: executor.LeftOuter}
	stats, err := executor.Join(context.Background(), ex, cfg, left, right,
		func(_ context.Context, _ *shuffle.TaskContext, p int, it collection.Iterator[executor.Row[string, int64, string]]) error {
			for r := range storage.All(it) {
				rows[p] = append(rows[p], fmt.Sprintf("%s %d %q", r.Key, r.Left, r.Right))
			}
			return it.Err()
		})
	if err != nil {
		log.Fatal(err)
	}
	all := slices.Concat(rows...)
	slices.Sort(all)
	fmt.Println(stats.Strategy)
	fmt.Println(strings.Join(all, "\n"))
	// Output:
	// broadcast hash join
	// ada 12 "London"
	// ada 30 "London"
	// bob 5 "Paris"
	// eve 7 ""
}

// CoGroup gathers, for every key, its values from each input (Spark's cogroup).
func ExampleCoGroup() {
	ex, err := executor.New(executor.Config{Budget: 16 << 20, Cores: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer ex.Close()

	spent := executor.Input[string, int64]{Partitions: 2, Read: orders, Codec: storage.VarintCodec[int64]{}}
	refunds := executor.Input[string, int64]{Partitions: 1, Codec: storage.VarintCodec[int64]{},
		Read: func(context.Context, *shuffle.TaskContext, int) (collection.Iterator[collection.Pair[string, int64]], error) {
			return collection.FromSeq(slices.Values([]collection.Pair[string, int64]{{Key: "ada", Value: 30}})), nil
		}}
	lines := make([][]string, 1)
	_, err = executor.CoGroup(context.Background(), ex, executor.Partitioning[string]{KeyCodec: storage.StringCodec{}, Partitions: 1},
		[]executor.Input[string, int64]{spent, refunds},
		func(_ context.Context, _ *shuffle.TaskContext, p int, it collection.Iterator[collection.Pair[string, [][]int64]]) error {
			for g := range storage.All(it) {
				slices.Sort(g.Value[0])
				lines[p] = append(lines[p], fmt.Sprintf("%s spent %v refunded %v", g.Key, g.Value[0], g.Value[1]))
			}
			return it.Err()
		})
	if err != nil {
		log.Fatal(err)
	}
	slices.Sort(lines[0])
	fmt.Println(strings.Join(lines[0], "\n"))
	// Output:
	// ada spent [12 30] refunded [30]
	// bob spent [5] refunded []
	// eve spent [7] refunded []
}

// Collect hands a job's result back to the caller, bounded by Config.MaxResultSize; Partitions
// streams it one partition at a time instead.
func ExampleCollect() {
	ex, err := executor.New(executor.Config{Budget: 16 << 20, Cores: 2, MaxResultSize: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer ex.Close()

	squares := func(_ context.Context, _ *shuffle.TaskContext, p int) (collection.Iterator[int], error) {
		return collection.FromSeq(func(yield func(int) bool) {
			for i := p * 3; i < p*3+3; i++ {
				if !yield(i * i) {
					return
				}
			}
		}), nil
	}
	got, err := executor.Collect(context.Background(), ex, 2, squares)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got)
	for v, err := range executor.Partitions(context.Background(), ex, 2, squares) {
		if err != nil {
			log.Fatal(err)
		}
		if v > 4 {
			break // nothing more is computed
		}
		fmt.Print(v, " ")
	}
	fmt.Println()
	// Output:
	// [0 1 4 9 16 25]
	// 0 1 4
}
