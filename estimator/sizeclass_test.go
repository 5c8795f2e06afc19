package estimator

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSizeClassesMatchRuntime checks sizeClassBytes against the installed runtime's generated
// table, so a Go upgrade that changes the classes fails here instead of skewing estimates.
func TestSizeClassesMatchRuntime(t *testing.T) {
	path := filepath.Join(runtime.GOROOT(), "src", "internal", "runtime", "gc", "sizeclasses.go")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("runtime sources not installed: %v", err)
	}
	m := regexp.MustCompile(`SizeClassToSize = \[NumSizeClasses\]uint16\{([0-9, ]+)\}`).FindSubmatch(src)
	require.NotNil(t, m, "SizeClassToSize not found in %s", path)
	var want []int64
	for f := range strings.SplitSeq(string(m[1]), ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		require.NoError(t, err)
		want = append(want, n)
	}
	require.Equal(t, want, sizeClassBytes[:])
	for name, v := range map[string]int64{
		"MaxSmallSize": maxSmallSize, "TinySize": tinySize,
	} {
		require.Regexp(t, regexp.MustCompile(`\b`+name+`\s*=\s*`+strconv.FormatInt(v, 10)+`\b`), string(src))
	}
}

func TestAllocSize(t *testing.T) {
	for _, tc := range []struct {
		size int64
		scan bool
		want int64
	}{
		{0, false, 0}, {0, true, 0},
		{1, false, 16}, {8, false, 16}, {15, false, 16},
		{8, true, 8}, {16, false, 16}, {17, false, 24}, {24, true, 24}, {33, true, 48},
		{512, true, 512}, {513, true, 576}, {520, true, 576}, {513, false, 576}, {1024, true, 1152},
		{1024, false, 1024}, {32760, false, 32768}, {32761, false, 32768}, {32760, true, 32768}, {32769, false, 40960},
		{32768, false, 32768}, {1 << 20, true, 1 << 20}, {1<<20 + 1, false, 1<<20 + pageSize},
	} {
		require.Equal(t, tc.want, allocSize(tc.size, tc.scan), "size %d scan %v", tc.size, tc.scan)
	}
}

// TestAllocSizeEverySmallSize compares allocSize with a plain reading of the size-class table
// for every size a small object can have, so the evenly spaced fast path cannot drift from it.
func TestAllocSizeEverySmallSize(t *testing.T) {
	for _, scan := range []bool{false, true} {
		for size := int64(1); size <= maxSmallSize; size++ {
			want := int64(-1)
			switch {
			case !scan && size < tinySize:
				want = tinySize
			case size > maxSmallSize-mallocHeaderSize:
				want = alignUp(size, pageSize)
			default:
				need := size
				if scan && size > minSizeForMallocHeader {
					need += mallocHeaderSize
				}
				for _, c := range sizeClassBytes {
					if c >= need {
						want = c
						break
					}
				}
			}
			if got := allocSize(size, scan); got != want {
				require.Equal(t, want, got, "size %d scan %v", size, scan)
			}
		}
	}
}
