package memory

import (
	"syscall"
	"unsafe"
)

// hugePageSize is the size from which a mapping asks for transparent huge pages.
const hugePageSize = 2 << 20

// mremapMayMove is Linux's MREMAP_MAYMOVE: the kernel may move the mapping to grow it.
const mremapMayMove = 1

// mapAnonymous returns size bytes of private anonymous memory, outside the Go heap. A mapping of
// at least hugePageSize asks for transparent huge pages (MADV_HUGEPAGE: a hint, ignored where
// they are off): a hash map's slot array is read at random, and with 4 KiB pages nearly every
// probe of a large array also misses the TLB.
//
// The mappings are made with the raw system calls rather than syscall.Mmap, whose bookkeeping
// would not know a mapping that remap moved.
func mapAnonymous(size int64) ([]byte, error) {
	addr, _, errno := syscall.Syscall6(syscall.SYS_MMAP, 0, uintptr(size),
		syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE, ^uintptr(0), 0)
	if errno != 0 {
		return nil, errno
	}
	b := mapping(addr, size)
	if size >= hugePageSize {
		_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	}
	return b, nil
}

// unmap gives a mapping from mapAnonymous or remap back to the system.
func unmap(b []byte) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MUNMAP, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0); errno != 0 {
		return errno
	}
	return nil
}

// remapCopies says whether remap holds the old and the new mapping at once (it copies): not
// here.
const remapCopies = false

// remap grows the mapping b to size bytes, keeping its contents, with mremap: the kernel moves
// its page table entries rather than the bytes, so growing costs no copy and the memory is never
// held twice. The mapping keeps its advice (MADV_HUGEPAGE). b must not be used afterwards.
func remap(b []byte, size int64) ([]byte, error) {
	addr, _, errno := syscall.Syscall6(syscall.SYS_MREMAP, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		uintptr(size), mremapMayMove, 0, 0)
	if errno != 0 {
		return nil, errno
	}
	return mapping(addr, size), nil
}

// mapping views size bytes at addr, an address the kernel returned, as a slice.
func mapping(addr uintptr, size int64) []byte {
	return unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&addr))), size)
}
