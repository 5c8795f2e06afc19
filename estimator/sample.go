package estimator

import (
	"math/rand/v2"
	"unsafe"
)

// Spark's SizeEstimator sampling constants: arrays longer than sampleThreshold are estimated
// from 2 × sampleSize distinct elements (ARRAY_SIZE_FOR_SAMPLING, ARRAY_SAMPLE_SIZE).
const (
	sampleThreshold = 400
	sampleSize      = 100
	sampleRun       = 10 // consecutive positions drawn together (see sample)
)

// The PCG seed of every sampled container, mixed with its length, so estimates are
// deterministic (Spark seeds java.util.Random with 42 per array) while a growing container,
// measured again and again by a Tracker, is sampled at different positions each time, so the
// sampling error averages out instead of repeating.
const sampleSeed1, sampleSeed2 = 42, 0x5b11_1a7

// sample estimates n elements of layout el from 2 × sampleSize distinct elements (Spark's
// visitArray), separating what the elements share from what each holds alone.
//
// Spark walks two passes of 100 elements sharing the visited set, so an object reached by many
// elements counts in the first pass that reaches it, and takes
// max(s1, s2) + min(s1, s2) × (n − 100) / 100: right when the elements share a few objects
// that the first pass finds, far too high when they share more (each pass finds new ones, which
// the rule scales up as if each element held its own). Here every heap object the sample
// reaches is entered once, by its base, with the number of sampled elements and of runs (below)
// that reached it:
//
//   - An object reached by one element, and what is reached only through it, is the element's
//     own: the sampled elements' own bytes are scaled by n / (elements sampled). A 16-byte
//     object is own whatever reaches it: neighbouring small strings share tiny-allocator blocks
//     without sharing anything else.
//   - An object reached by two elements or more is shared, with what is reached only through
//     it (a unit): it counts once, unscaled. So does one that a run's element shares with the
//     element just outside the run (a guard, walked only to tell this; what guards alone
//     reach does not count), so the edge of a block of elements sharing a buffer is not taken
//     for an element's own.
//   - The units missed are estimated from the runs: Chao's bias-corrected estimator,
//     f1(f1 − 1) / (2(f2 + 1)) over the units reached by one run (f1) and by two (f2), units
//     reached by the same runs counting as one; or, if more, the blocks of consecutive elements
//     sharing units that the places where the units change between neighbours imply (changes
//     among the adjacent pairs sampled, times n), less those seen. Each costs what an f1 unit
//     costs on average, and all of them at most as much as scaling the f1 units as own.
//
// So a few objects shared by all elements count once (every run finds them: none missed);
// blocks of consecutive elements sharing buffers (records parsed from a stream) are estimated
// from the blocks seen: within a few percent when there are few blocks, but from about −70% to
// +180% when a sample's 20 runs meet only a few percent of them and the buffers are most of the
// total (TestSampledBlockSharing's grid, with records of their own, stays within ±30%). Without
// sharing this is (s1 + s2) × n / 200, unbiased for heavy-tailed element sizes (Spark's rule
// read PageRank's join map 22% low at the median). Like Spark's rule it cannot tell an object
// held by one element from one shared by a few elements spread among many: those are scaled as
// own, overestimating.
//
// Unlike Spark, the sample draws runs of sampleRun consecutive positions rather than single
// ones. Consecutive elements' objects usually lie next to each other (small strings packed by
// the tiny allocator, nodes allocated in a loop), and walking them together measures what an
// element adds. Each element's walk is finished before the next starts, so what it reaches is
// attributed to it.
//
// Positions are in [0, space); at returns the element at a position, or nil if the position
// holds none (an empty map slot).
func (w *walker) sample(n, space int, el *layout, at func(i int) unsafe.Pointer) {
	if w.depth == len(w.samples) {
		sc := &sampleScratch{}
		sc.rng = rand.New(&sc.pcg)
		w.samples = append(w.samples, sc)
	}
	sc := w.samples[w.depth]
	sc.pcg.Seed(sampleSeed1, sampleSeed2^uint64(n))
	sc.drawn.reset()
	sc.batch, sc.runOf, sc.guard = sc.batch[:0], sc.runOf[:0], sc.guard[:0]
	k := 0
	add := func(i int, run int32, guard bool) {
		if i >= 0 && i < space && sc.drawn.add(uint64(i)+1) && at(i) != nil {
			sc.batch, sc.runOf, sc.guard = append(sc.batch, i), append(sc.runOf, run), append(sc.guard, guard)
			if !guard {
				k++
			}
		}
	}
	for run := int32(0); k < 2*sampleSize && sc.drawn.len() < space; run++ {
		start := sc.rng.IntN(space)
		add(start-1, run, true)
		end := start
		for ; end < min(start+sampleRun, space) && k < 2*sampleSize; end++ {
			add(end, run, false)
		}
		add(end, run, true)
	}
	if k == 0 {
		return
	}
	sc.objects = sc.objects[:0]
	w.generation++
	sc.generation = w.generation
	saved, parent := w.acc, w.parent
	sc.pass = accum{objs: sc.pass.objs[:0]}
	sc.guardPass = accum{objs: sc.guardPass.objs[:0]}
	w.depth++
	sc.touched, sc.touchFrom = sc.touched[:0], sc.touchFrom[:0]
	for j, i := range sc.batch {
		sc.touchFrom = append(sc.touchFrom, int32(len(sc.touched)))
		sc.elem, sc.run, sc.walkingGuard = int32(j), sc.runOf[j], sc.guard[j]
		w.acc, w.parent = &sc.pass, -1
		if sc.walkingGuard {
			w.acc = &sc.guardPass // not counted: a guard only tells what its neighbour shares
		}
		mark := len(w.stack)
		w.inline(at(i), el)
		w.drain(mark)
	}
	sc.touchFrom = append(sc.touchFrom, int32(len(sc.touched)))
	w.depth--
	w.acc, w.parent = saved, parent
	w.charge(sc.total(n, k, sc.pass.cost()))
}

