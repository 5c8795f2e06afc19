// Package shuffle moves records between the map and reduce stages of a computation the way
// Spark's sort-based shuffle does (core/src/main/scala/org/apache/spark/shuffle/sort/), on top
// of the memory, storage and collection packages, and runs the stages' tasks with a small local
// runner.
//
// # Start here by task
//
//   - Repartition records by key, or aggregate them across partitions (reduceByKey): describe
//     the exchange with a Dependency (partitioner, codecs, optional Aggregator), write each map
//     partition with RunMapStage (or NewWriter), then read each reduce partition with NewReader,
//     which fetches with bounded memory and combines or sorts as the Dependency says.
//   - Run tasks with per-task memory, disk scopes and leak checks: a Runner (executor.New
//     assembles one with everything it needs).
//   - Join or cogroup: package executor. Aggregate, group or sort within one task: package
//     collection. Cache: package storage.
//
// # The pieces and their Spark counterparts
//
//	Spillway                      Spark
//	Partitioner, HashPartitioner  Partitioner, HashPartitioner, RangePartitioner
//	  RangePartitioner
//	Dependency                    ShuffleDependency
//	Aggregator                    Aggregator (an alias of collection.Aggregator)
//	Writer, NewWriter             ShuffleWriter, SortShuffleManager.getWriter
//	SortWriter                    SortShuffleWriter
//	SerializedWriter              UnsafeShuffleWriter (over ShuffleExternalSorter,
//	                              ShuffleInMemorySorter and PackedRecordPointer)
//	BypassMergeWriter             BypassMergeSortShuffleWriter
//	MapStatus, MapOutputRegistry  MapStatus, MapOutputTracker(Master)
//	Reader, NewReader             BlockStoreShuffleReader + ShuffleBlockFetcherIterator
//	Runner, TaskContext           Executor + TaskRunner, DAGScheduler (one stage at a time),
//	                              TaskContext
//	RunMapStage                   ShuffleMapStage of ShuffleMapTasks
//
// # Map side
//
// Each map task writes one data file holding every reduce partition's records, partition after
// partition, each partition an independent stream of storage's record format (CRC-32C framed
// batches), plus an index file of numPartitions+1 big-endian offsets (Spark's format). NewWriter
// picks the writer as Spark does: without map-side combine and with at most
// Config.BypassMergeThreshold (200) partitions the BypassMergeWriter (a temporary file per
// partition, concatenated); otherwise, without map-side combine and with at most
// MaxSerializedPartitions (2^24) partitions, the SerializedWriter, which copies each encoded
// record into pages of the task's memory, sorts 8-byte packed pointers to them by partition
// with a radix sort, and merges its spill files by concatenating their partitions' segments;
// otherwise the SortWriter, an ExternalSorter that combines values with map-side combine (and
// then orders keys by the KeyOrdering). The outputs' sizes are registered, per partition, in the
// Runner's MapOutputRegistry; from then on the registry owns the files.
//
// # Reduce side
//
// A Reader fetches its partition's segment of every map output with a goroutine that keeps at
// most Config.MaxBytesInFlight (48 MiB) of loaded segments (a byte-weighted semaphore), and
// streams every segment above Config.MaxBlockSizeFetchToMem (200 MiB) from its file instead of
// loading it. Every index file is checked when it is read: offsets from 0, never decreasing,
// ending at the data file's length and agreeing with the registered sizes; anything else, like a
// failing batch checksum, is storage.ErrCorrupt. The records then go through an
// ExternalAppendOnlyMap when there is an Aggregator (values, or combiners after map-side
// combine), through an ExternalSorter when there is a KeyOrdering, or straight to the caller.
// Closing a Reader stops the fetching goroutine and returns only after it exited.
//
// # Memory accounting
//
// Under memory.Strict accounting (memory.Config.Accounting, the default) every buffer a shuffle
// writer or reader holds for data is execution memory of its task, acquired before it is
// allocated through a consumer of the task that reports what it holds and cannot spill (its
// acquisitions may make the task's other consumers spill), and released when it is dropped:
//
//   - Reduce side ("shuffle N fetch (reduce R)"): the record reader's buffers (file buffer, one
//     batch as stored and decompressed, sized from the largest segment and its map output's
//     batches), acquired before fetching starts and held until the Reader is exhausted or closed,
//     and every loaded segment's bytes, acquired before it is read and released as soon as it is
//     consumed. MaxBytesInFlight is then a cap on what the task tries to acquire, lowered to a
//     quarter of a task's fair share of the memory (memory over the Runner's Cores); with less
//     granted the prefetcher loads fewer segments at once, waiting for the consumer to release
//     one. A segment above the cap, or one the task cannot grant while nothing else is loaded,
//     is streamed from its file through the reader's buffers, like one above
//     MaxBlockSizeFetchToMem.
//   - BypassMergeWriter ("shuffle N bypass-merge writer (map M)"): every partition's record
//     writer (a 32 KiB file buffer, a batch of 32 KiB and its compressed copy) and the 32 KiB
//     concatenation buffer, acquired before the first record. When the task grants less, the
//     batches are halved down to 4 KiB; when even those do not fit, the map output is written by
//     a SortWriter instead (Spark has no such fallback) and an Info log says so.
//   - SerializedWriter ("shuffle N serialized writer output (map M)"): its one record writer
//     (a spill file's, then the data file's) and the merge's 32 KiB copy buffer, acquired
//     before the first record, as the SortWriter's below. Its pages and pointer array
//     ("shuffle N serialized sorter (map M)") are exact: the bytes the task holds for its
//     records are those of the pages, in the task's Tungsten mode (off the Go heap with
//     memory.Config.OffHeapEnabled), plus 8 bytes per record and as much scratch for the sort.
//   - SortWriter ("shuffle N sort writer output (map M)"): the data file's record writer,
//     acquired before the sorter is filled. Its batches, and so the sorter's spill batches, are
//     at most 64 KiB (halved down to 4 KiB when memory is short); when even that does not fit,
//     the map fails with an error wrapping memory.ErrOutOfMemory that names the sizes and carries
//     the task's usage report. So does a Reader whose record reader's buffers do not fit.
//
// A task is sure of only 1/2N of the execution memory (N running tasks), so a budget that leaves
// less than these buffers to a task makes it fail with memory.ErrOutOfMemory, as Spark's tasks
// fail when they cannot get a page. The buffers are estimates of what storage's record readers
// and writers allocate; a record larger than a batch makes its batch larger. The collections
// the writers and readers use (ExternalSorter, ExternalAppendOnlyMap) account their own memory.
//
// Under memory.SparkAllowances these buffers are not accounted, as in Spark: the reduce side's
// in-flight fetches (spark.reducer.maxSizeInFlight, 48 MiB, bounded by
// ShuffleBlockFetcherIterator but never acquired from the memory manager), the
// BypassMergeSortShuffleWriter's per-partition DiskBlockObjectWriters (a
// spark.shuffle.file.buffer of 32 KiB each, for every partition), the sort writer's output
// writer and the readers' deserialization buffers.
//
// # Tasks
//
// Runner.Run runs a stage's tasks as goroutines, at most Cores at once (an errgroup with a
// limit). Each task gets a TaskContext with its own memory.TaskManager, disk scope and identity
// for block locks. When a task ends — successfully, with an error, or because ctx was cancelled
// — its completion listeners run (a Reader registers its Close), its temporary files are
// deleted, its block locks are released and its TaskManager is closed; memory or locks a
// successful task left behind are reported as a *MemoryLeakError or *storage.LockLeakError, as
// an error or a warning depending on the configuration (Spark's
// spark.unsafe.exceptionOnMemoryLeak and spark.storage.exceptionOnPinLeak). The first error ends
// the stage: tasks not started are skipped, running ones see their ctx cancelled.
//
// # Differences from Spark
//
//   - The serialized shuffle's condition on the serializer (supportsRelocationOfSerializedObjects)
//     always holds: a storage.Codec encodes every value on its own, so any shuffle without
//     map-side combine and with more partitions than the bypass threshold is written by the
//     SerializedWriter. Its packed record pointers panic on a partition id or offset that does not
//     fit (Spark drops the offset's high bits silently); its pointer array, freed by a spill, is
//     allocated again at the next insert rather than inside the spill (a Spill cannot acquire
//     memory here); a spill file, or the data file when nothing spilled, is written in storage's
//     record format, and a single spill file is copied into the data file rather than renamed.
//   - One process: map outputs are local files and every fetch is a local read, so the
//     MaxBytesInFlight bound applies to all of them (Spark bounds remote fetches and reads local
//     blocks lazily), and a segment above MaxBlockSizeFetchToMem is read from its own file rather
//     than first copied to a temporary one. Under Strict accounting loaded segments and the
//     writers' and readers' buffers are execution memory (see Memory accounting); under
//     SparkAllowances they are bounded but, as in Spark (Netty buffers), not accounted.
//   - MapStatus sizes are exact (Spark rounds them to a log scale or an average), which lets the
//     reader check every index against them.
//   - A map output's files are written under their final names and removed on any error,
//     instead of Spark's write-to-temporary-then-rename; MapID is the map task's id, as in Spark
//     3+.
//   - RunMapStage does not retry: when the stage fails, every output it wrote is deleted.
//   - Task metrics are value snapshots per writer and reader (WriteMetrics, ReadMetrics) with
//     Spark's names; PeakBytesInFlight is an addition.
package shuffle
