package estimator_test

import (
	"fmt"

	"github.com/spillway/spillway/estimator"
)

func ExampleEstimate() {
	// 1000 int64s: one 8000-byte backing array, rounded to the 8192-byte size class.
	fmt.Println(estimator.Estimate(make([]int64, 1000)))
	// A pointer counts the object it points to: 16 bytes for two words.
	fmt.Println(estimator.Estimate(&struct{ a, b int64 }{}))
	// Output:
	// 8192
	// 16
}

func ExampleTracker() {
	var e estimator.Estimator
	buf := &struct{ records []string }{}
	tr := estimator.NewTracker(func() int64 { return e.Estimate(buf) })
	for i := range 100 {
		if len(buf.records) == cap(buf.records) {
			buf.records = append(buf.records, fmt.Sprint("record-", i))
			tr.ResetSamples() // the backing array was reallocated
			continue
		}
		buf.records = append(buf.records, fmt.Sprint("record-", i))
		tr.AfterUpdate()
	}
	// SizeTrackerSuite's contract after 32 updates: within −20% and +40% of a full estimate.
	est, full := float64(tr.EstimateSize()), float64(e.Estimate(buf))
	fmt.Println(est > 0.8*full && est < 1.4*full)
	// Output: true
}
