//go:build unix

package memory

import "syscall"

// hugePageSize is the size from which a mapping asks for transparent huge pages.
const hugePageSize = 2 << 20

// mapAnonymous returns size bytes of private anonymous memory, outside the Go heap. A mapping of
// at least hugePageSize asks for transparent huge pages (MADV_HUGEPAGE: a hint, ignored where
// they are off): a hash map's slot array is read at random, and with 4 KiB pages nearly every
// probe of a large array also misses the TLB.
func mapAnonymous(size int64) ([]byte, error) {
	b, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err == nil && size >= hugePageSize {
		_ = madviseHuge(b)
	}
	return b, err
}

// unmap gives a mapping from mapAnonymous back to the system.
func unmap(b []byte) error { return syscall.Munmap(b) }
