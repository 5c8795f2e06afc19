package collection_test

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/spillway/spillway/collection"
)

// Counting words with ChangeValue, then reading them sorted by the destructive iterator.
func ExampleAppendOnlyMap() {
	m := collection.NewAppendOnlyMap[string, int](collection.DefaultInitialCapacity)
	for _, w := range strings.Fields("to be or not to be") {
		if _, err := m.ChangeValue(w, func(had bool, old int) int { return old + 1 }); err != nil {
			panic(err)
		}
	}
	fmt.Println(m.Len(), "distinct words")

	it := m.DestructiveSortedIterator(strings.Compare) // m is unusable from here on
	defer it.Close()
	for it.Next() {
		p := it.Value()
		fmt.Println(p.Key, p.Value)
	}
	if err := it.Err(); err != nil {
		panic(err)
	}
	// Output:
	// 4 distinct words
	// be 2
	// not 1
	// or 1
	// to 2
}

// Merging sorted runs, as the external collections merge their spill files.
func ExampleMerge() {
	runs := []collection.Iterator[int]{
		collection.SliceIterator([]int{1, 4, 7}),
		collection.SliceIterator([]int{2, 5, 8}),
		collection.SliceIterator([]int{3, 6, 9}),
	}
	merged, err := collection.Collect(collection.Merge(cmp.Compare[int], runs...))
	fmt.Println(merged, err)
	// Output: [1 2 3 4 5 6 7 8 9] <nil>
}

// The records of an ExternalSorter without aggregation, sorted by partition and key.
func ExamplePartitionedPairBuffer() {
	b := collection.NewPartitionedPairBuffer[string, int]()
	for i, w := range strings.Fields("delta alpha charlie bravo echo") {
		if err := b.Insert(int32(len(w)%2), w, i); err != nil {
			panic(err)
		}
	}
	fmt.Println(b.Len(), "records, size tracked:", b.EstimateSize() > 0)
	it := b.PartitionedDestructiveSortedIterator(strings.Compare)
	for r, err := range collection.All(it) {
		if err != nil {
			panic(err)
		}
		fmt.Println(r.Partition, r.Key, r.Value)
	}
	// Output:
	// 5 records, size tracked: true
	// 0 echo 4
	// 1 alpha 1
	// 1 bravo 3
	// 1 charlie 2
	// 1 delta 0
}
