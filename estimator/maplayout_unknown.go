//go:build go1.27

package estimator

// mapLayoutKnown is false on Go releases newer than the map layout mirror was written for; see
// maplayout_known.go.
const mapLayoutKnown = false
