package storage

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLevels(t *testing.T) {
	tests := []struct {
		l                         Level
		name                      string
		disk, mem, offHeap, deser bool
		repl                      int
		valid                     bool
	}{
		{MemoryOnly, "MEMORY_ONLY", false, true, false, true, 1, true},
		{MemoryOnlySer, "MEMORY_ONLY_SER", false, true, false, false, 1, true},
		{MemoryAndDisk, "MEMORY_AND_DISK", true, true, false, true, 1, true},
		{MemoryAndDiskSer, "MEMORY_AND_DISK_SER", true, true, false, false, 1, true},
		{DiskOnly, "DISK_ONLY", true, false, false, false, 1, true},
		{DiskOnly3, "DISK_ONLY_3", true, false, false, false, 3, true},
		{MemoryAndDiskSer2, "MEMORY_AND_DISK_SER_2", true, true, false, false, 2, true},
		{OffHeap, "OFF_HEAP", true, true, true, false, 1, true},
		{None, "NONE", false, false, false, false, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.name, tt.l.String())
			require.Equal(t, tt.disk, tt.l.UseDisk())
			require.Equal(t, tt.mem, tt.l.UseMemory())
			require.Equal(t, tt.offHeap, tt.l.UseOffHeap())
			require.Equal(t, tt.deser, tt.l.Deserialized())
			require.Equal(t, tt.repl, tt.l.Replication())
			require.Equal(t, tt.valid, tt.l.Valid())
			require.Equal(t, tt.l, NewLevel(tt.disk, tt.mem, tt.offHeap, tt.deser, tt.repl), "levels are interned by value")
			p, err := ParseLevel(tt.name)
			require.NoError(t, err)
			require.Equal(t, tt.l, p)
		})
	}
	require.False(t, Level(0).Valid())
	require.Equal(t, "StorageLevel(disk, memory, deserialized, 3 replicas)", NewLevel(true, true, false, true, 3).String())
	require.Equal(t, "StorageLevel(2 replicas)", NewLevel(false, false, false, false, 2).String())
	require.Equal(t, "StorageLevel(disk, memory, offheap, 2 replicas)", NewLevel(true, true, true, false, 2).String())
	_, err := ParseLevel("MEMORY_ONLY_3")
	require.ErrorContains(t, err, `"MEMORY_ONLY_3"`)
	require.Panics(t, func() { NewLevel(true, false, false, false, 0) })
	require.Panics(t, func() { NewLevel(true, false, false, false, 40) })
	require.Panics(t, func() { NewLevel(false, true, true, true, 1) })
}
