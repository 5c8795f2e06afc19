//go:build race

package storage

// raceEnabled: the race detector slows the measuring tests about tenfold; they skip under it.
const raceEnabled = true
