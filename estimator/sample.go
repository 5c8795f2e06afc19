package estimator

import (
	"math/rand/v2"
	"unsafe"
)

// Spark's SizeEstimator sampling constants: arrays longer than sampleThreshold are estimated
// from two passes of sampleSize distinct elements (ARRAY_SIZE_FOR_SAMPLING, ARRAY_SAMPLE_SIZE).
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

// sample estimates n elements of layout el from two passes of sampleSize distinct elements, as
// Spark's visitArray does: the passes share the visited set, so objects shared by many
// elements are counted in the first pass that reaches them, and the total is
// max(s1, s2) + min(s1, s2) × (n − 100) / 100. Spark divides (n − 100) / 100 in integers,
// dropping up to 99 elements; here the ratio is exact.
//
// Spark's rule is only used when the second pass reached something already walked: evidence
// that elements share objects, which the larger pass then counts once. Without that evidence the
// two passes are independent samples, and taking the smaller of two small samples is biased low
// when element sizes are heavy-tailed (in PageRank's join map it read 22% low at the median),
// so the total is extrapolated from both: (s1 + s2) × n / (elements in both passes).
//
// Unlike Spark, a pass draws runs of sampleRun consecutive positions rather than single ones.
// Consecutive elements' objects usually lie next to each other (substrings of one string, small
// strings packed by the tiny allocator, nodes allocated in a loop), and costing each run as
// one range measures what an element adds, where a lone element would be rounded up alone.
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
	w.depth++
	sc.pcg.Seed(sampleSeed1, sampleSeed2^uint64(n))
	sc.drawn.reset()
	var s [2]int64
	var counted [2]int
	shared := false
	for pass := range s {
		sc.batch = sc.batch[:0]
		for len(sc.batch) < sampleSize && sc.drawn.len() < space {
			start := sc.rng.IntN(space)
			for i := start; i < min(start+sampleRun, space) && len(sc.batch) < sampleSize; i++ {
				if sc.drawn.add(uint64(i)+1) && at(i) != nil {
					sc.batch = append(sc.batch, i)
				}
			}
		}
		before := w.revisits
		s[pass] = w.pass(sc, el, at)
		counted[pass] = len(sc.batch)
		shared = pass == 1 && w.revisits > before
	}
	w.depth--
	if !shared {
		if c := counted[0] + counted[1]; c > 0 {
			w.acc.extra += int64(float64(s[0]+s[1]) * float64(n) / float64(c))
		}
		return
	}
	lo, hi := min(s[0], s[1]), max(s[0], s[1])
	w.acc.extra += hi + int64(float64(lo)*float64(n-sampleSize)/sampleSize)
}

// sampleScratch is what a sample call needs besides the walker, kept by the walker for reuse.
// It holds positions and addresses as integers only, so it keeps nothing alive.
type sampleScratch struct {
	pcg   rand.PCG
	rng   *rand.Rand // drawing from pcg
	drawn keySet     // positions drawn so far, plus one
	batch []int      // positions of the current pass's elements
	pass  accum      // the objects the current pass found
}

// pass walks the elements of layout el at the positions of sc.batch and everything they reach
// that is not yet seen, returning their cost on their own.
func (w *walker) pass(sc *sampleScratch, el *layout, at func(i int) unsafe.Pointer) int64 {
	saved := w.acc
	sc.pass = accum{objs: sc.pass.objs[:0]}
	w.acc = &sc.pass
	mark := len(w.stack)
	for _, i := range sc.batch {
		w.inline(at(i), el)
	}
	w.drain(mark)
	s := sc.pass.cost()
	w.acc = saved
	return s
}
