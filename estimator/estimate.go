package estimator

import (
	"reflect"
	"runtime"
	"sync"
	"unsafe"
)

// Sizer mirrors Spark's KnownSizeEstimation: a value that reports its own deep size. The
// estimator adds EstimatedSize and does not look inside the value. It is honoured for the value
// passed to Estimate, for objects reached through a pointer (when the pointer type implements
// it, which includes value-receiver methods) and for values held in interfaces.
type Sizer interface {
	// EstimatedSize returns the bytes the value and everything only it references hold.
	EstimatedSize() int64
}

// Estimator mirrors Spark's SizeEstimator, for the Go heap: it computes the bytes the Go
// runtime has allocated for the objects a value reaches. It caches the layout of every type it
// meets; the zero value is ready to use and an Estimator is safe for concurrent use.
//
// Keep one Estimator for repeated estimates of similar values (a collection's Tracker samples,
// a memory store's unrolling): the package-level Estimate builds its layouts afresh each call.
// Do not make one per value either: an Estimator's pooled walker stays reachable until two
// collections have passed after its last use.
type Estimator struct {
	layouts sync.Map  // reflect.Type → *layout
	walkers sync.Pool // *walker, reused so repeated estimates (a Tracker's) make little garbage
}

// Estimate returns the deep heap footprint of the objects v reaches, as (*Estimator).Estimate,
// with a fresh type-layout cache. See the package documentation for what is counted.
//
// Its walker is not pooled: a sync.Pool that was ever Put to stays reachable from the runtime's
// list of pools until two collections have passed, so pooling in a throwaway Estimator would
// keep every call's walker and layouts live that long, a heap growing with the call rate.
func Estimate(v any) int64 {
	return (&Estimator{}).estimate(v, false)
}

// Estimate returns the bytes of Go heap held by the objects reachable from v, counted once
// each, rounded as the runtime's allocator rounds them. If v is a pointer, map or channel the
// object it points to counts; if v is any other value (a struct, slice, string, array) its own
// bytes do not count, only what it references: that is the heap growth of building v into a
// variable. A nil v is 0.
func (e *Estimator) Estimate(v any) int64 { return e.estimate(v, true) }

// estimate is Estimate, with a walker from the pool (returned to it after) when pooled, else a
// new one.
func (e *Estimator) estimate(v any, pooled bool) int64 {
	if v == nil {
		return 0
	}
	if s, ok := v.(Sizer); ok {
		return s.EstimatedSize()
	}
	l := e.layoutOf(reflect.TypeOf(v))
	var w *walker
	if pooled {
		w = e.walker()
		defer e.release(w)
	} else {
		w = e.newWalker()
	}
	// The data word of the interface v is the value itself for pointer-shaped types, else a
	// pointer to a copy of it (which Estimate's caller did not build, so it is not counted).
	data := (*[2]unsafe.Pointer)(unsafe.Pointer(&v))[1]
	if l.box == boxDirect {
		w.root = data // a word to point at that does not move to the heap, as &data would
		w.inline(unsafe.Pointer(&w.root), l)
	} else {
		w.inline(data, l)
	}
	w.drain(0)
	total := w.top.cost()
	runtime.KeepAlive(v)
	return total
}

// walker returns a reset walker, reused from an earlier call when one is free.
func (e *Estimator) walker() *walker {
	w, _ := e.walkers.Get().(*walker)
	if w == nil {
		return e.newWalker()
	}
	w.acc, w.parent = &w.top, -1
	return w
}

// newWalker returns a new walker, ready for a walk.
func (e *Estimator) newWalker() *walker {
	w := &walker{e: e, slices: map[uintptr]int{}}
	w.acc, w.parent = &w.top, -1
	return w
}

// maxPooledObjects bounds what a pooled walker keeps between calls: a walk of a huge graph
// leaves its sets and slices large, and those are dropped rather than held.
const maxPooledObjects = 1 << 14

