// Package workload defines the named workloads of spillbench: for each, the Spillway run (a
// harness.Body that uses the run's memory manager, disk manager and strategy) and the plain-Go
// baselines it is compared with. Inputs are generated on the fly from a seed, so neither kind of
// run holds its input in the heap, and every run checks its own output.
package workload

import (
	"context"
	"errors"
	"fmt"

	"github.com/spillway/spillway/bench/harness"
	"github.com/spillway/spillway/collection"
	"github.com/spillway/spillway/examples/pagerank/pagerank"
)

// Params size the workloads.
type Params struct {
	// Records is the number of input records of every workload.
	Records int64
	// Seed selects the generated data.
	Seed uint64
	// InitialThreshold is the free allowance of every spillable collection
	// (collection.SpillConfig.InitialThreshold). 0 means Spark's 5 MiB; tests lower it so tiny
	// inputs spill.
	InitialThreshold int64
	// Iterations is the number of PageRank iterations. 0 means Spark's example's 10.
	Iterations int
}

// iterations is the number of PageRank iterations.
func (p Params) iterations() int {
	if p.Iterations > 0 {
		return p.Iterations
	}
	return pagerank.DefaultIterations
}

// spillConfig is the spill configuration of a run.
func (p Params) spillConfig(env *harness.Env) collection.SpillConfig {
	return collection.SpillConfig{InitialThreshold: p.InitialThreshold, Compression: env.Strategy.Compression(), Logger: env.Logger}
}

// Validate reports every invalid field (errors.Join): a non-positive record count, a negative
// iteration count.
func (p Params) Validate() error {
	var errs []error
	if p.Records <= 0 {
		errs = append(errs, fmt.Errorf("workload: Records must be positive, got %d", p.Records))
	}
	if p.Iterations < 0 {
		errs = append(errs, fmt.Errorf("workload: Iterations must not be negative, got %d", p.Iterations))
	}
	return errors.Join(errs...)
}

// Baseline is a plain-Go version of a workload.
type Baseline struct {
	Name string
	Body harness.Body
}

// Workload is one named benchmark.
type Workload struct {
	Name        string
	Description string
	// Strategies is the default comparison: the knobs that matter to this workload.
	Strategies []harness.Strategy
	// Baselines run before the strategies; the first is the reference for ratios.
	Baselines []Baseline
	// Run is the Spillway version; it uses env.Strategy.
	Run harness.Body
	// OwnMemory says Run builds its own executor from env.Budget (harness.Spec.OwnMemory).
	OwnMemory bool
	// MinBudget is the smallest budget Run accepts; 0 means any.
	MinBudget int64
}

// Spec is the harness run of w under strategy s with budget.
func (w Workload) Spec(s harness.Strategy, budget int64) harness.Spec {
	return harness.Spec{Workload: w.Name, Strategy: s, Budget: budget, OwnMemory: w.OwnMemory, Body: w.Run}
}

// BaselineSpec is the harness run of baseline b of w with budget.
func (w Workload) BaselineSpec(b Baseline, budget int64) harness.Spec {
	return harness.Spec{Workload: w.Name, Baseline: b.Name, Budget: budget, Body: b.Body}
}

// All returns every workload, in the order spillbench runs them.
func All(p Params) []Workload {
	return []Workload{
		aggregation("agg-uniform", "sum per key over uniformly distributed keys (ExternalAppendOnlyMap)", uniformKeys, p),
		aggregation("agg-zipf", "sum per key over Zipf(1.1)-distributed keys (ExternalAppendOnlyMap)", zipfKeys, p),
		grouping(p),
		sorting(p),
		aggSort(p),
		caching(p),
		pageRank(p),
	}
}

// tick updates the run's progress every 4096 records and then reports whether ctx was cancelled.
func tick(ctx context.Context, env *harness.Env, i int64) error {
	if i&4095 != 4095 {
		return nil
	}
	env.AddRecords(4096)
	return ctx.Err()
}
