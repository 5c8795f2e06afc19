//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package storage

import "os"

// lockDir does nothing where flock is unavailable: directories are not marked with an owner.
func lockDir(string) (*os.File, error) { return nil, nil }

// lockStale finds no lock stale where flock is unavailable, so no directory is removed.
func lockStale(string) *os.File { return nil }
