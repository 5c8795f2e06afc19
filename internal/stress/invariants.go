package stress

import (
	"fmt"

	"github.com/spillway/spillway/memory"
)

// CheckPools returns every violation of memory/doc.go's pool invariants visible in one Metrics
// snapshot (taken under the manager's lock, so it is consistent):
//
//   - invariant 1: per mode, execution pool size + storage pool size = Max, and each pool's use
//     lies in [0, size];
//   - invariant 2: execution use is the sum of the per-task entries, none negative;
//   - invariant 3 as far as a snapshot shows it: no task holds more than
//     maxPool = Max − min(storage used, storage region). The 1/N bound itself is about grants: N
//     may have grown since a task's last grant, so a holding above maxPool/N is legitimate and
//     is not reported (in a consistent snapshot this bound follows from the others; it is
//     checked anyway, as the figure the invariant names);
//   - no negative figure (waiting tasks, counters), and no more waiting tasks than tasks that
//     could be waiting (maxWaiting; negative means unknown).
func CheckPools(s memory.Metrics, maxWaiting int) []string {
	var bad []string
	report := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	for _, mode := range []memory.Mode{memory.OnHeap, memory.OffHeap} {
		p := s.Pools[mode]
		if p.ExecutionPoolSize+p.StoragePoolSize != p.Max {
			report("%v: execution pool %d + storage pool %d != max %d (invariant 1)",
				mode, p.ExecutionPoolSize, p.StoragePoolSize, p.Max)
		}
		if p.ExecutionPoolSize < 0 || p.StoragePoolSize < 0 || p.StorageRegion < 0 || p.StorageRegion > p.Max {
			report("%v: negative or oversized figure: execution pool %d, storage pool %d, storage region %d of max %d",
				mode, p.ExecutionPoolSize, p.StoragePoolSize, p.StorageRegion, p.Max)
		}
		if p.ExecutionUsed < 0 || p.ExecutionUsed > p.ExecutionPoolSize {
			report("%v: execution used %d outside [0, pool size %d] (invariant 1)", mode, p.ExecutionUsed, p.ExecutionPoolSize)
		}
		if p.StorageUsed < 0 || p.StorageUsed > p.StoragePoolSize {
			report("%v: storage used %d outside [0, pool size %d] (invariant 1)", mode, p.StorageUsed, p.StoragePoolSize)
		}
		if p.ExecutionUsed+p.StorageUsed > p.Max {
			report("%v: execution used %d + storage used %d > max %d", mode, p.ExecutionUsed, p.StorageUsed, p.Max)
		}
		maxPool := p.Max - min(p.StorageUsed, p.StorageRegion)
		var sum int64
		for task, used := range p.Tasks {
			sum += used
			if used < 0 {
				report("%v: task %d holds %d bytes (invariant 2)", mode, task, used)
			}
			if used > maxPool {
				report("%v: task %d holds %d bytes > maxPool %d (invariant 3)", mode, task, used, maxPool)
			}
		}
		if sum != p.ExecutionUsed {
			report("%v: task entries sum to %d, execution used is %d (invariant 2)", mode, sum, p.ExecutionUsed)
		}
	}
	if s.Waiting < 0 || maxWaiting >= 0 && s.Waiting > maxWaiting {
		report("%d tasks waiting, expected within [0, %d]", s.Waiting, maxWaiting)
	}
	if s.Waits < 0 || s.SpillsRequested < 0 || s.SpillBytesReleased < 0 || s.EvictionsRequested < 0 || s.EvictedBytes < 0 {
		report("negative counter: waits %d, spills %d (%d bytes), evictions %d (%d bytes)",
			s.Waits, s.SpillsRequested, s.SpillBytesReleased, s.EvictionsRequested, s.EvictedBytes)
	}
	return bad
}

// CheckCounters returns a violation for every event counter of cur that is below prev's: the
// counters of a UnifiedManager only grow.
func CheckCounters(prev, cur memory.Metrics) []string {
	var bad []string
	for _, c := range []struct {
		name      string
		prev, cur int64
	}{
		{"Waits", prev.Waits, cur.Waits},
		{"SpillsRequested", prev.SpillsRequested, cur.SpillsRequested},
		{"SpillBytesReleased", prev.SpillBytesReleased, cur.SpillBytesReleased},
		{"EvictionsRequested", prev.EvictionsRequested, cur.EvictionsRequested},
		{"EvictedBytes", prev.EvictedBytes, cur.EvictedBytes},
	} {
		if c.cur < c.prev {
			bad = append(bad, fmt.Sprintf("counter %s went down from %d to %d", c.name, c.prev, c.cur))
		}
	}
	return bad
}

// CheckIdle returns a violation for every figure of s that is not back to rest: no memory in
// use in any pool, no task entry, no task waiting.
func CheckIdle(s memory.Metrics) []string {
	var bad []string
	for _, mode := range []memory.Mode{memory.OnHeap, memory.OffHeap} {
		p := s.Pools[mode]
		if p.ExecutionUsed != 0 || p.StorageUsed != 0 || len(p.Tasks) != 0 {
			bad = append(bad, fmt.Sprintf("%v: execution used %d, storage used %d, task entries %v after the round",
				mode, p.ExecutionUsed, p.StorageUsed, p.Tasks))
		}
	}
	if s.Waiting != 0 {
		bad = append(bad, fmt.Sprintf("%d tasks still waiting after the round", s.Waiting))
	}
	return bad
}
