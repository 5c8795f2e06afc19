//go:build race

package heapbound

// raceEnabled: the race detector slows the scenarios about tenfold, so they run only their
// small size under it.
const raceEnabled = true