// release resets w and returns it to the pool, unless its last walk made it large.
func (e *Estimator) release(w *walker) {
	if w.seen.len() > maxPooledObjects || w.objects.len() > maxPooledObjects || cap(w.top.objs) > maxPooledObjects || cap(w.stack) > maxPooledObjects ||
		cap(w.spareGroups) > maxPooledObjects {
		return
	}
	for _, sc := range w.samples {
		if cap(sc.pass.objs) > maxPooledObjects || cap(sc.guardPass.objs) > maxPooledObjects || cap(sc.objects) > maxPooledObjects {
			return
		}
	}
	w.seen.reset()
	w.objects.reset()
	clear(w.slices)
	w.depth, w.parent, w.generation, w.root = 0, -1, 0, nil
	// The stack holds unsafe.Pointers past its length: clear it all, or a pooled walker would
	// keep the last value it measured reachable (a spilled table, say). Everything else a walker
	// keeps is addresses and positions as integers.
	clear(w.stack[:cap(w.stack)])
	w.stack = w.stack[:0]
	w.top = accum{objs: w.top.objs[:0]}
	w.acc = nil
	e.walkers.Put(w)
}

// walker is the state of one Estimate call: Spark's SearchState, with an explicit stack so
// long chains of objects do not deepen the Go stack.
type walker struct {
	e    *Estimator
	root unsafe.Pointer // the value passed to Estimate, if it is pointer-shaped
	// seen holds the addresses of objects reached through a pointer, map or channel word or an
	// interface box, so shared objects and cycles count once.
	seen keySet
	// objects maps the base addresses of the heap objects counted (see record) to where they
	// were entered: 0 outside samples, else a sample's generation and the object's index there
	// (objectRef). So an object reached through pointers at different offsets (sub-slices,
	// substrings, fields) counts once, whichever sampled element reaches it first.
	objects keyTable[uint64]
	// generation numbers the samples of this walk, so objects entered by a finished sample are
	// told from those of the one in progress.
	generation uint32
	// slices maps a walked slice backing array to the longest length walked from it.
	slices map[uintptr]int
	// samples[d] is the scratch space of a sample call nested d deep in others (a container
	// sampled while walking another's sampled elements); depth is the number in progress.
	samples []*sampleScratch
	depth   int
	// parent is the object, as an index into the innermost sample's objects, whose contents are
	// being walked, or -1 outside samples and for an element's own bytes (see sample).
	parent int32
	// spareGroups and spareSlotsBefore are mapObject's buffers, held here between maps.
	spareGroups      []groupArray
	spareSlotsBefore []int64
	stack            []item
	top              accum
	acc              *accum // where objects found now are recorded: top, or a sampling pass's own
}

// item is work on the stack: n consecutive values of layout l at addr to walk, or the map
// whose runtime header is at addr (n == mapItem).
type item struct {
	addr   unsafe.Pointer
	l      *layout
	n      int
	parent int32 // the walker's parent while walking it: the object holding addr
}

const mapItem = -1

// accum collects the heap objects found (as address ranges, merged before costing) and sizes
// known without an address (Sizer results, extrapolated samples).
type accum struct {
	objs  []object
	extra int64
}

type object struct {
	start uintptr
	size  int64
	scan  bool
}

func (a *accum) add(p unsafe.Pointer, size int64, scan bool) {
	if size > 0 {
		a.objs = append(a.objs, object{start: uintptr(p), size: size, scan: scan})
	}
}

// record counts the object of size bytes at p (scan: its type holds pointers). A heap object
// is identified by its base (heapObject) and costs its allocation slot once per walk. Inside a
// sample, the object is also entered in the sample's objects (a new one with the walker's
// parent), or marked as reached by the current element if the sample met it before; record
// returns its index there, or -1. Anything else (globals, read-only data, or every object where
// the runtime's spans cannot be read) is recorded as an address range in the current
// accumulator, merged with its neighbours when costed.
func (w *walker) record(p unsafe.Pointer, size int64, scan bool) int32 {
	if size <= 0 {
		return -1
	}
	base, slot := heapObject(p)
	if base == 0 {
		w.acc.add(p, size, scan)
		return -1
	}
	if w.depth == 0 {
		if _, added := w.objects.insert(uint64(base), 0); added {
			w.acc.extra += slot
		}
		return -1
	}
	sc := w.samples[w.depth-1]
	ref, added := w.objects.insert(uint64(base), objectRef(sc.generation, len(sc.objects)))
	if added {
		return sc.newObject(slot, w.parent, slot <= tinySize)
	}
	return sc.reach(ref)
}

