// Package heapbound holds Spillway's heap-bound scenario tests: each runs one workload under a
// small memory budget at two data sizes at least 10× apart and checks, with memory/memtest,
// that the live heap grows by at most memtest.StrictBound(budget) (the budget plus 10% of it
// plus 2 MiB) and that the peak does not grow with the data. The tests run with stop-the-world
// collections (memtest.RunExact), so the live heap they read is what was reachable. The package
// has no code of its own; see its tests.
package heapbound
