//go:build unix && !linux

package memory

import "syscall"

// mapAnonymous returns size bytes of private anonymous memory, outside the Go heap.
func mapAnonymous(size int64) ([]byte, error) {
	return syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

// unmap gives a mapping from mapAnonymous or remap back to the system.
func unmap(b []byte) error { return syscall.Munmap(b) }

// remapCopies says remap holds b and the new mapping at once (it copies).
const remapCopies = true

// remap grows the mapping b to size bytes, keeping its contents: without Linux's mremap it maps
// new memory, copies and unmaps b, so both are mapped during the copy. b must not be used
// afterwards.
func remap(b []byte, size int64) ([]byte, error) {
	nb, err := mapAnonymous(size)
	if err != nil {
		return nil, err
	}
	copy(nb, b)
	return nb, unmap(b)
}
