package memory

import "syscall"

// madviseHuge asks that the mapping b be backed by transparent huge pages.
func madviseHuge(b []byte) error { return syscall.Madvise(b, syscall.MADV_HUGEPAGE) }
