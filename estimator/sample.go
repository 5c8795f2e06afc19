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
	rng := rand.New(rand.NewPCG(sampleSeed1, sampleSeed2^uint64(n)))
	// The walker's scratch space serves the outermost sample; a container sampled while walking
	// another's sampled elements gets its own.
	var drawn map[int]struct{}
	var batch []unsafe.Pointer
	if w.sampling {
		drawn, batch = make(map[int]struct{}, 2*sampleSize), make([]unsafe.Pointer, 0, sampleSize)
	} else {
		w.sampling = true
		drawn, batch = w.drawn, w.batch[:0]
		clear(drawn)
		defer func() { w.sampling, w.batch = false, batch[:0] }()
	}
	var s [2]int64
	var counted [2]int
	shared := false
	for pass := range s {
		batch = batch[:0]
		for len(batch) < sampleSize && len(drawn) < space {
			start := rng.IntN(space)
			for i := start; i < min(start+sampleRun, space) && len(batch) < sampleSize; i++ {
				if _, dup := drawn[i]; dup {
					continue
				}
				drawn[i] = struct{}{}
				if p := at(i); p != nil {
					batch = append(batch, p)
				}
			}
		}
		before := w.revisits
		s[pass] = w.pass(batch, el)
		counted[pass] = len(batch)
		shared = pass == 1 && w.revisits > before
	}
	if !shared {
		if c := counted[0] + counted[1]; c > 0 {
			w.acc.extra += int64(float64(s[0]+s[1]) * float64(n) / float64(c))
		}
		return
	}
	lo, hi := min(s[0], s[1]), max(s[0], s[1])
	w.acc.extra += hi + int64(float64(lo)*float64(n-sampleSize)/sampleSize)
}

// pass walks the values of layout el at batch and everything they reach that is not yet seen,
// returning their cost on their own.
func (w *walker) pass(batch []unsafe.Pointer, el *layout) int64 {
	saved := w.acc
	w.acc = &accum{}
	mark := len(w.stack)
	for _, p := range batch {
		w.inline(p, el)
	}
	w.drain(mark)
	s := w.acc.cost()
	w.acc = saved
	return s
}
