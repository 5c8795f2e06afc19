package storage_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/spillway/spillway/storage"
)

// A spill: a task's Scope creates a temp file, a TypedWriter writes (key, combiner) pairs in
// checksummed batches, and a reader streams the last batch back by its offset, read from the
// batch headers. Closing the scope deletes the file.
func Example_spill() {
	dm, err := storage.NewDiskBlockManager(storage.DiskConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer dm.Close()
	scope := dm.NewScope() // one per task
	defer scope.Close()

	id, f, err := scope.CreateTempLocal()
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	codec := storage.NewPairCodec[string, int64](storage.StringCodec{}, storage.VarintCodec[int64]{})
	rw, err := storage.NewRecordWriter(f, storage.RecordWriterConfig{BatchRecords: 2})
	if err != nil {
		log.Fatal(err)
	}
	w := storage.NewTypedWriter(rw, codec)
	for i, k := range []string{"a", "b", "c", "d", "e"} {
		if err := w.Write(storage.Pair[string, int64]{Key: k, Value: int64(i)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := rw.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.Kind(), rw.Records(), "records in", rw.NumBatches(), "batches")

	// The batch index is read from the file's batch headers.
	var last storage.BatchInfo
	for b, err := range storage.ScanBatches(f, rw.BytesWritten()) {
		if err != nil {
			log.Fatal(err)
		}
		last = b
	}
	r := storage.NewTypedReader(storage.NewRecordReader(io.NewSectionReader(f, last.Offset, last.Size), last.Size), codec)
	defer r.Reader().Close()
	for p, err := range r.All() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(p.Key, p.Value)
	}
	// Output:
	// temp_local 5 records in 3 batches
	// e 4
}

// A block streamed to the DiskStore and read back.
func ExampleDiskStore() {
	dm, err := storage.NewDiskBlockManager(storage.DiskConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer dm.Close()
	ds, err := storage.NewDiskStore(dm, storage.DiskStoreConfig{})
	if err != nil {
		log.Fatal(err)
	}
	id := storage.RDDBlockID(3, 0)
	size, err := ds.Put(id, func(w io.Writer) error {
		_, err := io.WriteString(w, "block bytes, written as a stream")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	b, err := ds.GetBytes(id)
	if err != nil {
		log.Fatal(err)
	}
	data, _ := b.Bytes(1 << 20)
	fmt.Println(id, size, string(data))
	// Output: rdd_3_0 32 block bytes, written as a stream
}

// Block locks: a writer creates the block, downgrades to a read lock, and a task that ends
// without releasing its locks is reported.
func ExampleBlockInfoManager() {
	ctx := context.Background()
	m := storage.NewBlockInfoManager()
	id := storage.RDDBlockID(0, 1)
	_, created, _ := m.LockNewBlockForWriting(ctx, 7, id, storage.MemoryAndDisk, true)
	fmt.Println("created:", created)
	m.DowngradeLock(7, id)
	_, ok, _ := m.LockForReading(ctx, 8, id, false)
	fmt.Println("other task reads:", ok)
	m.Unlock(8, id)
	fmt.Println(storage.LockLeakReport(7, m.ReleaseAllLocksForTask(7)))
	// Output:
	// created: true
	// other task reads: true
	// 1 block locks were not released by task 7: [rdd_0_1]
}

func ExampleLevel() {
	l := storage.MemoryAndDiskSer
	fmt.Println(l, l.UseMemory(), l.UseDisk(), l.Deserialized(), l.Valid())
	fmt.Println(storage.NewLevel(true, true, false, true, 1) == storage.MemoryAndDisk)
	// Output:
	// MEMORY_AND_DISK_SER true true false true
	// true
}
