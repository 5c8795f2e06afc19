package main

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHelp(t *testing.T) {
	require.ErrorIs(t, run([]string{"-h"}), flag.ErrHelp)
}

// TestSmall joins 60,000 orders with 10,000 customers both ways: broadcast (the customers fit
// the threshold at 16 MiB) and shuffled (a threshold below them); run checks the rows against
// the Go map join.
func TestSmall(t *testing.T) {
	require.NoError(t, run([]string{"-orders", "60000", "-customers", "10000", "-cores", "2"}))
	require.NoError(t, run([]string{"-orders", "60000", "-customers", "10000", "-cores", "1", "-memory", "4MiB", "-broadcast", "64KiB"}))
}
