//go:build !race

package heapbound

const raceEnabled = false
