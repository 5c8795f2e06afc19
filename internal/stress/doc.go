// Package stress holds Spillway's permanent randomized stress test and the pool checks it runs
// while it goes.
//
// Each round of TestStress starts one memory.UnifiedManager with a small budget, one
// storage.DiskBlockManager and BlockManager, and one shuffle.Runner, then up to 64 concurrent
// tasks. Every task has its own memory.TaskManager and disk scope and drives real spilling
// consumers (collection.ExternalAppendOnlyMap, ExternalSorter, ExternalGrouper, a shuffle map and
// reduce stage, BlockManager puts and gets), sometimes beside a second consumer of the same task
// that forces them to spill, and meets a random fate: it finishes, its context is cancelled, its
// collection is closed from another goroutine while it inserts or reads, or it stops reading
// early. A monitor checks the pools (CheckPools, CheckCounters) while the round runs. After the
// round no memory, file or goroutine may be left, and every task that finished without an error
// must have produced exactly what a plain in-memory computation gives.
//
// The interleaving is random on purpose; every assertion holds for any interleaving. The seeds
// are logged and replayable: see stress_test.go for the flags and environment variables.
package stress
