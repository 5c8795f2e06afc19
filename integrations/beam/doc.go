// Package spillbeam runs Spillway's spilling collections inside Apache Beam pipelines written
// with the Beam Go SDK, so a DoFn can sort or aggregate a hot key's values that do not fit in
// memory on any Beam runner (Prism locally, Flink, Spark, Dataflow). It is the Go counterpart
// of Beam Java's SortValues with its BufferedExternalSorter, which the Go SDK lacks
// (apache/beam#18802).
//
// # The worker as a Spark executor
//
// A Beam worker process runs many bundles, each in its own goroutine (Prism ran up to three at
// once in one worker). Spillway's model is Spark's: one executor per process whose memory
// manager bounds every task's memory together. So each worker process gets one Executor per
// Config (a memory.UnifiedManager and a storage.DiskBlockManager) and each element's
// processing is one task with its own memory.TaskManager and disk scope (Executor.Run), as
// Spark's tasks share their executor. When a task ends, on success, error or panic, its memory
// is released and its spill files deleted: this matters because portable runners never call a
// DoFn's Teardown, and an error in ProcessElement skips FinishBundle, so nothing else would
// clean up after a failed bundle.
//
// Executors are process-wide state: the core library has no package-level mutable state, but
// Beam hands DoFn instances nothing they share, so this package keeps a registry of executors
// keyed by Config, guarded by a mutex, created lazily by Acquire (in a DoFn's Setup) and
// reference-counted (Release, in Teardown where the runner calls it).
//
// # Transforms and callbacks
//
//   - SortValues: Beam Java's SortValues, values sorted by their secondary key's encoded bytes,
//     output as one element per key; SortGroup is its callback form for a DoFn of your own that
//     consumes the sorted values without materialising them.
//   - CombinePerSubKey: group-then-combine of a hot key's values by sub-key with a Combiner,
//     through collection.ExternalAppendOnlyMap; CombineGroup is its callback form.
//
// Beam needs every DoFn type registered before beam.Init: call RegisterSortValues and
// RegisterCombinePerSubKey for the types you use from an init function, as with Beam's own
// register package.
//
// # What is bounded
//
// A GroupByKey's values reach a DoFn as a lazy iterator only when the DoFn is the GroupByKey's
// only consumer. Runners that do not page large iterables deliver a hot key's whole encoded
// group as one message, so Spillway bounds the working set (the decoded values, the sort, the
// aggregation), not the transport.
package spillbeam
