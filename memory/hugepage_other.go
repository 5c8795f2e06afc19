//go:build unix && !linux

package memory

// madviseHuge does nothing where MADV_HUGEPAGE is not known.
func madviseHuge([]byte) error { return nil }
