package estimator

import "unsafe"

// findObject is the runtime's lookup of the heap object containing an address
// (runtime/mbitmap.go). The runtime keeps its name and signature for packages that link to it
// (go.dev/issue/67401). It returns base 0 for an address outside the heap (globals, read-only
// data) or in a goroutine stack; s is the *runtime.mspan holding the object.
//
//go:linkname findObject runtime.findObject
//go:noescape
func findObject(p, refBase, refOff uintptr) (base uintptr, s unsafe.Pointer, objIndex uintptr)

// Offsets of runtime.mspan's fields (runtime/mheap.go, Go 1.26, 64-bit): after next, prev and
// list come startAddr and npages; elemsize follows the 16-bit and 8-bit bookkeeping fields.
// TestHeapObject checks them against objects of known sizes.
const (
	spanStartAddrOffset = 24
	spanNPagesOffset    = 32
	spanElemSizeOffset  = 104
)

// heapObject returns the base address and size of the heap object (the runtime's allocation
// slot) that contains p: a sub-slice or substring at any offset into a backing array, a pointer
// to a field or element, and a small object packed in a tiny-allocator block all resolve to the
// object that holds them. It returns 0, 0 for an address outside the heap (a global, read-only
// data), in a stack, or where the span does not look as expected (spanLayoutKnown false, or a
// runtime whose mspan layout moved), and the caller then sizes the range it knows instead.
//
// The object must be alive (reachable from the value being estimated), as it is throughout an
// Estimate: the runtime's lookup trusts its argument.
func heapObject(p unsafe.Pointer) (base uintptr, size int64) {
	if !spanLayoutKnown || p == nil {
		return 0, 0
	}
	b, s, _ := findObject(uintptr(p), 0, 0)
	if b == 0 || s == nil {
		return 0, 0
	}
	start := *(*uintptr)(unsafe.Add(s, spanStartAddrOffset))
	spanBytes := *(*uintptr)(unsafe.Add(s, spanNPagesOffset)) * pageSize
	elem := *(*uintptr)(unsafe.Add(s, spanElemSizeOffset))
	// What the offsets read must describe a span holding p in the object at b.
	if elem == 0 || b < start || uintptr(p)-b >= elem || b-start+elem > spanBytes {
		return 0, 0
	}
	return b, int64(elem)
}
