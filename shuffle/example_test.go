package shuffle_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/shuffle"
	"github.com/spillway/spillway/storage"
)

// A word count: a map stage splits lines into (word, 1) records and combines them on the map
// side; a reduce stage sums each partition's counts, sorted by word.
func ExampleRunMapStage() {
	mm, err := memory.NewUnifiedManager(memory.Config{SystemMemory: 64 << 20, ReservedMemory: memory.NoReservedMemory})
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "shuffle-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	disk, err := storage.NewDiskBlockManager(storage.DiskConfig{Dirs: []string{dir}})
	if err != nil {
		panic(err)
	}
	defer disk.Close()
	runner, err := shuffle.NewRunner(shuffle.RunnerConfig{Memory: mm, Disk: disk, Cores: 2})
	if err != nil {
		panic(err)
	}
	defer runner.Close()

	lines := []string{"to be or not to be", "that is the question", "to be is to do"}
	dep := &shuffle.Dependency[string, int, int]{
		ShuffleID:   runner.NewShuffleID(),
		Partitioner: shuffle.NewHashPartitioner[string](2),
		Aggregator: &shuffle.Aggregator[string, int, int]{
			CreateCombiner: func(v int) int { return v },
			MergeValue:     func(c, v int) int { return c + v },
			MergeCombiners: func(a, b int) int { return a + b },
		},
		MapSideCombine: true,
		KeyOrdering:    strings.Compare,
		KeyCodec:       storage.StringCodec{},
		ValueCodec:     storage.VarintCodec[int]{},
		CombinerCodec:  storage.VarintCodec[int]{},
	}
	ctx := context.Background()
	_, err = shuffle.RunMapStage(ctx, runner, dep, len(lines),
		func(_ context.Context, _ *shuffle.TaskContext, m int) (collection.Iterator[collection.Pair[string, int]], error) {
			var words []collection.Pair[string, int]
			for _, w := range strings.Fields(lines[m]) {
				words = append(words, collection.Pair[string, int]{Key: w, Value: 1})
			}
			return collection.SliceIterator(words), nil
		})
	if err != nil {
		panic(err)
	}

	counts := make([][]string, 2)
	err = runner.Run(ctx, 2, func(ctx context.Context, tc *shuffle.TaskContext, p int) error {
		r, err := shuffle.NewReader(ctx, tc, dep, p)
		if err != nil {
			return err
		}
		defer r.Close()
		for r.Next() {
			counts[p] = append(counts[p], fmt.Sprintf("%s=%d", r.Value().Key, r.Value().Value))
		}
		return r.Err()
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(counts[0])+len(counts[1]), "distinct words")
	for _, c := range append(counts[0], counts[1]...) {
		if strings.HasPrefix(c, "to=") || strings.HasPrefix(c, "be=") {
			fmt.Println(c)
		}
	}
	fmt.Println("execution memory in use:", mm.ExecutionUsed())
	// Unordered output:
	// 9 distinct words
	// be=3
	// to=4
	// execution memory in use: 0
}
