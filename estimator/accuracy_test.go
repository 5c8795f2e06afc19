package estimator_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/estimator"
	"github.com/spillway/spillway/estimator/estimatortest"
)

// TestAccuracy compares Estimate with the real growth of the live heap for every shape of
// estimatortest.Shapes: within ±5%, or ±10% for shapes the estimator samples. It holds under
// -race too (checked with Go 1.26).
func TestAccuracy(t *testing.T) {
	t.Logf("%-40s %12s %12s %8s", "shape", "heap growth", "Estimate", "error")
	for _, sh := range estimatortest.Shapes() {
		v, real := estimatortest.HeapGrowth(sh.Build)
		est := estimator.Estimate(v)
		errPct := 100 * float64(est-real) / float64(real)
		t.Logf("%-40s %12d %12d %+7.2f%%", sh.Name, real, est, errPct)
		bound := 5.0
		if sh.Sampled {
			bound = 10
		}
		require.LessOrEqual(t, math.Abs(errPct), bound, fmt.Sprintf("%s: heap grew %d, estimate %d", sh.Name, real, est))
	}
}