// objectRef returns the value of w.objects for object idx of the sample of generation gen.
func objectRef(gen uint32, idx int) uint64 { return uint64(gen)<<32 | uint64(idx+1) }

// charge adds b bytes known without an address (a Sizer's result, a map's tables, a nested
// sample's total) to the object being walked in the innermost sample, so they are scaled or
// not with it, or to the current accumulator.
func (w *walker) charge(b int64) {
	if w.depth > 0 && w.parent >= 0 {
		w.samples[w.depth-1].objects[w.parent].bytes += b
		return
	}
	w.acc.extra += b
}

// mergeGap is the largest gap between two recorded ranges that are costed as one run. Every
// heap object starts at least 8-byte aligned and consecutive objects of one size class lie
// back to back, so ranges closer than this either belong to one allocation (substrings and
// subslices of one backing array, pointers into an array) or are neighbours whose true cost
// is the run's length including the small tails between them (tiny-allocator blocks, size-class
// rounding).
const mergeGap = 16

// cost returns the bytes a's objects hold. Overlapping or nearly adjacent ranges are merged
// into runs: a lone range costs its allocation size (allocSize); a run of several costs its
// length (in whole 16-byte blocks if it holds tiny objects, which pin their block), or the
// allocation size of its largest range if that is more (one array holding the others).
func (a *accum) cost() int64 {
	total := a.extra
	objs := a.objs
	sortByStart(objs)
	for i := 0; i < len(objs); {
		start, end := objs[i].start, objs[i].start+uintptr(objs[i].size)
		largest := allocSize(objs[i].size, objs[i].scan)
		align := uintptr(8)
		if isTiny(objs[i].size, objs[i].scan) {
			align = tinySize
		}
		j := i + 1
		for ; j < len(objs) && objs[j].start < end+mergeGap; j++ {
			end = max(end, objs[j].start+uintptr(objs[j].size))
			largest = max(largest, allocSize(objs[j].size, objs[j].scan))
			if isTiny(objs[j].size, objs[j].scan) {
				align = tinySize
			}
		}
		if j == i+1 {
			total += largest
		} else {
			span := (end+align-1)&^(align-1) - start&^(align-1)
			total += max(largest, int64(span))
		}
		i = j
	}
	return total
}

// sortByStart sorts objs by start address, as slices.SortFunc would with cmp.Compare on start,
// but with the comparison inlined: a sampled estimate sorts each pass's objects, and a Tracker
// estimates often. Quicksort with the median of three as pivot (Hoare's partition, so sorted
// input and repeated addresses split evenly), recursing into the smaller part; insertion sort
// below 12 elements.
func sortByStart(objs []object) {
	for len(objs) > 12 {
		hi, mid := len(objs)-1, len(objs)/2
		if objs[mid].start < objs[0].start {
			objs[mid], objs[0] = objs[0], objs[mid]
		}
		if objs[hi].start < objs[mid].start {
			objs[hi], objs[mid] = objs[mid], objs[hi]
			if objs[mid].start < objs[0].start {
				objs[mid], objs[0] = objs[0], objs[mid]
			}
		}
		pivot := objs[mid].start
		i, j := -1, len(objs)
		for {
			for i++; objs[i].start < pivot; i++ {
			}
			for j--; objs[j].start > pivot; j-- {
			}
			if i >= j {
				break
			}
			objs[i], objs[j] = objs[j], objs[i]
		}
		// objs[:j+1] ≤ pivot ≤ objs[j+1:], both parts non-empty.
		if j+1 < len(objs)-j-1 {
			sortByStart(objs[:j+1])
			objs = objs[j+1:]
		} else {
			sortByStart(objs[j+1:])
			objs = objs[:j+1]
		}
	}
	for i := 1; i < len(objs); i++ {
		for j := i; j > 0 && objs[j].start < objs[j-1].start; j-- {
			objs[j], objs[j-1] = objs[j-1], objs[j]
		}
	}
}

