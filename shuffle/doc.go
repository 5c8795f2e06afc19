// Package shuffle moves records between the map and reduce stages of a computation the way
// Spark's sort-based shuffle does (reference §13.1–§13.2), on top of the memory, storage and
// collection packages, and runs the stages' tasks with a small local runner.
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
// partition, concatenated); otherwise the SortWriter, an ExternalSorter that combines values
// only with map-side combine (then it also orders keys by the KeyOrdering) and otherwise just
// groups records by partition. The outputs' sizes are registered, per partition, in the
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
//   - There is no serialized shuffle (Spark's UnsafeShuffleWriter over ShuffleExternalSorter,
//     chosen for relocatable serializers): records are Go values, and their codecs give no
//     guarantee that serialized records can be reordered as bytes. Shuffles Spark would write
//     with it are written by the SortWriter.
//   - One process: map outputs are local files and every fetch is a local read, so the
//     MaxBytesInFlight bound applies to all of them (Spark bounds remote fetches and reads local
//     blocks lazily), and a segment above MaxBlockSizeFetchToMem is read from its own file rather
//     than first copied to a temporary one. Buffers of loaded segments are bounded but, as in
//     Spark (Netty buffers), not accounted by the memory manager; neither are the
//     BypassMergeWriter's per-partition buffers (about 100 KiB per non-empty partition; its
//     partition files get batches of at most 32 KiB).
//   - MapStatus sizes are exact (Spark rounds them to a log scale or an average), which lets the
//     reader check every index against them.
//   - A map output's files are written under their final names and removed on any error,
//     instead of Spark's write-to-temporary-then-rename; MapID is the map task's id, as in Spark
//     3+.
//   - RunMapStage does not retry: when the stage fails, every output it wrote is deleted.
//   - Task metrics are value snapshots per writer and reader (WriteMetrics, ReadMetrics) with
//     Spark's names; PeakBytesInFlight is an addition.
package shuffle
