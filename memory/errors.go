package memory

import (
	"errors"

	"github.com/dustin/go-humanize"
)

// Sentinel errors; errors.Is finds them through wrapping. Each wrapping error names the sizes
// involved.
var (
	// ErrOutOfMemory is Spark's SparkOutOfMemoryError: a consumer cannot get the memory it needs
	// even after spilling. Its message carries the task's usage report.
	ErrOutOfMemory = errors.New("memory: out of memory")
	// ErrPageTooLarge is TooLargePageException: a page larger than MaxPageSize was requested.
	ErrPageTooLarge = errors.New("memory: page too large")
	// ErrPageTableFull is TaskMemoryManager's "Have already allocated a maximum of 8192 pages".
	ErrPageTableFull = errors.New("memory: page table full")
	// ErrOffHeapUnsupported is returned for off-heap pages on platforms without mmap.
	ErrOffHeapUnsupported = errors.New("memory: off-heap pages need a unix platform (anonymous mmap)")
)

// ibytes formats a possibly negative byte count like humanize.IBytes.
func ibytes(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}
