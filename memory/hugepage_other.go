//go:build unix && !linux

package memory

func madviseHuge([]byte) error { return nil }
