package main

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHelp(t *testing.T) {
	require.ErrorIs(t, run([]string{"-h"}), flag.ErrHelp)
}

func TestSmall(t *testing.T) {
	require.NoError(t, run([]string{"-records", "200000", "-memory", "4MiB"}))
}
