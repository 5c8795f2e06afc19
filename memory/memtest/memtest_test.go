package memtest

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSamplerSeesEveryCycle(t *testing.T) {
	const n = 8 << 20
	s := Start()
	held := make([]byte, n)
	held[n-1] = 1
	runtime.GC() // a cycle that finds held live
	runtime.KeepAlive(held)
	// The cycle is read on the runtime's cleanup goroutine, which may not have run yet on a
	// loaded machine: wait until it has read it (a minute is a safety net only), so that the next
	// cycle cannot overwrite the figure first. Whichever cleanup runs next reads this cycle's
	// figure, as nothing here allocates enough to start another.
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.peak >= n
	}, time.Minute, time.Millisecond, "the cycle that found the buffer live was sampled")
	held = nil
	runtime.GC() // and one that finds it gone
	p := s.Stop()
	t.Log(p)
	require.GreaterOrEqual(t, p.Peak, int64(n), "the cycle that found the buffer live was sampled")
	require.GreaterOrEqual(t, p.Cycles, uint64(2))
	require.Equal(t, p, s.Stop(), "Stop is idempotent")
	require.Less(t, LiveHeap(), p.Peak, "the buffer is collectable")
}

func TestBoundCheck(t *testing.T) {
	tests := []struct {
		name   string
		growth int64
		bound  Bound
		ok     bool
	}{
		{"within", 10 << 20, StrictBound(16 << 20), true},
		{"at the limit", 16<<20 + (16<<20)/10 + 2<<20, StrictBound(16 << 20), true},
		{"above", 16<<20 + (16<<20)/10 + 2<<20 + 1, StrictBound(16 << 20), false},
		{"no slack", 1, Bound{Budget: 0}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.bound.Check(Peak{Baseline: 100, Peak: 100 + tc.growth})
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "above the budget")
		})
	}
}

func TestMeasureAndRequire(t *testing.T) {
	const n = 4 << 20
	var sink []byte
	p := Measure(func() {
		sink = make([]byte, n)
		runtime.GC()
	})
	runtime.KeepAlive(sink)
	Require(t, p, Bound{Budget: n, Slack: 1 << 20})
	RequireFlat(t, p, p, 0)
}

// TestMain runs the package's tests through RunExact, which TestRunExact checks.
func TestMain(m *testing.M) { os.Exit(RunExact(m)) }

func TestRunExact(t *testing.T) {
	require.Contains(t, strings.Split(os.Getenv("GODEBUG"), ","), exactSetting,
		"the tests run again with every collection stopping the world")
}
