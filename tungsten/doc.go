// Package tungsten holds Spark's page-based binary collections (its "Tungsten" structures) over
// the pages of a memory.TaskManager: records live serialized in pages, on-heap (Go []byte) or
// off-heap (anonymous mappings outside the Go heap), and every record is addressed by a 64-bit
// (page number, offset) word. A collection is a memory.Consumer whose Used is exactly the bytes
// of its pages and arrays: there is no size estimate, no per-object overhead, and off-heap the
// garbage collector neither scans nor counts the data.
//
//   - ExternalSorter is UnsafeExternalSorter with UnsafeInMemorySorter: an array of (record
//     address, 8-byte key prefix) pairs, radix sorted (internal/radix, Spark's RadixSort) when the
//     prefix holds the whole key, else compared by prefix and then by a RecordComparator;
//     sorted runs spill to checksummed files and merge back, at most MergeFactor at once; while
//     it is read, another consumer of the task can force the unread records to disk.
//   - BytesToBytesMap is Spark's BytesToBytesMap: open addressing over an array of (address,
//     hash) pairs, values chained per key, growth by doubling, a destructive iterator that frees
//     pages as it goes and can spill the unread ones.
//   - Aggregator and Sorter are typed front ends that mirror collection.ExternalAppendOnlyMap and
//     collection.ExternalSorter (Insert or InsertAll with a context, Iterator, Close, Metrics):
//     keys and values are encoded with codecs into pages, so a user never handles bytes.
//     Int64Key and StringKey are the fast paths: order-preserving encodings whose first 8 bytes
//     are the key prefix.
//
// # Layouts
//
// Length words inside pages are 4 bytes (Spark's UnsafeAlignedOffset on x86-64 and arm64),
// little-endian. A sorter record is [length][bytes]; a map record is [key+value+4][key length]
// [key][value][8-byte address of the key's previous value], and a map page starts with its
// record count, so address 0 never names a record. Spill files are storage record files
// (checksummed, compressed batches) of [8-byte big-endian prefix][record]; a torn, truncated or
// altered file reads as an error wrapping storage.ErrCorrupt. An address whose page the
// collection does not hold, or whose record would run past its page, panics ("tungsten: ..."),
// never reads wrong bytes.
//
// # Concurrency and locks
//
// Each collection is used by one goroutine. The TaskManager may call Spill from another
// goroutine of the task; a collection never holds its own lock while acquiring memory, and
// frees pages only under its own lock, which the TaskManager never needs (Spark's SPARK-26265).
//
// Differences from Spark, all deliberate: slots store a 64-bit hash (Spark 32 bits); the
// non-radix sort is pattern-defeating quicksort (not stable, as equal keys of different runs are
// not ordered in Spark's merge either); spill files are not Spark's format; the Aggregator keeps
// its slot array after a spill instead of regrowing from the initial capacity, and a value whose
// encoding grows is appended as a new record that replaces the old one.
package tungsten
