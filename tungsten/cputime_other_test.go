//go:build !unix

package tungsten

import "testing"

// cpuTime is 0 where getrusage is missing: the cpu-ns/record metric then reads 0.
func cpuTime(*testing.B) int64 { return 0 }
