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
//     are the key prefix. With Int64Key keys and values both keep each key and value in the
//     array itself (no page): the Aggregator's hash slots (inline.go), the Sorter's sort array
//     (inlinesorter.go); their runs are in the page record format.
//
// # Layouts
//
// Length words inside pages are 4 bytes (Spark's UnsafeAlignedOffset on x86-64 and arm64),
// little-endian. A sorter record is [length][bytes]; a map record is [key+value+4][key length]
// [key][value][8-byte address of the key's previous value] (an Aggregator's map, whose keys have
// one value each, leaves the address out), and a map page starts with its record count, so
// address 0 never names a record. Spill files are storage record files
// (checksummed, compressed batches) of [8-byte big-endian prefix][record]; a torn, truncated or
// altered file reads as an error wrapping storage.ErrCorrupt. An address whose page the
// collection does not hold, or whose record would run past its page, panics ("tungsten: ..."),
// never reads wrong bytes.
//
// # Accounting: the spill files' buffers, and bounded merges
//
// The pages and arrays are the collection's own Used. The spill files' buffers are on the Go
// heap whatever the mode (record batches, compression scratch, file buffers); in memory.Strict
// accounting, memory.Config's default, they are execution memory of the task too, held by an
// on-heap consumer named "<collection> spill I/O" that cannot spill:
//   - the spill writer's buffers are reserved before the collection holds a record they must
//     cover (the largest so far): a spill runs when memory is short and acquires nothing. The
//     same reservation later covers the one reader of a file a forced spill wrote while the
//     collection is read, and of a BytesToBytesMap's spilled pages;
//   - a merge (ExternalSorter.SortedIterator, Aggregator.Iterator) asks for every run's reader
//     (storage.RecordWriter.ReadBufferBytes: about 32 KiB + 2 × the batch) before it opens
//     them, at most half of the task's fair share of the on-heap execution memory (more only if
//     two readers and a writer need it). What the task cannot grant is first merged in rounds
//     of k runs into intermediate files (k readers and a writer fit the grant, k ≥ 2, and
//     k ≤ MergeFactor): s runs take about ⌈log_k(s)⌉ − 1 rounds before the final merge
//     (SpillMetrics.MergePasses). An ExternalSorter's in-memory records are force-spilled when
//     the merge needs their memory; an Aggregator spills its map first when the merge's readers
//     do not fit beside it. Example: an 8 MiB budget merges with 4 MiB, readers of at most
//     about 160 KiB with 64 KiB batches, so about 24 runs at once beside a writer, and 2 rounds
//     for 1000 spills. ExternalSorter.Iterator (runs in spill order) opens one run at a time;
//   - spill batches default to 64 KiB, and in memory.Strict to no more than 1/64 of the on-heap
//     pool (at least 8 KiB), so a small budget still holds a writer and a few readers.
//
// A record whose spill writer's buffers the task cannot grant fails the insert with an error
// wrapping memory.ErrOutOfMemory; a merge that cannot get two readers and a writer fails the
// same way. With memory.SparkAllowances none of these buffers is accounted and merges are
// bounded by MergeFactor only, as in Spark. In memory.Strict accounting the live Go heap of an
// on-heap collection stays within the budget plus a constant slack whatever the data size
// (internal/heapbound checks it); off-heap, the Go heap holds only the spill files' buffers.
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
// its slot array after a spill instead of regrowing from the initial capacity, a value whose
// encoding grows is appended as a new record that replaces the old one, and ExternalSorter's
// pointer array doubles in place (memory.TaskManager.GrowPage: off-heap without a copy), its
// memory acquired first (a growth that spills the sorter then allocates only the small array it
// needs). Reading inline pairs takes 256 of them (4 KiB) out of the array at once, outside the
// accounting and within the slack.
package tungsten
