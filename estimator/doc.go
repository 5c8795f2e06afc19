// Package estimator sizes Go values as the Go runtime really holds them (Spark's SizeEstimator)
// and tracks the size of growing collections by sampling (Spark's SizeTracker).
package estimator
