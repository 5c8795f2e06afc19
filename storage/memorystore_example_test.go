package storage_test

import (
	"context"
	"fmt"
	"os"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// A partition larger than the storage memory is unrolled only as far as memory allows; the
// rest is handed back as an iterator, and every record comes out exactly once.
func ExamplePutIteratorAsValues() {
	m, _ := memory.NewUnifiedManager(memory.Config{SystemMemory: 64 << 10, ReservedMemory: memory.NoReservedMemory, Fraction: 1})
	ms, _ := storage.NewMemoryStore(m, storage.NewBlockInfoManager(), nil, storage.MemoryStoreConfig{UnrollMemoryThreshold: 4 << 10})
	const task = memory.TaskID(1)

	records := make([]string, 10000)
	for i := range records {
		records[i] = fmt.Sprintf("record-%05d", i)
	}
	size, partial, err := storage.PutIteratorAsValues(context.Background(), ms, task, storage.RDDBlockID(0, 0),
		storage.SliceIterator(records), memory.OnHeap)
	if err != nil {
		panic(err)
	}
	fmt.Println("stored:", size > 0, "handed back:", partial != nil, "holding unroll memory:", partial.UnrollMemory() > 0)
	n := 0
	for partial.Next() {
		n++
	}
	fmt.Println("records:", n, "unroll memory left:", ms.CurrentUnrollMemory())
	// Output:
	// stored: false handed back: true holding unroll memory: true
	// records: 10000 unroll memory left: 0
}

// GetOrElseUpdate caches a partition by level: here MEMORY_AND_DISK, which falls back to disk
// when the partition does not fit in memory.
func ExampleGetOrElseUpdate() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	m, _ := memory.NewUnifiedManager(memory.Config{SystemMemory: 64 << 10, ReservedMemory: memory.NoReservedMemory, Fraction: 1})
	bm, err := storage.NewBlockManager(storage.Config{Memory: m, DiskConfig: storage.DiskConfig{Dirs: []string{dir}}})
	if err != nil {
		panic(err)
	}
	defer bm.Close()
	const task = memory.TaskID(1)
	ctx := context.Background()
	id := storage.RDDBlockID(3, 0)
	compute := func() (storage.Iterator[int64], error) {
		vs := make([]int64, 100000)
		for i := range vs {
			vs[i] = int64(i)
		}
		return storage.SliceIterator(vs), nil
	}
	for range 2 {
		it, cached, err := storage.GetOrElseUpdate(ctx, bm, task, id, storage.MemoryAndDisk, storage.Codec[int64](storage.VarintCodec[int64]{}), compute)
		if err != nil {
			panic(err)
		}
		var sum int64
		for it.Next() {
			sum += it.Value()
		}
		_ = it.Close()
		st, _ := bm.Status(id)
		fmt.Println("cached:", cached, "sum:", sum, "in memory:", st.InMemory, "on disk:", st.OnDisk)
	}
	fmt.Println(bm.EndTask(task))
	// Output:
	// cached: true sum: 4999950000 in memory: false on disk: true
	// cached: true sum: 4999950000 in memory: false on disk: true
	// <nil>
}
