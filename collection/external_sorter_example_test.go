package collection_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// byLength puts a word in partition len(word) mod 2.
type byLength struct{}

func (byLength) NumPartitions() int        { return 2 }
func (byLength) Partition(word string) int { return len(word) % 2 }

// Counting words by partition with map-side combine and a key ordering, as a shuffle map task
// does, then writing the partitions into one output with their lengths.
func ExampleExternalSorter() {
	mm, err := memory.NewUnifiedManager(memory.Config{SystemMemory: 64 << 20, ReservedMemory: memory.NoReservedMemory, Fraction: 1, NumCores: 1})
	if err != nil {
		panic(err)
	}
	tm := memory.NewTaskManager(mm, 1, memory.TaskConfig{})
	defer tm.Close()
	dir, err := os.MkdirTemp("", "sorter-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{dir}})
	if err != nil {
		panic(err)
	}
	defer disk.Close()

	count := collection.Aggregator[string, int64, int64]{
		CreateCombiner: func(v int64) int64 { return v },
		MergeValue:     func(c, v int64) int64 { return c + v },
		MergeCombiners: func(a, b int64) int64 { return a + b },
	}
	newSorter := func() *collection.ExternalSorter[string, int64, int64] {
		s, err := collection.NewExternalSorter(tm, disk.NewScope(), storage.StringCodec{}, storage.VarintCodec[int64]{},
			collection.SorterConfig[string, int64, int64]{
				Aggregator:  &count,
				Partitioner: byLength{},
				Ordering:    strings.Compare,
			})
		if err != nil {
			panic(err)
		}
		return s
	}
	words := func() collection.Iterator[collection.Pair[string, int64]] {
		var in []collection.Pair[string, int64]
		for _, w := range strings.Fields("to be or not to be that is the question") {
			in = append(in, collection.Pair[string, int64]{Key: w, Value: 1})
		}
		return collection.SliceIterator(in)
	}
	ctx := context.Background()

	// Reading partition by partition.
	s := newSorter()
	defer s.Close()
	if err := s.InsertAll(ctx, words()); err != nil {
		panic(err)
	}
	parts, err := s.PartitionedIterator(ctx)
	if err != nil {
		panic(err)
	}
	for parts.Next() {
		fmt.Print("partition ", parts.Partition(), ":")
		for r, err := range collection.All(parts.Records()) {
			if err != nil {
				panic(err)
			}
			fmt.Print(" ", r.Key, "=", r.Value)
		}
		fmt.Println()
	}
	if err := parts.Err(); err != nil {
		panic(err)
	}

	// Writing a map output: one stream of record batches per partition.
	s2 := newSorter()
	defer s2.Close()
	if err := s2.InsertAll(ctx, words()); err != nil {
		panic(err)
	}
	var out bytes.Buffer
	lengths, err := s2.WritePartitionedFile(ctx, &out)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(lengths), "partitions,", lengths[0]+lengths[1] == int64(out.Len()))
	// Output:
	// partition 0: be=2 is=1 or=1 question=1 that=1 to=2
	// partition 1: not=1 the=1
	// 2 partitions, true
}