// total classifies the sample's objects and returns the estimate for n elements, given the
// bytes of the sampled elements found outside heap objects (own).
func (sc *sampleScratch) total(n, sampled int, own int64) int64 {
	var shared, f1Bytes int64
	var f1, f2 int
	objs := sc.objects
	for i := range objs {
		o := &objs[i]
		switch {
		case o.parent >= 0 && objs[o.parent].unit >= 0:
			o.unit = objs[o.parent].unit // parents are entered before what they reach
		case o.elems == 0:
			o.unit = guardOnly // left to the estimate of the units missed
			continue
		case (o.elems >= 2 || o.guarded) && !o.tiny:
			o.unit = int32(i)
		default:
			o.unit = -1
			own += o.bytes
			continue
		}
		shared += o.bytes
		if u := &objs[o.unit]; u.runs == 1 {
			f1Bytes += o.bytes
		}
	}
	// Units reached by the same runs are counted as one: a block of elements sharing several
	// objects (a record's key and value buffers) is one unit for the estimate of those missed.
	sc.drawn.reset()
	for i := range objs {
		if o := &objs[i]; o.unit == int32(i) && o.runs <= 2 && sc.drawn.add(uint64(o.firstRun)<<32|uint64(o.lastRun)+1) {
			if o.runs == 1 {
				f1++
			} else {
				f2++
			}
		}
	}
	k := float64(sampled)
	total := float64(own)*float64(n)/k + float64(shared)
	if f1 == 0 {
		return int64(total)
	}
	// The units missed: Chao's estimate from the runs, or, if more, the blocks of consecutive
	// elements sharing units that the places where the units change imply (estimated from the
	// adjacent pairs sampled), less those seen. A run reaching several blocks makes a group of
	// them, so the blocks seen are the groups plus the changes.
	missed := float64(f1*(f1-1)) / float64(2*(f2+1))
	pairs, changes := sc.boundaries()
	if pairs > 0 {
		missed = max(missed, float64(changes)*float64(n-1)/float64(pairs)-float64(f1+changes))
	}
	perBlock := float64(f1Bytes) / float64(f1+changes)
	total += min(missed*perBlock, float64(f1Bytes)*(float64(n)-k)/k)
	return int64(total)
}

