package estimator

import "math"

// sampleGrowthRate is Spark's SizeTracker.SAMPLE_GROWTH_RATE: the update count at which the
// next sample is taken grows by this factor after every sample.
const sampleGrowthRate = 1.1

// sample is Spark's SizeTracker.Sample: a measured size at a given update count.
type sample struct {
	size       int64
	numUpdates int64
}

// Tracker mirrors Spark's SizeTracker (core/src/main/scala/org/apache/spark/util/collection/
// SizeTracker.scala): it measures a growing collection at update counts that grow by 1.1× and
// extrapolates between measurements from the bytes per update seen between the last two.
//
// The collection owning a Tracker calls AfterUpdate after each insert or update and ResetSamples
// after a dramatic change (its table grew, its backing slice was reallocated). EstimateSize is
// then cheap enough to call after every update.
//
// Spark's SizeTracker is a trait mixed into the collection and measures the collection with
// SizeEstimator; here the collection passes a measure function instead, typically a closure
// calling (*Estimator).Estimate on the collection or computing the size from its own counters.
//
// A Tracker is not safe for concurrent use, like Spark's; the collection's own synchronisation
// covers it.
type Tracker struct {
	measure func() int64
	// prev and last are the two most recent samples (Spark keeps them in a queue of length 2);
	// haveLast and havePrev say whether they were taken since the last reset.
	prev, last         sample
	havePrev, haveLast bool
	bytesPerUpdate     float64
	numUpdates         int64
	nextSampleNum      int64
}

// NewTracker returns a Tracker measuring with measure, which must return the full current size
// in bytes of the tracked collection. measure is called once here (Spark's constructor calls
// resetSamples) and again at every sample.
//
// NewTracker panics if measure is nil.
func NewTracker(measure func() int64) *Tracker {
	if measure == nil {
		panic("estimator: NewTracker with a nil measure function")
	}
	t := &Tracker{measure: measure}
	t.ResetSamples()
	return t
}

// ResetSamples mirrors SizeTracker.resetSamples: it forgets all samples and takes a fresh one,
// counting the current state as update 1. Call it after a change the extrapolation cannot
// predict, such as a hash table growing or a slice being reallocated.
func (t *Tracker) ResetSamples() {
	t.numUpdates = 1
	t.nextSampleNum = 1
	t.haveLast = false
	t.takeSample()
}

// AfterUpdate mirrors SizeTracker.afterUpdate: it counts one update and takes a sample when the
// count reaches the next sample number.
func (t *Tracker) AfterUpdate() {
	t.numUpdates++
	if t.numUpdates == t.nextSampleNum {
		t.takeSample()
	}
}

// takeSample mirrors SizeTracker.takeSample.
func (t *Tracker) takeSample() {
	t.prev, t.havePrev = t.last, t.haveLast
	t.last, t.haveLast = sample{size: t.measure(), numUpdates: t.numUpdates}, true
	t.bytesPerUpdate = 0
	if t.havePrev {
		delta := float64(t.last.size-t.prev.size) / float64(t.last.numUpdates-t.prev.numUpdates)
		t.bytesPerUpdate = math.Max(0, delta)
	}
	// Spark computes math.ceil(numUpdates * 1.1).toLong in double arithmetic; the same IEEE
	// operations reproduce its schedule exactly (1, 2, ..., 11, 13, 15, 17, 19, 21, 24, 27, ...).
	t.nextSampleNum = int64(math.Ceil(float64(t.numUpdates) * sampleGrowthRate))
}

// EstimateSize mirrors SizeTracker.estimateSize: the last sampled size plus the bytes per update
// times the updates since that sample, truncated toward zero.
func (t *Tracker) EstimateSize() int64 {
	extrapolated := t.bytesPerUpdate * float64(t.numUpdates-t.last.numUpdates)
	return int64(float64(t.last.size) + extrapolated)
}

// NumUpdates returns the update count since the last reset (1 right after a reset), as Spark's
// SizeTracker.numUpdates.
func (t *Tracker) NumUpdates() int64 { return t.numUpdates }

// NextSampleNum returns the update count at which AfterUpdate takes the next sample.
func (t *Tracker) NextSampleNum() int64 { return t.nextSampleNum }
