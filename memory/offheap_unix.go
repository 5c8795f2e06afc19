//go:build unix

package memory

import "syscall"

// mapAnonymous returns size bytes of private anonymous memory, outside the Go heap.
func mapAnonymous(size int64) ([]byte, error) {
	return syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

// unmap gives a mapping from mapAnonymous back to the system.
func unmap(b []byte) error { return syscall.Munmap(b) }
