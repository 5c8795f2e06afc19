package memory

import "syscall"

func madviseHuge(b []byte) error { return syscall.Madvise(b, syscall.MADV_HUGEPAGE) }
