package heapbound

import (
	"os"
	"testing"

	"github.com/spillway/spillway/memory/memtest"
)

// TestMain runs the scenarios with stop-the-world collections (memtest.RunExact): the live heap
// memtest reads is then what was reachable, with nothing allocated during a concurrent mark
// counted in.
func TestMain(m *testing.M) { os.Exit(memtest.RunExact(m)) }
