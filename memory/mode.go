package memory

import "fmt"

// Mode says which of the two separate memory regions a request draws from. It mirrors Spark's
// org.apache.spark.memory.MemoryMode (ON_HEAP / OFF_HEAP).
type Mode uint8

const (
	// OnHeap memory lives in the Go heap (Spark: ON_HEAP, the JVM heap).
	OnHeap Mode = iota
	// OffHeap memory lives outside the Go heap in anonymous mappings the garbage collector never
	// scans (Spark: OFF_HEAP, Unsafe-allocated memory).
	OffHeap
)

// String returns "on-heap" or "off-heap".
func (m Mode) String() string {
	switch m {
	case OnHeap:
		return "on-heap"
	case OffHeap:
		return "off-heap"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// check panics on a Mode that is neither OnHeap nor OffHeap (programmer misuse).
func (m Mode) check() {
	if m > OffHeap {
		panic(fmt.Sprintf("memory: invalid mode %d", uint8(m)))
	}
}

// TaskID identifies one running task. It mirrors Spark's taskAttemptId.
type TaskID int64

// Block identifies a block being stored (Spark's BlockId as passed to acquireStorageMemory);
// storage.BlockID implements it. It may be nil where Spark passes None.
type Block interface{ String() string }

// blockName formats a possibly nil Block for logs and errors.
func blockName(b Block) string {
	if b == nil {
		return "<none>"
	}
	return b.String()
}

// checkSize panics with a "memory: " prefix when n is negative (programmer misuse, like Spark's
// require(numBytes >= 0)).
func checkSize(what string, n int64) {
	if n < 0 {
		panic(fmt.Sprintf("memory: %s: negative size %d", what, n))
	}
}