// visit marks p seen and reports whether it was new. Inside a sample, an object seen before is
// marked as reached by the current element too.
func (w *walker) visit(p unsafe.Pointer) bool {
	if w.seen.add(uint64(uintptr(p))) {
		return true
	}
	if w.depth > 0 {
		if base, _ := heapObject(p); base != 0 {
			ref, _ := w.objects.get(uint64(base))
			w.samples[w.depth-1].reach(ref)
		}
	}
	return false
}

// inline walks the value of layout l stored at addr, whose own bytes are already counted (or
// deliberately not). Heap objects it references are recorded; their contents are pushed on
// the stack rather than walked here, so the recursion depth is bounded by the type's nesting.
func (w *walker) inline(addr unsafe.Pointer, l *layout) {
	switch l.kind {
	case kindPointer:
		w.pointee(*(*unsafe.Pointer)(addr), l)
	case kindString:
		s := (*stringHeader)(addr)
		w.record(s.data, int64(s.len), false)
	case kindSlice:
		s := (*sliceHeader)(addr)
		if s.data == nil || s.cap == 0 {
			return
		}
		idx := w.record(s.data, int64(s.cap)*l.elem.size, l.elem.scan)
		if l.elem.follow && s.len > 0 && w.slices[uintptr(s.data)] < s.len {
			w.slices[uintptr(s.data)] = s.len
			w.stack = append(w.stack, item{addr: s.data, l: l.elem, n: s.len, parent: idx})
		}
	case kindInterface:
		w.iface(addr, l)
	case kindMap:
		if m := *(*unsafe.Pointer)(addr); m != nil && w.visit(m) {
			w.stack = append(w.stack, item{addr: m, l: l, n: mapItem, parent: w.parent})
		}
	case kindChan:
		if c := *(*unsafe.Pointer)(addr); c != nil && w.visit(c) {
			w.channel(c, addr, l)
		}
	case kindStruct:
		for _, f := range l.fields {
			w.inline(unsafe.Add(addr, f.off), f.l)
		}
	case kindArray:
		w.elements(addr, l.length, l.elem)
	}
}

// pointee records the object of pointer layout pl at p and pushes its contents.
func (w *walker) pointee(p unsafe.Pointer, pl *layout) {
	el := pl.elem
	if p == nil || el.size == 0 || !w.visit(p) {
		return // zero-size objects are not allocated (the runtime returns &zerobase)
	}
	if pl.sizer {
		w.charge(reflect.NewAt(el.typ, p).Interface().(Sizer).EstimatedSize())
		return
	}
	idx := w.record(p, el.size, el.scan)
	if el.follow {
		w.stack = append(w.stack, item{addr: p, l: el, n: 1, parent: idx})
	}
}

// iface walks the interface value of layout l at addr: the dynamic value's box, as the
// runtime allocates it (boxRule), and what the value references.
func (w *walker) iface(addr unsafe.Pointer, l *layout) {
	words := (*[2]unsafe.Pointer)(addr)
	if words[0] == nil {
		return
	}
	iv := reflect.NewAt(l.typ, addr).Elem()
	dl := w.e.layoutOf(iv.Elem().Type())
	data := words[1]
	if dl.box == boxDirect {
		w.inline(unsafe.Pointer(&words[1]), dl) // a pointer's Sizer is honoured by pointee
		return
	}
	if data == nil || !w.visit(data) {
		return
	}
	if dl.sizer {
		w.charge(iv.Interface().(Sizer).EstimatedSize())
		return
	}
	idx := int32(-1)
	switch dl.box {
	case boxAlloc:
		idx = w.record(data, dl.size, dl.scan)
	case boxSmall:
		if !smallStatic(data, dl.size) {
			idx = w.record(data, dl.size, false)
		}
	case boxString:
		if (*stringHeader)(data).len != 0 { // convTstring returns a static zero value for ""
			idx = w.record(data, dl.size, true)
		}
	case boxSlice:
		if (*sliceHeader)(data).data != nil { // convTslice does for a nil data pointer
			idx = w.record(data, dl.size, true)
		}
	}
	if dl.follow {
		w.stack = append(w.stack, item{addr: data, l: dl, n: 1, parent: idx})
	}
}

