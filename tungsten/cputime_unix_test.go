//go:build unix

package tungsten

import (
	"syscall"
	"testing"
)

// cpuTime is the process's user and system time in nanoseconds, every thread (the machine may be
// shared: CPU time is steadier than wall time).
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
