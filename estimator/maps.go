package estimator

import (
	"reflect"
	"runtime"
	"slices"
	"unsafe"
)

// runtimeMap mirrors the header of a Go 1.24+ map (internal/runtime/maps.Map).
type runtimeMap struct {
	used              uint64
	seed              uintptr
	dirPtr            unsafe.Pointer // *[dirLen]*table, or the single group of a small map
	dirLen            int            // 0 for a small map
	globalDepth       uint8
	globalShift       uint8
	writing           uint8
	tombstonePossible bool
	clearSeq          uint64
}

// runtimeTable mirrors internal/runtime/maps.table: one Swiss table of up to 1024 slots.
type runtimeTable struct {
	used       uint16
	capacity   uint16
	growthLeft uint16
	localDepth uint8
	index      int
	groups     unsafe.Pointer // *[lengthMask+1]group
	lengthMask uint64
}

const (
	mapHeaderSize    = int64(unsafe.Sizeof(runtimeMap{}))
	mapTableSize     = int64(unsafe.Sizeof(runtimeTable{}))
	maxTableCapacity = 1024 // maps.maxTableCapacity: a full table splits in two
	maxAvgGroupLoad  = 7    // maps.maxAvgGroupLoad: a table grows at 7/8 full
	ptrSize          = int64(unsafe.Sizeof(uintptr(0)))
)

// groupArray is one allocation of groups: a table's, or a small map's single group.
type groupArray struct {
	table unsafe.Pointer // the owning table, nil for a small map
	data  unsafe.Pointer
	count int64 // groups
}

// mapGroups reads the map's directory and tables. It checks what it reads against the map's
// length and the runtime's invariants, and reports false if anything disagrees (a runtime
// whose map layout differs from Go 1.24–1.26's), in which case the caller falls back to a model.
// On Go releases after 1.26 it does not read at all (mapLayoutKnown).
//
// The groups are appended to buf[:0].
func mapGroups(h *runtimeMap, n int, buf []groupArray) ([]groupArray, bool) {
	if !mapLayoutKnown || h.used != uint64(n) {
		return nil, false
	}
	if h.dirLen == 0 {
		if h.dirPtr == nil {
			return nil, n == 0
		}
		return append(buf[:0], groupArray{data: h.dirPtr, count: 1}), n <= mapGroupSlots
	}
	if h.globalDepth >= 64 || h.dirLen != 1<<h.globalDepth {
		return nil, false
	}
	out := buf[:0]
	var used uint64
	var prev unsafe.Pointer
	for i := range h.dirLen {
		t := *(*unsafe.Pointer)(unsafe.Add(h.dirPtr, i*int(ptrSize)))
		if t == prev {
			continue // a table spans 2^(globalDepth−localDepth) consecutive directory entries
		}
		prev = t
		tb := (*runtimeTable)(t)
		count := tb.lengthMask + 1
		if t == nil || tb.groups == nil || count&(count-1) != 0 || uint64(tb.capacity) != count*mapGroupSlots ||
			tb.capacity > maxTableCapacity || tb.localDepth > h.globalDepth {
			return nil, false
		}
		used += uint64(tb.used)
		out = append(out, groupArray{table: t, data: tb.groups, count: int64(count)})
	}
	return out, used == h.used
}

// mapObject records the map whose header is at m: the header, the directory, each table and
// its groups, and walks (or samples) the keys and elements of full slots.
func (w *walker) mapObject(m unsafe.Pointer, l *layout) {
	// Take the walker's spare buffers (a map met while walking this one's elements makes its
	// own) and give them back at the end, cleared of the pointers into this map's tables.
	groups, slotsBefore := w.spareGroups, w.spareSlotsBefore
	w.spareGroups, w.spareSlotsBefore = nil, nil
	defer func() {
		clear(groups)
		w.spareGroups, w.spareSlotsBefore = groups[:0], slotsBefore[:0]
	}()
	ml := l.m
	n := reflect.NewAt(l.typ, unsafe.Pointer(&m)).Elem().Len()
	h := (*runtimeMap)(m)
	groups, ok := mapGroups(h, n, groups)
	if !ok {
		w.mapModel(m, l, n)
		return
	}
	// The directory, tables and groups belong to this map alone and are never reached
	// otherwise, so they are costed directly rather than merged with other ranges.
	w.parent = w.record(m, mapHeaderSize, true) // what follows is the map's
	if h.dirLen > 0 {
		w.charge(allocSize(int64(h.dirLen)*ptrSize, true))
	}
	for _, g := range groups {
		if g.table != nil {
			w.charge(allocSize(mapTableSize, true))
		}
		w.charge(allocSize(g.count*ml.group.size, ml.group.scan))
	}
	if !ml.slot.follow || n == 0 {
		return
	}
	if n <= sampleThreshold {
		for _, g := range groups {
			for i := range g.count * mapGroupSlots {
				if p := ml.fullSlot(g, i); p != nil {
					w.inline(p, ml.slot)
				}
			}
		}
		return
	}
	// Sample slot positions uniformly over all tables; empty positions are redrawn. A map
	// that grew and then lost most entries is too sparse for that: list its full slots.
	slotsBefore = append(slotsBefore[:0], 0) // slotsBefore[k]: slots in groups[:k]
	for k, g := range groups {
		slotsBefore = append(slotsBefore, slotsBefore[k]+g.count*mapGroupSlots)
	}
	total := slotsBefore[len(groups)]
	at := func(i int) unsafe.Pointer {
		k, found := slices.BinarySearch(slotsBefore, int64(i))
		if !found {
			k--
		}
		return ml.fullSlot(groups[k], int64(i)-slotsBefore[k])
	}
	if int64(n)*8 < total {
		full := make([]unsafe.Pointer, 0, n)
		for i := range int(total) {
			if p := at(i); p != nil {
				full = append(full, p)
			}
		}
		w.sample(n, len(full), ml.slot, func(i int) unsafe.Pointer { return full[i] })
		return
	}
	w.sample(n, int(total), ml.slot, at)
}

