package shuffle

import (
	"os"
	"testing"

	"github.com/spillway/spillway/memory/memtest"
)

// TestMain runs the tests with stop-the-world collections (memtest.RunExact), so that
// TestStrictShuffleHeapBound reads the live heap that was reachable.
func TestMain(m *testing.M) { os.Exit(memtest.RunExact(m)) }
