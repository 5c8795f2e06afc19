//go:build !go1.27

package estimator

// The runtime structures the estimator reads through unsafe pointers are mirrored for Go 1.24 to
// 1.26 (go.mod requires 1.26). A newer release is not trusted: reading its structures through
// the mirrors could follow a garbage pointer, so there the estimator falls back to what it can
// know without them until the mirrors are checked against that release.
const (
	// mapLayoutKnown: runtimeMap and runtimeTable mirror internal/runtime/maps; otherwise
	// Estimate falls back to mapModel.
	mapLayoutKnown = true
	// spanLayoutKnown: the offsets of runtime.mspan's fields below are Go 1.26's; otherwise
	// heap objects are not identified by their base (see heapObject).
	spanLayoutKnown = true
	// chanLayoutKnown: the offsets of runtime.hchan's fields below are Go 1.26's; otherwise a
	// channel's buffered elements are not walked.
	chanLayoutKnown = true
)