// fullSlot returns the address of slot i of g if the slot holds an entry, else nil. The control
// byte of slot j is byte j of the group's control word in memory order on little-endian
// machines and 7−j on big-endian ones, which is bits 8j..8j+7 of the word on both; an entry's
// control byte has the high bit clear (empty and deleted set it).
func (ml *mapLayout) fullSlot(g groupArray, i int64) unsafe.Pointer {
	group := unsafe.Add(g.data, (i/mapGroupSlots)*ml.group.size)
	j := i % mapGroupSlots
	if (*(*uint64)(group)>>(8*j))&0x80 != 0 {
		return nil
	}
	return unsafe.Add(group, ml.slotsOff+uintptr(j)*ml.slotSize)
}

// mapModel is the fallback when the map's runtime layout cannot be read: the header plus the
// tables a map of n entries has after growing by insertion (modelTables), and the keys and
// elements walked through reflection (sampled when many).
func (w *walker) mapModel(m unsafe.Pointer, l *layout, n int) {
	ml := l.m
	w.parent = w.record(m, mapHeaderSize, true) // what follows is the map's
	w.charge(modelTables(n, ml.group))
	if !ml.slot.follow || n == 0 {
		return
	}
	// Copy up to 2 × sampleSize entries (all of them if not sampling) into slots laid out as
	// the runtime's, then walk those copies as if they were the map's slots.
	limit := n
	if n > sampleThreshold {
		limit = 2 * sampleSize
	}
	copies := reflect.MakeSlice(reflect.SliceOf(ml.slot.typ), limit, limit)
	it := reflect.NewAt(l.typ, unsafe.Pointer(&m)).Elem().MapRange()
	for i := 0; i < limit && it.Next(); i++ {
		s := copies.Index(i)
		setSlotPart(s.Field(0), it.Key())
		setSlotPart(s.Field(1), it.Value())
	}
	base := copies.UnsafePointer()
	at := func(i int) unsafe.Pointer { return unsafe.Add(base, uintptr(i)*uintptr(ml.slot.size)) }
	if n <= sampleThreshold {
		for i := range limit {
			w.inline(at(i), ml.slot)
		}
	} else {
		// Map iteration starts at a random slot and keys sit in hash order, so the first
		// entries are a random sample already.
		w.sample(n, limit, ml.slot, at)
	}
	runtime.KeepAlive(copies)
}

// setSlotPart stores v into a slot's key or element, through a pointer for indirect ones. The
// pointer points at a copy, which costs as much as the runtime's own indirect key or element.
func setSlotPart(dst, v reflect.Value) {
	if dst.Kind() == reflect.Pointer && dst.Type().Elem() == v.Type() {
		p := reflect.New(v.Type())
		p.Elem().Set(v)
		dst.Set(p)
		return
	}
	dst.Set(v)
}

// modelTables returns the bytes of the directory, tables and groups of a map holding n entries
// after growing by insertion: up to 8 entries in one group; then one table that doubles from
// 16 slots while more than 7/8 full, up to 1024 slots; beyond that, tables of 1024 slots
// that split when 7/8 full, so with a uniform hash 2^k tables hold between 448 and 896 each.
func modelTables(n int, group *layout) int64 {
	switch {
	case n == 0:
		return 0
	case n <= mapGroupSlots:
		return allocSize(group.size, group.scan)
	}
	capacity := int64(2 * mapGroupSlots)
	for capacity < maxTableCapacity && int64(n) > capacity*maxAvgGroupLoad/mapGroupSlots {
		capacity *= 2
	}
	tables := int64(1)
	for int64(n) > tables*maxTableCapacity*maxAvgGroupLoad/mapGroupSlots {
		tables *= 2
	}
	return allocSize(tables*ptrSize, true) +
		tables*(allocSize(mapTableSize, true)+allocSize(capacity/mapGroupSlots*group.size, group.scan))
}
