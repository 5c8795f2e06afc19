// Package baseline holds the plain-Go versions of bench's workloads: what a Go programmer would
// write without Spillway. The in-memory ones (a built-in map, slices.SortFunc, a [][]T cache) are
// the usual first attempt and hold everything in the heap; ExternalSort is the hand-written
// sort-run-merge on plain files one writes once the data no longer fits. Spillway's runs are
// reported as ratios of these.
package baseline
