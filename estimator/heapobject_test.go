package estimator

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

var heapObjectGlobal [64]byte

type pointerful696 struct {
	p   *int
	pad [688]byte
}

// TestHeapObject checks the mspan offsets heapObject reads: objects of known allocation sizes
// (size classes, a malloc header, a large object, a tiny block) resolve to their slot from any
// address inside them, and memory outside the heap resolves to nothing.
func TestHeapObject(t *testing.T) {
	if !spanLayoutKnown {
		t.Skip("span layout not known on this Go release")
	}
	b100 := heapNew[[100]byte]()
	p696 := heapNew[pointerful696]()
	large := heapNew[[40_000]byte]()
	for _, tc := range []struct {
		name       string
		p          unsafe.Pointer
		size, want int64
		header     uintptr // the malloc header before the object
	}{
		{"100 bytes: class 112", unsafe.Pointer(&b100[0]), 100, 112, 0},
		{"pointerful 696 bytes: header, class 704", unsafe.Pointer(p696), 696, 704, mallocHeaderSize},
		{"40000 bytes: 5 pages", unsafe.Pointer(&large[0]), 40_000, 40_960, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, allocSize(tc.size, tc.header != 0))
			for _, off := range []int64{0, 1, tc.size / 2, tc.size - 1} {
				base, size := heapObject(unsafe.Add(tc.p, off))
				require.Equal(t, uintptr(tc.p)-tc.header, base, "offset %d", off)
				require.Equal(t, tc.want, size, "offset %d", off)
			}
		})
	}
	tiny := heapNew[int32]() // from the tiny allocator
	base, size := heapObject(unsafe.Pointer(tiny))
	require.EqualValues(t, tinySize, size, "tiny block")
	require.Zero(t, base%tinySize)
	require.LessOrEqual(t, base, uintptr(unsafe.Pointer(tiny)))

	base, size = heapObject(unsafe.Pointer(&heapObjectGlobal[3]))
	require.Zero(t, base, "global")
	require.Zero(t, size)
	var local [4]int64
	base, _ = heapObject(unsafe.Pointer(&local[1]))
	require.Zero(t, base, "stack")
	base, _ = heapObject(unsafe.Pointer(unsafe.StringData("constant string")))
	require.Zero(t, base, "read-only data")
}

// heapNew allocates a T on the heap: the result escapes.
//
//go:noinline
func heapNew[T any]() *T { return new(T) }
