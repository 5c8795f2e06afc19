//go:build go1.27

package estimator

// On Go releases newer than the runtime mirrors were written for, nothing is read through them;
// see runtimelayout_known.go.
const (
	mapLayoutKnown  = false
	spanLayoutKnown = false
	chanLayoutKnown = false
)
