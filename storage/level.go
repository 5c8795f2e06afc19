package storage

import (
	"fmt"
	"strings"
)

// Level is Spark's StorageLevel: where a block may be kept (memory, disk, off-heap memory),
// whether it is kept as deserialized values or serialized bytes, and how many replicas Spark would
// keep. It is a small comparable value, so equal levels are equal (Spark interns levels to get
// the same). The zero Level is invalid; None is Spark's NONE.
//
// Replication is recorded and reported for fidelity; this single-process port keeps one copy.
type Level uint16

const (
	levelUseDisk Level = 1 << iota
	levelUseMemory
	levelUseOffHeap
	levelDeserialized
	levelFlags       = levelDeserialized<<1 - 1
	levelReplShift   = 8
	maxReplication   = 40 // Spark requires replication < 40
	levelReplication = 1 << levelReplShift
)

// Spark's predefined levels (object StorageLevel).
const (
	None              Level = levelReplication
	DiskOnly          Level = levelUseDisk | levelReplication
	DiskOnly2         Level = levelUseDisk | 2*levelReplication
	DiskOnly3         Level = levelUseDisk | 3*levelReplication
	MemoryOnly        Level = levelUseMemory | levelDeserialized | levelReplication
	MemoryOnly2       Level = levelUseMemory | levelDeserialized | 2*levelReplication
	MemoryOnlySer     Level = levelUseMemory | levelReplication
	MemoryOnlySer2    Level = levelUseMemory | 2*levelReplication
	MemoryAndDisk     Level = levelUseDisk | levelUseMemory | levelDeserialized | levelReplication
	MemoryAndDisk2    Level = levelUseDisk | levelUseMemory | levelDeserialized | 2*levelReplication
	MemoryAndDiskSer  Level = levelUseDisk | levelUseMemory | levelReplication
	MemoryAndDiskSer2 Level = levelUseDisk | levelUseMemory | 2*levelReplication
	OffHeap           Level = levelUseDisk | levelUseMemory | levelUseOffHeap | levelReplication
)

var levelNames = []struct {
	l    Level
	name string
}{
	{None, "NONE"}, {DiskOnly, "DISK_ONLY"}, {DiskOnly2, "DISK_ONLY_2"}, {DiskOnly3, "DISK_ONLY_3"},
	{MemoryOnly, "MEMORY_ONLY"}, {MemoryOnly2, "MEMORY_ONLY_2"},
	{MemoryOnlySer, "MEMORY_ONLY_SER"}, {MemoryOnlySer2, "MEMORY_ONLY_SER_2"},
	{MemoryAndDisk, "MEMORY_AND_DISK"}, {MemoryAndDisk2, "MEMORY_AND_DISK_2"},
	{MemoryAndDiskSer, "MEMORY_AND_DISK_SER"}, {MemoryAndDiskSer2, "MEMORY_AND_DISK_SER_2"},
	{OffHeap, "OFF_HEAP"},
}

// NewLevel is Spark's StorageLevel.apply(useDisk, useMemory, useOffHeap, deserialized,
// replication). Like Spark it panics if replication is not in [1, 40) or if an off-heap level is
// deserialized ("Off-heap storage level does not support deserialized storage").
func NewLevel(useDisk, useMemory, useOffHeap, deserialized bool, replication int) Level {
	if replication < 1 || replication >= maxReplication {
		panic(fmt.Sprintf("storage: replication %d not in [1, %d)", replication, maxReplication))
	}
	if useOffHeap && deserialized {
		panic("storage: off-heap storage level does not support deserialized storage")
	}
	l := Level(replication) << levelReplShift
	for _, f := range []struct {
		on  bool
		bit Level
	}{{useDisk, levelUseDisk}, {useMemory, levelUseMemory}, {useOffHeap, levelUseOffHeap}, {deserialized, levelDeserialized}} {
		if f.on {
			l |= f.bit
		}
	}
	return l
}

// UseDisk reports whether blocks of this level may be stored on disk.
func (l Level) UseDisk() bool { return l&levelUseDisk != 0 }

// UseMemory reports whether blocks of this level may be stored in memory.
func (l Level) UseMemory() bool { return l&levelUseMemory != 0 }

// UseOffHeap reports whether memory blocks of this level live off the Go heap (Spark's
// memoryMode is OFF_HEAP iff this is true).
func (l Level) UseOffHeap() bool { return l&levelUseOffHeap != 0 }

// Deserialized reports whether memory blocks of this level are kept as values rather than bytes.
func (l Level) Deserialized() bool { return l&levelDeserialized != 0 }

// Replication returns the replication factor (0 only for the zero Level).
func (l Level) Replication() int { return int(l >> levelReplShift) }

// Valid is Spark's StorageLevel.isValid: memory or disk is used and replication > 0.
func (l Level) Valid() bool {
	return l.Replication() > 0 && l.Replication() < maxReplication && l&^(levelFlags|0xff<<levelReplShift) == 0 &&
		(l.UseMemory() || l.UseDisk())
}

// String returns Spark's constant name for predefined levels ("MEMORY_AND_DISK_SER", "NONE")
// and otherwise Spark's StorageLevel.toString form, e.g.
// "StorageLevel(disk, memory, deserialized, 3 replicas)".
func (l Level) String() string {
	for _, n := range levelNames {
		if n.l == l {
			return n.name
		}
	}
	var parts []string
	for _, f := range []struct {
		on   bool
		name string
	}{{l.UseDisk(), "disk"}, {l.UseMemory(), "memory"}, {l.UseOffHeap(), "offheap"}, {l.Deserialized(), "deserialized"}} {
		if f.on {
			parts = append(parts, f.name)
		}
	}
	parts = append(parts, fmt.Sprintf("%d replicas", l.Replication()))
	return "StorageLevel(" + strings.Join(parts, ", ") + ")"
}

// ParseLevel is Spark's StorageLevel.fromString: it accepts the constant names
// ("MEMORY_ONLY", "DISK_ONLY_2", ...) and returns an error naming the input otherwise.
func ParseLevel(name string) (Level, error) {
	for _, n := range levelNames {
		if n.name == name {
			return n.l, nil
		}
	}
	return 0, fmt.Errorf("storage: invalid storage level name %q", name)
}
