// Package collection holds Spillway's in-memory and spillable collections: the counterparts of
// Spark's org.apache.spark.util.collection (AppendOnlyMap, SizeTrackingAppendOnlyMap,
// SizeTrackingVector, PartitionedPairBuffer, PartitionedAppendOnlyMap, Spillable,
// ExternalAppendOnlyMap, ExternalSorter) and the k-way merge they share.
//
// # Start here by task
//
// Every spillable collection belongs to one task (a memory.TaskManager) and spills into that
// task's disk scope (a storage.Scope). Every constructor takes the storage.Codecs of what it
// writes to disk as arguments after the task and scope, and its configuration last; every
// collection must be closed, which releases its memory and deletes its spill files.
//
//   - Aggregate values by key (counts, sums, reduceByKey): ExternalAppendOnlyMap with an
//     Aggregator; Insert or InsertAll, then Iterator gives each key once with its combiner.
//   - Group every value of each key (groupByKey), even a key whose values do not fit in memory:
//     ExternalGrouper; each Group's Values is read lazily, from memory and spill files.
//   - Sort records that may not fit in memory: Sort for plain records and a comparison;
//     ExternalSorter for key-value records by partition and key, optionally combining values
//     (what a shuffle map task does).
//   - Merge sorted streams: Merge; concatenate them: Concat.
//   - Use range loops: All turns an Iterator into an iter.Seq2 of values and errors; FromSeq,
//     FromSeq2 and PairsOf turn sequences into Iterators (PairsOf(maps.All(m)) feeds InsertAll).
//   - Join and cogroup: package executor (Join, CoGroup); cache: package storage; shuffle:
//     package shuffle.
//
// # The in-memory base
//
// AppendOnlyMap is an open-addressing hash table for aggregation: keys are inserted and their
// values changed (ChangeValue) but never removed. It stores key, value and hash together in one
// slice of slots, grows by doubling at a load factor of 0.7 up to 2^29 slots, and ends its life
// in a destructive iterator that takes the table over, optionally sorting it in place by a key
// comparator or by key hash — the order in which ExternalAppendOnlyMap spills.
//
// Hashing goes through a Hasher: hash/maphash with a random seed per Hasher (a fast seeded mixer
// for integer keys), or a caller-supplied function (HasherFunc) that tests use to force
// collisions. Merges of spills by hash need every map and every reader of a spill to use the same
// Hasher value, so maps expose theirs (Hasher, HashOf).
//
// The size-tracking collections (SizeTrackingMap, SizeTrackingVector, PartitionedPairBuffer,
// PartitionedAppendOnlyMap) add an estimator.Tracker so the spill policy can ask for their size
// after every insert at the cost of an occasional measurement: each keeps its own
// estimator.Estimator (so type layouts are cached across samples) and measures its backing slices
// (PartitionedPairBuffer's pairs and, once a record of a partition other than 0 arrives, its
// column of partition numbers), which costs O(1) for pointer-free elements and a bounded sample
// otherwise. Growth of a table or slice, or a new column, resets the samples, as in Spark.
//
// ExternalSorter's in-memory collections implement PartitionedCollection: PartitionedPairBuffer
// (records appended, no aggregation) and PartitionedAppendOnlyMap (aggregation keyed by
// (partition, key), hashing the key only so its stored hash is the key hash ExternalSorter's
// default order uses). Both sort destructively by partition, then by a key comparator or by
// key hash.
//
// # Iteration
//
// Everything that may read spill files iterates through the pull-style Iterator (Next, Value,
// Err, Close), so a reader can stop early, release files, and be spilled while being read.
// All adapts an Iterator to a range-over-func loop that also sees its error (and closes it);
// FromSeq, FromSeq2 and PairsOf go the other way. Merge is a stable k-way merge of sorted
// Iterators and Concat their concatenation. Elements handed out by an Iterator belong to
// the caller.
//
// # Spilling
//
// Spillable is Spark's spill policy (an initial threshold, a memory check every 32 elements,
// forced spills by element count and size, TaskManager-forced spills); ExternalAppendOnlyMap,
// ExternalGrouper and ExternalSorter keep one and are memory.Consumers of their task. Spill files
// are storage record files in the task's disk scope, deleted when read to the end and by Close.
// A collection forced to spill while it is being read writes its unread in-memory rest to disk
// and drops every reference to its table (SPARK-22713). ExternalGrouper is groupByKey for keys
// whose values exceed memory (SPARK-1823): values are spilled in chunks and read back lazily.
//
// # Closing
//
// Close releases a spillable collection's memory and deletes its spill files whatever state it
// is in, and may be called from any goroutine of the task, also while another goroutine's
// insert waits for memory: an insert gives up the collection's lock while it acquires, Close
// marks the collection closed under that lock (Spillable.MarkClosed), and when the acquisition
// returns the insert finds the mark, gives back what it was granted at once and returns an
// error wrapping ErrClosed — it neither keeps the memory nor spills the dropped table. After
// Close, inserts and iterator requests return ErrClosed, and the TaskManager's forced spills do
// nothing. An iterator (or a sorter's partition, or a grouper's values) not read to its end when
// its collection is closed stops: Next returns false and Err returns an error wrapping
// ErrClosed, never nil, so a closed collection cannot pass for the end of its data. An iterator
// read to its end, or closed by the caller, keeps a nil Err. Check with errors.Is(err,
// ErrClosed). The map's and the grouper's iterators take the collection's lock, so another
// goroutine may close the collection while they are read; an ExternalSorter's readers are meant
// for the goroutine that closes it.
//
// # Differences from Spark
//
//   - Go keys have no null, so there is no out-of-band null key: a nullable key type (pointer,
//     option struct) is stored like any other key, and sorted iterators put it where the
//     comparator says.
//   - Lookups report presence explicitly (Get returns value and found).
//   - Growing beyond the maximum capacity returns an error wrapping ErrMapFull (Spark throws),
//     and the map is left unchanged.
//   - Destructive iterators drop the collection's reference to its memory and clear every slot
//     or record they have passed, so memory a reader has consumed is collectable at once
//     (SPARK-22713); the collection panics if used afterwards, the buffers included (Spark's
//     PartitionedPairBuffer stays usable).
//   - SizeTrackingVector holds any element type (Spark's PrimitiveVector holds primitives), and
//     like PartitionedPairBuffer stops at MaxBufferCapacity with ErrBufferFull.
//   - Sorting a PartitionedPairBuffer by partition only is not stable (Spark's TimSort keeps
//     insertion order within a partition; nothing in Spark relies on it).
//   - The hash is a seeded 64-bit hash (hash/maphash, or a Murmur3-finalizer for integer keys)
//     instead of Murmur3 of the 32-bit hashCode; it is never 0, and a Hasher must be shared by
//     all collections whose spills are merged by hash.
//   - An AppendOnlyMap with a NewHasher Hasher starts a key's probe at the top bits of its hash
//     (Spark uses the low bits), so the table is nearly in hash order and the sort by hash
//     before a spill runs over memory almost sequentially (about twice as fast); HasherFunc
//     hashers keep the low bits.
//   - A map spill record carries its key's hash before the key, so merging never rehashes a
//     key read back, and a stream out of hash order is reported as storage.ErrCorrupt.
//   - ExternalAppendOnlyMap, and ExternalSorter when it aggregates without an Ordering, merge
//     spills through a tournament (loser) tree over each stream's current pair instead of
//     Spark's heap of per-stream buffers of one hash: the same output order and combining, with
//     log2(streams) comparisons per pair taken.
//   - PartitionedAppendOnlyMap sorts by partition and key hash with a radix pass (buckets by
//     partition and the hash's top bits, finished by insertion sort) instead of Spark's
//     comparator sort.
//   - ExternalAppendOnlyMap, ExternalGrouper and ExternalSorter ask for memory before their
//     in-memory table or buffer doubles, not only every 32 elements, so they never grow past
//     what was granted.
//   - Errors are values: a failed spill sticks (every later call returns it; Close still
//     releases everything), and a key ExternalSorter's Partitioner puts outside
//     [0, NumPartitions) is an error.
//   - ExternalSorter with aggregation and an Ordering combines only keys that are ==, not every
//     pair the Ordering calls equal (Spark combines those when its ordering is total).
//   - Every partition of an ExternalSorter spill file starts on a batch boundary, so each is an
//     independent record stream, and the file records each partition's byte range.
//   - ExternalSorter.WritePartitionedFile writes to an io.Writer and returns the partition
//     lengths (Spark's older writePartitionedFile), not through Spark's ShuffleMapOutputWriter
//     plugin (writePartitionedMapOutput).
//   - Spill files are storage record files, batched by bytes (SpillConfig.BatchBytes) as well as
//     by Spark's record count, which bounds each reader's buffer; ExternalGrouper spills one
//     key's values in records of at most 32 KiB of values (SPARK-1823, never fixed in Spark).
//
// # Accounting: Strict and SparkAllowances
//
// The task's memory.Config.Accounting decides what a spillable collection charges to its task
// (Spillable's doc gives the details):
//   - memory.Strict, the default: nothing is free. The collection acquires before its first
//     record (at least SpillConfig.InitialThreshold when set: a minimum first acquisition, not
//     an allowance), asks for the old and the new array together before its table or buffer
//     doubles (spilling instead of growing when they cannot be had), checks the memory as soon
//     as the records inserted since the last check reference 64 KiB, not only every 32
//     records, and keeps the bytes its records reference as a floor under the sampled size
//     estimate. A record larger than the task can grant the emptied collection fails the
//     insert with an error wrapping memory.ErrOutOfMemory and the task's usage report.
//   - memory.SparkAllowances, for comparisons with Spark: Spark's policy as it is, with the
//     free initial threshold (5 MiB by default), the doubling asking for the grown size only,
//     and large records noticed at the next check every 32 records (31 records of 1 MiB
//     inserted into a fresh map are all held with nothing accounted).
//
// # Merge memory and bounded merges
//
// With memory.Strict accounting (memory.Config.Accounting, the default) the buffers of every
// spill reader and of every merge writer are execution memory of the collection's task, held by
// a consumer named "<collection> spill I/O" that cannot spill: acquired before a file is opened,
// released when its reader closes (a merge closes each file as soon as it is exhausted). A
// reader of a spill file costs what storage.RecordWriter.ReadBufferBytes reports for it: its
// file buffer (32 KiB, or the file's size if smaller), its largest stored batch and, when
// compressed, its largest decompressed batch — at most about 32 KiB + 2 × (BatchBytes + the
// largest record), 2.1 MiB with the default 1 MiB batches (plus about 1.25 MiB of decoder
// state for zstd). A merge writer costs 32 KiB + 2.5 × (BatchBytes + the largest record)
// + 8 KiB (2 MiB more for zstd), about 2.6 MiB by default.
//
// A merge opens only as many spill files as the task can hold readers for, and asks for at
// most half of the task's fair share of execution memory (the pool it could reach by evicting,
// over the active tasks; more only if two readers and a writer need it), so that whatever
// consumes the merged records — a map, a sorter or a shuffle writer filling from them — keeps
// room instead of spilling a tiny file every few records. When the grant does not cover a
// reader of every file, ExternalAppendOnlyMap, ExternalGrouper and
// ExternalSorter (each partition's merge, and so the shuffle's sort writer) first merge the
// smallest files, k at a time (k readers and a writer fit the grant, k ≥ 2), into larger files,
// and ask again; each merged file is deleted as soon as it is read, and every file on error or
// cancellation (ExternalAppendOnlyMap.Iterator and ExternalGrouper.Iterator take
// the context; ExternalSorter's readers take theirs). With k readers affordable, s spill files
// take passes = ⌈log_k(s)⌉ (the final merge included; SpillMetrics.MergePasses reports it),
// each pass reading and writing all the spilled data once. Example: one task with a 32 MiB
// budget and 1 MiB batches merges with 16 MiB, a writer (2.6 MiB) and k = 6 readers (2.1 MiB
// each); 10 GiB of data spilled by a collection that fills about 32 MiB of memory per spill
// gives about 320 spill files, so ⌈log_6(320)⌉ = 4 passes (3 intermediate, then the final
// merge); with 64 KiB batches a reader costs about 160 KiB, k ≈ 100 and 2 passes suffice. When not even two
// readers and a writer can be had after spilling the task's other consumers, reading returns
// an error wrapping memory.ErrOutOfMemory with the task's usage report. With
// memory.SparkAllowances nothing of this is accounted and every merge takes one pass, as in
// Spark.
//
// With memory.Strict a collection also keeps a bounded number of spill files while it is
// filled: past 128 waiting for the read (ExternalSorter: fewer with many partitions, see
// maxLiveSpills) it merges the smallest of them into one, under the rules above, until half are
// left. So its records of the files, the disk scope's and the DiskBlockManager's entries, and
// the files the final merge starts from do not grow with the number of spills; each record is
// still rewritten about log_k(spills) times, as by a multi-pass merge at the end. These merges
// do not count in SpillMetrics.MergePasses, and an insert may then fail as a merge does. With
// memory.SparkAllowances every spill file is kept until it is read, as in Spark.
//
// With memory.Strict the record writer's buffers of the in-memory collection's spill (also of a
// forced spill while it is read) are reserved on the spill I/O consumer before the collection
// holds data (see Spillable); after a forced spill while it is read, the reader of the file it
// wrote keeps that reservation until it closes. With memory.SparkAllowances nothing above is accounted: the free
// initial threshold, spill writers' and readers' buffers (up to 2 × SpillConfig.BatchBytes when
// compressed) and growth copies are outside the budget, as in Spark.
package collection
