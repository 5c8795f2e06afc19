package collection_test

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"maps"
	"slices"
	"strings"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// exampleTask returns a task with a 64 MiB budget and a disk scope in a temp directory, and a
// function that releases them.
func exampleTask() (*memory.TaskManager, *storage.Scope, func()) {
	mm, err := memory.NewUnifiedManager(memory.Config{SystemMemory: 64 << 20, ReservedMemory: memory.NoReservedMemory, Fraction: 1})
	if err != nil {
		log.Fatal(err)
	}
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{}) // a temp dir, removed on Close
	if err != nil {
		log.Fatal(err)
	}
	tm := memory.NewTaskManager(mm, 1, memory.TaskConfig{})
	scope := disk.NewScope()
	return tm, scope, func() {
		scope.Close()
		tm.Close()
		disk.Close()
	}
}

// Counting words: an Aggregator says how values combine, the map spills (here every 4 records,
// to show it) and merges its spills when read.
func ExampleExternalAppendOnlyMap() {
	ctx := context.Background()
	tm, scope, done := exampleTask()
	defer done()

	sum := collection.Aggregator[string, int, int]{
		CreateCombiner: func(v int) int { return v },
		MergeValue:     func(c, v int) int { return c + v },
		MergeCombiners: func(a, b int) int { return a + b },
	}
	counts, err := collection.NewExternalAppendOnlyMap(tm, scope, sum, storage.StringCodec{}, storage.VarintCodec[int]{},
		collection.ExternalMapConfig[string]{SpillConfig: collection.SpillConfig{ForceSpillElements: 4}})
	if err != nil {
		log.Fatal(err)
	}
	defer counts.Close() // releases the memory, deletes the spill files

	for _, w := range strings.Fields("to be or not to be that is the question") {
		if err := counts.Insert(ctx, w, 1); err != nil {
			log.Fatal(err)
		}
	}
	it, err := counts.Iterator(ctx)
	if err != nil {
		log.Fatal(err)
	}
	got := map[string]int{}
	for p, err := range collection.All(it) { // keys come in hash order
		if err != nil {
			log.Fatal(err)
		}
		got[p.Key] = p.Value
	}
	var words []string
	for _, w := range slices.Sorted(maps.Keys(got)) {
		words = append(words, fmt.Sprint(w, "=", got[w]))
	}
	fmt.Println(strings.Join(words, " "))
	fmt.Println("spills:", counts.Metrics().Spills)
	// Output:
	// be=2 is=1 not=1 or=1 question=1 that=1 the=1 to=2
	// spills: 1
}

// Grouping every value of each key: values are kept in chunks, spilled with their key, and read
// back lazily per group, so one key may have more values than memory holds.
func ExampleExternalGrouper() {
	ctx := context.Background()
	tm, scope, done := exampleTask()
	defer done()

	g, err := collection.NewExternalGrouper(tm, scope, storage.StringCodec{}, storage.VarintCodec[int]{},
		collection.ExternalMapConfig[string]{SpillConfig: collection.SpillConfig{ForceSpillElements: 3}})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()

	orders := map[string][]int{"ann": {3, 1, 4, 1}, "bob": {5}, "cy": {9, 2, 6}}
	for _, name := range slices.Sorted(maps.Keys(orders)) {
		for _, qty := range orders[name] {
			if err := g.Insert(ctx, name, qty); err != nil {
				log.Fatal(err)
			}
		}
	}
	it, err := g.Iterator(ctx)
	if err != nil {
		log.Fatal(err)
	}
	got := map[string][]int{}
	for group, err := range collection.All(it) { // keys come in hash order
		if err != nil {
			log.Fatal(err)
		}
		for v, err := range collection.All(group.Values) { // read before the next group
			if err != nil {
				log.Fatal(err)
			}
			got[group.Key] = append(got[group.Key], v)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		slices.Sort(got[name]) // values of a key come in no particular order
		fmt.Println(name, got[name])
	}
	// Output:
	// ann [1 1 3 4]
	// bob [5]
	// cy [2 6 9]
}

// Sorting plain records by a custom order, with their codec built field by field.
func ExampleSort() {
	ctx := context.Background()
	tm, scope, done := exampleTask()
	defer done()

	type run struct {
		Runner  string
		Seconds int64
	}
	codec := storage.NewStructCodec(
		storage.Field(func(r *run) *string { return &r.Runner }, storage.StringCodec{}),
		storage.Field(func(r *run) *int64 { return &r.Seconds }, storage.VarintCodec[int64]{}),
	)
	runs := []run{{"ann", 3601}, {"bob", 3540}, {"cy", 3601}, {"dee", 3499}}
	fastest := func(a, b run) int {
		return cmp.Or(cmp.Compare(a.Seconds, b.Seconds), strings.Compare(a.Runner, b.Runner))
	}

	sorted, err := collection.Sort(ctx, tm, scope, codec, collection.SliceIterator(runs),
		collection.SortConfig[run]{Compare: fastest, Spill: collection.SpillConfig{ForceSpillElements: 2}})
	if err != nil {
		log.Fatal(err)
	}
	for r, err := range collection.All(sorted) { // closes sorted: memory released, files deleted
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(r.Runner, r.Seconds)
	}
	fmt.Println("spills:", sorted.Metrics().Spills)
	// Output:
	// dee 3499
	// bob 3540
	// ann 3601
	// cy 3601
	// spills: 1
}
