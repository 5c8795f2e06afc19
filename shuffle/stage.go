package shuffle

import (
	"context"
	"fmt"

	"github.com/spillway/spillway/collection"
)

// MapInput produces the records of one map task: the map partition mapIndex of the stage's
// input (Spark's rdd.iterator(partition, context) in a ShuffleMapTask). The Writer closes the
// iterator.
type MapInput[K, V any] func(ctx context.Context, tc *TaskContext, mapIndex int) (collection.Iterator[collection.Pair[K, V]], error)

// RunMapStage runs the map stage of a shuffle on r (Spark's ShuffleMapStage of ShuffleMapTasks):
// it registers the shuffle with numMaps map tasks, runs one task per map partition that writes
// input's records through the writer NewWriter selects, and registers each map output. It
// returns each task's write metrics by map index. When the stage fails or ctx ends, the shuffle
// is unregistered and every map output already written is deleted: a local runner does not
// retry stages, so partial outputs would only hold disk space.
func RunMapStage[K comparable, V, C any](ctx context.Context, r *Runner, dep *Dependency[K, V, C], numMaps int, input MapInput[K, V]) ([]WriteMetrics, error) {
	if err := dep.Validate(); err != nil {
		return nil, err
	}
	if err := r.registry.RegisterShuffle(dep.ShuffleID, numMaps, dep.Partitioner.NumPartitions()); err != nil {
		return nil, err
	}
	metrics := make([]WriteMetrics, numMaps)
	err := r.Run(ctx, numMaps, func(ctx context.Context, tc *TaskContext, mapIndex int) error {
		records, err := input(ctx, tc, mapIndex)
		if err != nil {
			return fmt.Errorf("shuffle: input of map %d of shuffle %d: %w", mapIndex, dep.ShuffleID, err)
		}
		w, err := NewWriter(tc, dep, mapIndex)
		if err != nil {
			return joinErrors(err, records.Close())
		}
		status, err := w.Write(ctx, records)
		metrics[mapIndex] = w.Metrics()
		if err != nil {
			return fmt.Errorf("shuffle: map %d of shuffle %d: %w", mapIndex, dep.ShuffleID, err)
		}
		if err := r.registry.RegisterMapOutput(status); err != nil {
			// The writer left the output whole; unregistered, it must go.
			return joinErrors(err, r.registry.removeFiles(&status))
		}
		return nil
	})
	if err != nil {
		return metrics, joinErrors(err, r.registry.UnregisterShuffle(dep.ShuffleID))
	}
	return metrics, nil
}
