package memory

import "maps"

// PoolMetrics describes the pools of one mode at one moment.
// Spark reports these through MemoryManager's getters (poolSize, memoryUsed) one at a time; here
// they are one snapshot.
type PoolMetrics struct {
	// Max is the whole region of the mode (maxHeapMemory / maxOffHeapMemory).
	Max int64
	// StorageRegion is the part of Max protected from eviction by execution.
	StorageRegion int64
	// ExecutionPoolSize and ExecutionUsed describe the execution pool.
	ExecutionPoolSize int64
	ExecutionUsed     int64
	// StoragePoolSize and StorageUsed describe the storage pool; StorageUsed includes unroll memory.
	StoragePoolSize int64
	StorageUsed     int64
	// Tasks is each active task's execution memory in this mode (ExecutionMemoryPool.memoryForTask).
	Tasks map[TaskID]int64
	// Unmanaged is the unmanaged memory of this mode found by the last poll, which execution
	// and storage cannot get (UnifiedManager.Unmanaged).
	Unmanaged int64
}

// Metrics is a value snapshot of a UnifiedManager (Spark exposes the same numbers through
// MemoryManager's getters and the executor's memory metrics). It shares nothing with the manager.
type Metrics struct {
	// Pools is indexed by Mode: Pools[OnHeap], Pools[OffHeap].
	Pools [2]PoolMetrics
	// Waiting is the number of tasks waiting right now for 1/2N of an execution pool.
	Waiting int
	// Waits counts every time a task had to wait for 1/2N of an execution pool.
	Waits int64
	// SpillsRequested counts Consumer.Spill calls made by TaskManagers, and SpillBytesReleased
	// sums what they returned.
	SpillsRequested    int64
	SpillBytesReleased int64
	// EvictionsRequested counts Evictor calls, and EvictedBytes sums the bytes they freed.
	EvictionsRequested int64
	EvictedBytes       int64
}

// Metrics returns a snapshot of pool sizes and use per mode, per-task use, and event counters.
func (m *UnifiedManager) Metrics() Metrics {
	m.mon.mu.Lock()
	defer m.mon.mu.Unlock()
	var s Metrics
	for _, mode := range []Mode{OnHeap, OffHeap} {
		e, st := m.exec[mode], m.storage[mode]
		s.Pools[mode] = PoolMetrics{
			Max: m.max[mode], StorageRegion: m.region[mode],
			ExecutionPoolSize: e.size, ExecutionUsed: e.used,
			StoragePoolSize: st.size, StorageUsed: st.used,
			Tasks:     maps.Clone(e.tasks),
			Unmanaged: m.unmanaged.used(mode),
		}
	}
	s.Waiting = m.mon.waiting
	s.Waits = m.mon.waits
	s.SpillsRequested = m.spills.Load()
	s.SpillBytesReleased = m.spilledBytes.Load()
	s.EvictionsRequested = m.evictions
	s.EvictedBytes = m.evictedBytes
	return s
}
