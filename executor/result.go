package executor

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync/atomic"

	"github.com/dustin/go-humanize"

	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/estimator"
	"github.com/spillway/spillway/shuffle"
)

// ErrResultTooLarge is matched (errors.Is) by a *ResultTooLargeError.
var ErrResultTooLarge = errors.New("executor: result larger than Config.MaxResultSize")

// ResultTooLargeError reports results that would exceed Config.MaxResultSize (Spark's "Total
// size of serialized results of N tasks (X) is bigger than spark.driver.maxResultSize (Y)").
type ResultTooLargeError struct {
	// Size is the estimated size of the results gathered when the limit was crossed.
	Size int64
	// Limit is Config.MaxResultSize.
	Limit int64
	// Partitions is the number of partitions asked for.
	Partitions int
}

// Error names the sizes.
func (e *ResultTooLargeError) Error() string {
	return fmt.Sprintf("executor: results of %d partitions reached %s, more than Config.MaxResultSize %s; "+
		"read them one partition at a time with Partitions, or raise the limit",
		e.Partitions, humanize.IBytes(uint64(e.Size)), humanize.IBytes(uint64(e.Limit)))
}

// Is makes errors.Is(err, ErrResultTooLarge) true.
func (e *ResultTooLargeError) Is(target error) bool { return target == ErrResultTooLarge }

// ComputeFunc returns the elements of one partition of a job's result (Spark's RDD.compute);
// the caller closes the iterator.
type ComputeFunc[T any] func(ctx context.Context, tc *shuffle.TaskContext, partition int) (collection.Iterator[T], error)

// Collect runs one task per partition and hands back every element, partition by partition
// (Spark's RDD.collect). The elements' estimated heap size (estimator.Estimate) is counted as
// they arrive, over all tasks together; once it would exceed Config.MaxResultSize the job fails
// with a *ResultTooLargeError instead of growing the caller's heap without bound.
func Collect[T any](ctx context.Context, ex *Executor, partitions int, compute ComputeFunc[T]) ([]T, error) {
	if partitions < 0 {
		return nil, fmt.Errorf("executor: Collect of %d partitions", partitions)
	}
	parts := make([][]T, partitions)
	var total atomic.Int64
	err := ex.Runner.Run(ctx, partitions, func(ctx context.Context, tc *shuffle.TaskContext, p int) error {
		var err error
		parts[p], err = gather(ctx, tc, p, compute, ex.cfg.MaxResultSize, partitions, &total)
		return err
	})
	if err != nil {
		return nil, err
	}
	n := 0
	for _, part := range parts {
		n += len(part)
	}
	out := make([]T, 0, n)
	for _, part := range parts {
		out = append(out, part...)
	}
	return out, nil
}

// Partitions runs the job one partition at a time and yields its elements (Spark's
// RDD.toLocalIterator): the caller holds at most one partition, bounded by
// Config.MaxResultSize, and the next partition is computed only when the previous one was read.
// An error is yielded once, as the last pair; stopping early computes nothing more.
func Partitions[T any](ctx context.Context, ex *Executor, partitions int, compute ComputeFunc[T]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if partitions < 0 {
			yield(zero, fmt.Errorf("executor: Partitions of %d partitions", partitions))
			return
		}
		for p := range partitions {
			var part []T
			err := ex.Runner.RunPartitions(ctx, []int{p}, func(ctx context.Context, tc *shuffle.TaskContext, p int) error {
				var err error
				part, err = gather(ctx, tc, p, compute, ex.cfg.MaxResultSize, 1, new(atomic.Int64))
				return err
			})
			if err != nil {
				yield(zero, err)
				return
			}
			for i, v := range part {
				part[i] = zero // let the caller's use of each element be the last reference
				if !yield(v, nil) {
					return
				}
			}
		}
	}
}

// gather reads partition p into a slice, adding each element's estimated size to total and
// failing once total exceeds limit (unless limit is NoLimit).
func gather[T any](ctx context.Context, tc *shuffle.TaskContext, p int, compute ComputeFunc[T], limit int64, partitions int, total *atomic.Int64) (_ []T, err error) {
	it, err := compute(ctx, tc, p)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	var out []T
	var est estimator.Estimator
	for it.Next() {
		v := it.Value()
		if n := total.Add(est.Estimate(v)); limit != NoLimit && n > limit {
			return nil, &ResultTooLargeError{Size: n, Limit: limit, Partitions: partitions}
		}
		out = append(out, v)
	}
	return out, it.Err()
}
