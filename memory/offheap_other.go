//go:build !unix

package memory

// mapAnonymous is unavailable without unix mmap.
func mapAnonymous(int64) ([]byte, error) { return nil, ErrOffHeapUnsupported }

// unmap is never reached: no off-heap page can exist here.
func unmap([]byte) error { return ErrOffHeapUnsupported }

// remap is never reached: no off-heap page can exist here.
func remap([]byte, int64) ([]byte, error) { return nil, ErrOffHeapUnsupported }

// remapCopies: see offheap_linux.go.
const remapCopies = true