// boundaries returns the number of pairs of adjacent elements in the sample (positions i and
// i + 1 of one run) and how many of those reach different units among the ones reached by one
// run: the boundaries between blocks of consecutive elements sharing objects.
func (sc *sampleScratch) boundaries() (pairs, changes int) {
	for j := range len(sc.batch) - 1 {
		if sc.runOf[j] != sc.runOf[j+1] || sc.batch[j+1] != sc.batch[j]+1 {
			continue
		}
		pairs++
		a := sc.touched[sc.touchFrom[j]:sc.touchFrom[j+1]]
		b := sc.touched[sc.touchFrom[j+1]:sc.touchFrom[j+2]]
		if !sc.sameBlockUnits(a, b) || !sc.sameBlockUnits(b, a) {
			changes++
		}
	}
	return pairs, changes
}

// sameBlockUnits reports whether every unit reached by one run among the objects a touched is
// among those b touched.
func (sc *sampleScratch) sameBlockUnits(a, b []int32) bool {
	objs := sc.objects
outer:
	for _, i := range a {
		u := objs[i].unit
		if u < 0 || objs[u].runs != 1 {
			continue
		}
		for _, j := range b {
			if objs[j].unit == u {
				continue outer
			}
		}
		return false
	}
	return true
}

// sampleScratch is what a sample call needs besides the walker, kept by the walker for reuse.
// It holds positions, addresses and counts as integers only, so it keeps nothing alive.
type sampleScratch struct {
	pcg   rand.PCG
	rng   *rand.Rand // drawing from pcg
	drawn keySet     // positions drawn so far, plus one
	batch []int      // positions of the elements drawn
	runOf []int32    // runOf[j]: the run batch[j] was drawn in
	pass  accum      // what the sampled elements hold outside heap objects
	// objects are the heap objects the sampled elements reached that were not counted before
	// the sample, in the order found; the walker's objects map their bases to their indexes.
	objects      []sampledObject
	generation   uint32 // the sample's number in the walk (see objectRef)
	elem, run    int32  // the element being walked (its index in batch) and its run
	walkingGuard bool   // the element being walked is a guard
	guard        []bool // guard[j]: batch[j] is a run's neighbour, walked but not counted
	guardPass    accum  // what guards hold outside heap objects, dropped
	// touched lists the objects each element reached, element j's from touchFrom[j] to
	// touchFrom[j+1].
	touched, touchFrom []int32
}

// sampledObject is a heap object met by a sample.
type sampledObject struct {
	bytes  int64 // its allocation slot, plus what is charged to it (a map's tables, say)
	parent int32 // the object whose contents reached it first, or -1 for an element itself
	unit   int32 // the shared object it belongs to, or -1 for an element's own (see total)
	// elems and runs count the distinct elements and runs that reached it; lastElem and
	// lastRun are the latest of each, firstRun the first run.
	elems, runs                 int32
	lastElem, firstRun, lastRun int32
	tiny                        bool // a 16-byte slot: perhaps a tiny-allocator block
	guarded                     bool // reached by a guard
}

// guardOnly is the unit of an object reached by guards only.
const guardOnly = -2

// newObject enters a heap object of slot bytes reached by the current element.
func (sc *sampleScratch) newObject(slot int64, parent int32, tiny bool) int32 {
	idx := int32(len(sc.objects))
	o := sampledObject{bytes: slot, parent: parent, elems: 1, runs: 1,
		lastElem: sc.elem, firstRun: sc.run, lastRun: sc.run, tiny: tiny}
	if sc.walkingGuard {
		o.elems, o.guarded = 0, true
	}
	sc.objects = append(sc.objects, o)
	sc.touched = append(sc.touched, idx)
	return idx
}

// reach marks the object of the walker's objects value ref, if this sample entered it, as
// reached by the current element, and returns its index or -1.
func (sc *sampleScratch) reach(ref uint64) int32 {
	if ref == 0 || uint32(ref>>32) != sc.generation {
		return -1
	}
	idx := int32(uint32(ref) - 1)
	o := &sc.objects[idx]
	if o.lastElem != sc.elem {
		o.lastElem = sc.elem
		if sc.walkingGuard {
			o.guarded = true
		} else {
			o.elems++
		}
		sc.touched = append(sc.touched, idx)
	}
	if o.lastRun != sc.run {
		o.runs, o.lastRun = o.runs+1, sc.run
	}
	return idx
}
