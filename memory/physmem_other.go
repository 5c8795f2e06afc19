//go:build !linux

package memory

import "errors"

// physicalMemory is only implemented on Linux; elsewhere set Config.Budget, Config.SystemMemory or
// a Go memory limit.
func physicalMemory() (int64, error) {
	return 0, errors.New("memory: physical memory size is unknown on this platform; set Config.Budget, Config.SystemMemory or a Go memory limit (debug.SetMemoryLimit)")
}
