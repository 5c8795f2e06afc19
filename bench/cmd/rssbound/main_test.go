package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary be the child that run starts (it re-executes itself).
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := run(os.Args[1:], os.Stdout); err != nil {
			os.Stderr.WriteString("rssbound child: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The parent reads the child's peak RSS and Go memory limit. The margin is generous: the
// measured figures are the command's job, not a test's.
func TestRun(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run([]string{"-budget", "4MiB", "-records", "100000", "-margin", "1GiB"}, &out))
	require.Contains(t, out.String(), "aggregated 100000 records")
	require.Contains(t, out.String(), "Go memory limit 37 MiB (set: true)")
	require.Contains(t, out.String(), "peak RSS")
	require.Contains(t, out.String(), "ok: RSS within the Go memory limit plus the margin")
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"-budget", "x"}, {"-records", "0"}, {"-margin", "-1"}} {
		_, err := parseFlags(args)
		require.Error(t, err, "%v", args)
	}
}
