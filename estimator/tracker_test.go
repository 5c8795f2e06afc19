package estimator_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/estimator"
)

// recorder is a measure function whose result the test sets, recording when it was called.
type recorder struct {
	size    int64
	updates *int64 // the tracked collection's update count, to log when measure ran
	calls   []int64
}

func (r *recorder) measure() int64 {
	r.calls = append(r.calls, *r.updates)
	return r.size
}

// ST-02: sampling schedule [derived from core/src/main/scala/org/apache/spark/util/collection/
// SizeTracker.scala] (SizeTracker.resetSamples/afterUpdate/takeSample).
func TestTracker_ST02_SamplingSchedule(t *testing.T) {
	var updates int64 = 1
	r := &recorder{size: 100, updates: &updates}
	tr := estimator.NewTracker(r.measure)

	require.Equal(t, []int64{1}, r.calls, "construction takes one sample at numUpdates 1")
	require.EqualValues(t, 1, tr.NumUpdates())
	require.EqualValues(t, 2, tr.NextSampleNum())
	require.EqualValues(t, 100, tr.EstimateSize())

	for range 206 {
		updates++
		tr.AfterUpdate()
	}
	// ceil(n × 1.1) in IEEE double arithmetic, as Spark computes it.
	want := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 21, 24, 27, 30, 33, 37,
		41, 46, 51, 57, 63, 70, 77, 85, 94, 104, 115, 127, 140, 154, 170, 188, 207}
	require.Equal(t, want, r.calls)
	require.EqualValues(t, 207, tr.NumUpdates())
	require.EqualValues(t, 228, tr.NextSampleNum())
}

// ST-02: extrapolation between samples, clamping at zero growth, and reset (SizeTracker.scala).
func TestTracker_ST02_ExtrapolationAndReset(t *testing.T) {
	var updates int64 = 1
	r := &recorder{size: 1000, updates: &updates}
	tr := estimator.NewTracker(r.measure)

	update := func(sizeAfter int64) {
		updates++
		r.size = sizeAfter
		tr.AfterUpdate()
	}
	// Updates 2..11 are all sampled: the estimate is the measurement.
	for i := int64(2); i <= 11; i++ {
		update(1000 + 10*(i-1))
		require.EqualValues(t, r.size, tr.EstimateSize(), "update %d", i)
	}
	// The last two samples (updates 10 and 11) grew by 10 bytes per update; update 12 is not
	// sampled, so the estimate extrapolates 10 bytes regardless of the true size.
	update(5000)
	require.Len(t, r.calls, 11)
	require.EqualValues(t, 1100+10, tr.EstimateSize())

	// Update 13 is sampled: 5000 at 13 vs 1100 at 11 → 1950 bytes per update.
	update(5000)
	require.EqualValues(t, 5000, tr.EstimateSize())
	update(5000) // 14, not sampled
	require.EqualValues(t, 5000+1950, tr.EstimateSize())

	// A shrinking collection: update 15 sampled with a smaller size; bytesPerUpdate clamps to 0,
	// so the estimate never decreases between samples.
	update(3000)
	require.EqualValues(t, 3000, tr.EstimateSize())
	update(2000) // 16, not sampled
	require.EqualValues(t, 3000, tr.EstimateSize())

	// Reset: a fresh measurement, one sample, numUpdates back to 1.
	r.size = 64
	tr.ResetSamples()
	require.EqualValues(t, 64, tr.EstimateSize())
	require.EqualValues(t, 1, tr.NumUpdates())
	require.EqualValues(t, 2, tr.NextSampleNum())
	update(128) // sampled at 2: growth 64 per update
	update(128) // sampled at 3: growth 0
	require.EqualValues(t, 128, tr.EstimateSize())
}

func TestTracker_NilMeasurePanics(t *testing.T) {
	require.PanicsWithValue(t, "estimator: NewTracker with a nil measure function", func() {
		estimator.NewTracker(nil)
	})
}
