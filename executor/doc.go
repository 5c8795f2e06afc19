// Package executor is where an engine built on Spillway starts: New assembles, from one Config,
// what one Spark executor process owns — a unified memory manager, a disk block manager, a block
// manager for cached blocks and a stage runner — sized to a single memory budget, and Close takes
// it all down again.
//
// What to use for which job:
//
//   - Run tasks: Executor.Runner.Run (a stage of tasks as goroutines, at most Config.Cores at
//     once). Each task gets a *shuffle.TaskContext with its memory.TaskManager, its disk scope
//     (files deleted when it ends), the block manager and completion hooks; whatever a task
//     leaves behind (memory, block locks, files) is released when it ends, and reported as a
//     leak.
//   - Aggregate, group or sort inside a task: collection.ExternalAppendOnlyMap,
//     collection.ExternalGrouper, collection.ExternalSorter, with tc.TaskManager() and
//     tc.Disk(), and tc.Runner().Config().Shuffle.Spill as their spill settings.
//   - Shuffle: shuffle.RunMapStage with a shuffle.Dependency, then shuffle.NewReader in the
//     reduce tasks.
//   - Cogroup and join several keyed inputs: CoGroup, and Join (inner, left outer, full outer),
//     which broadcasts the right side when it fits Config.BroadcastThreshold and shuffles both
//     sides otherwise (Spark's CoGroupedRDD and BroadcastHashJoinExec). Inside a task of your
//     own, CoGroupMap is the spillable map one CoGroup task runs (examples/pagerank joins
//     cached links with a shuffle's contributions in one).
//   - Hand results back to the caller: Collect, bounded by Config.MaxResultSize
//     (spark.driver.maxResultSize), or Partitions, which streams one partition at a time
//     (Spark's toLocalIterator).
//   - Cache a dataset for reuse: storage.GetOrElseUpdate on tc.Blocks() with a storage.Level.
//
// The executor's runner is shuffle.Runner: tasks and shuffles share the runner's map output
// registry and shuffle configuration, so the runner stays beside the shuffle code that reads them.
package executor
