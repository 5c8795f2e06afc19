//go:build linux

package memory

import (
	"fmt"
	"syscall"
)

// physicalMemory returns the machine's RAM (sysinfo(2)).
func physicalMemory() (int64, error) {
	var info syscall.Sysinfo_t
	if err := syscall.Sysinfo(&info); err != nil {
		return 0, fmt.Errorf("memory: reading physical memory (set Config.Budget or Config.SystemMemory): %w", err)
	}
	return int64(info.Totalram) * int64(info.Unit), nil
}
