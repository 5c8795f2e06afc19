package estimator

import "slices"

// The Go runtime's allocation constants (Go 1.26, 64-bit). sizeClassBytes is the data of
// SizeClassToSize in $GOROOT/src/internal/runtime/gc/sizeclasses.go (generated there by
// mksizeclasses.go); TestSizeClassesMatchRuntime compares it with the installed toolchain's file.
const (
	maxSmallSize           = 32768 // gc.MaxSmallSize: larger objects get their own span
	pageSize               = 8192  // gc.PageSize: large objects are rounded up to whole pages
	tinySize               = 16    // gc.TinySize: pointer-free objects below this share 16-byte blocks
	mallocHeaderSize       = 8     // gc.MallocHeaderSize: type header of pointerful objects above minSizeForMallocHeader
	minSizeForMallocHeader = 512   // gc.MinSizeForMallocHeader = PtrSize × PtrBits
)

var sizeClassBytes = [...]int64{0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208,
	224, 240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152,
	1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784,
	6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760,
	24576, 27264, 28672, 32768}

// allocSize returns the bytes the runtime's mallocgc takes from the heap for an object of size
// bytes; scan says whether the object's type holds pointers.
//
//   - size 0 allocates nothing (the runtime returns &zerobase);
//   - pointer-free objects under 16 bytes go to the tiny allocator, which packs consecutive ones
//     into a 16-byte block that is freed only when all of them are dead: one alone costs the
//     block (accum.cost charges several in one block once);
//   - objects above 32760 bytes get a span of their own, rounded up to whole 8 KiB pages;
//   - smaller pointerful objects above 512 bytes carry an 8-byte malloc header;
//   - the rest round up to their size class.
func allocSize(size int64, scan bool) int64 {
	switch {
	case size <= 0:
		return 0
	case isTiny(size, scan):
		return tinySize
	case size > maxSmallSize-mallocHeaderSize:
		// mallocgc sends these to the large-object path: a span of their own, no malloc header.
		return alignUp(size, pageSize)
	}
	// Up to 512 bytes (no malloc header) the classes are evenly spaced: every 8 bytes to 32,
	// every 16 to 256, every 32 to 512. Most objects an estimate meets are that small.
	switch {
	case size <= 32:
		return alignUp(size, 8)
	case size <= 256:
		return alignUp(size, 16)
	case size <= minSizeForMallocHeader:
		return alignUp(size, 32)
	case scan:
		size += mallocHeaderSize
	}
	i, _ := slices.BinarySearch(sizeClassBytes[:], size)
	return sizeClassBytes[i]
}

// isTiny reports whether the runtime serves an object from the tiny allocator.
func isTiny(size int64, scan bool) bool { return !scan && size > 0 && size < tinySize }

// alignUp rounds x up to a multiple of a, a power of two.
func alignUp(x, a int64) int64 { return (x + a - 1) &^ (a - 1) }
