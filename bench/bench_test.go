// Package bench_test holds `go test -bench` benchmarks of Spillway's workloads end to end, each
// beside its plain-Go baselines (the same bodies spillbench runs, at a fixed small scale):
//
//	go test -run '^$' -bench . -benchtime 3x ./bench/
//
// Besides time and allocations they report the run's peak live heap, peak accounted memory and
// spill bytes per operation.
package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/spillway/spillway/bench/harness"
	"github.com/spillway/spillway/bench/workload"
)

// benchParams keeps one operation well under a second: 200k records against a 4 MiB budget with
// a 1 MiB free allowance, so every Spillway run spills.
var benchParams = workload.Params{Records: 200_000, Seed: 1, InitialThreshold: 1 << 20}

const benchBudget = 4 << 20

func BenchmarkWorkloads(b *testing.B) {
	for _, w := range workload.All(benchParams) {
		for _, bl := range w.Baselines {
			b.Run(w.Name+"/baseline-"+bl.Name, func(b *testing.B) {
				runBench(b, w.BaselineSpec(bl, benchBudget))
			})
		}
		for _, s := range w.Strategies {
			b.Run(w.Name+"/"+s.Label(), func(b *testing.B) {
				runBench(b, w.Spec(s, benchBudget))
			})
		}
	}
}

func runBench(b *testing.B, spec harness.Spec) {
	b.ReportAllocs()
	// Sample rarely: the benchmark measures time, the peaks come from the first and last samples
	// and the GCs in between are seen through the live-heap figure at the end of the run.
	cfg := harness.Config{TempDir: b.TempDir(), Interval: 50 * time.Millisecond}
	var peakHeap, peakAcct, spilled, records int64
	for b.Loop() {
		res, _, err := harness.Run(context.Background(), cfg, spec)
		if err != nil {
			b.Fatal(err)
		}
		peakHeap = max(peakHeap, res.PeakLiveHeap)
		peakAcct = max(peakAcct, res.PeakAccounted)
		spilled += res.SpillBytes
		records += res.Records
	}
	b.ReportMetric(float64(peakHeap), "peak-heap-B")
	b.ReportMetric(float64(peakAcct), "peak-acct-B")
	b.ReportMetric(float64(spilled)/float64(b.N), "spill-B/op")
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}