// smallStatic reports whether convT16/32/64 returned a pointer into the runtime's static
// staticuint64s table instead of allocating: values below 256.
func smallStatic(p unsafe.Pointer, size int64) bool {
	switch size {
	case 2:
		return *(*uint16)(p) < 256
	case 4:
		return *(*uint32)(p) < 256
	}
	return *(*uint64)(p) < 256
}

// Offsets of runtime.hchan's fields (runtime/chan.go, Go 1.26, 64-bit) and its size
// (hchanSize there), which the test suite checks against the heap.
const (
	hchanSize        = 112
	hchanCountOffset = 0  // qcount: elements in the buffer
	hchanCapOffset   = 8  // dataqsiz: the buffer's length
	hchanBufOffset   = 16 // buf
	hchanRecvxOffset = 56 // recvx: the buffer index of the next element to receive
)

// channel records the channel at c (whose word is at addr): its hchan and buffer, allocated
// together when the element type has no pointers (runtime.makechan), and walks the elements in
// the buffer, oldest first from recvx around the ring (len(ch) of them, sampled above 400 like a
// slice's). The channel is not received from: its buffer is read in place, without the
// channel's lock, so a channel in use by other goroutines must not be estimated (as for any
// value modified during Estimate). What is read is checked against the channel's capacity.
func (w *walker) channel(c, addr unsafe.Pointer, l *layout) {
	capacity := uint(reflect.NewAt(l.typ, addr).Elem().Cap())
	el := l.elem
	buf := int64(capacity) * el.size
	if !el.scan {
		w.record(c, hchanSize+buf, false)
		return
	}
	saved := w.parent
	defer func() { w.parent = saved }()
	w.parent = w.record(c, hchanSize, false)
	data := *(*unsafe.Pointer)(unsafe.Add(c, hchanBufOffset))
	w.parent = w.record(data, buf, true)
	if !chanLayoutKnown || !el.follow {
		return
	}
	n := *(*uint)(unsafe.Add(c, hchanCountOffset))
	ring := *(*uint)(unsafe.Add(c, hchanCapOffset))
	recvx := *(*uint)(unsafe.Add(c, hchanRecvxOffset))
	if n == 0 || ring != capacity || n > ring || recvx >= ring {
		return
	}
	at := func(i int) unsafe.Pointer {
		return unsafe.Add(data, (recvx+uint(i))%ring*uint(el.size))
	}
	if n > sampleThreshold {
		w.sample(int(n), int(n), el, at)
		return
	}
	for i := range int(n) {
		w.inline(at(i), el)
	}
}

// drain processes the stack down to height mark.
func (w *walker) drain(mark int) {
	for len(w.stack) > mark {
		it := w.stack[len(w.stack)-1]
		w.stack = w.stack[:len(w.stack)-1]
		w.parent = it.parent
		if it.n == mapItem {
			w.mapObject(it.addr, it.l)
		} else {
			w.elements(it.addr, it.n, it.l)
		}
	}
}

// elements walks n consecutive values of layout el at base, sampling when there are many.
func (w *walker) elements(base unsafe.Pointer, n int, el *layout) {
	if n > sampleThreshold {
		w.sample(n, n, el, func(i int) unsafe.Pointer { return unsafe.Add(base, uintptr(i)*uintptr(el.size)) })
		return
	}
	for i := range n {
		w.inline(unsafe.Add(base, uintptr(i)*uintptr(el.size)), el)
	}
}

type stringHeader struct {
	data unsafe.Pointer
	len  int
}

type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}
