package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/bench/harness"
)

func TestRunWritesCSVAndTimelines(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a safety net only
	defer cancel()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err := run(ctx, []string{"-records", "5000", "-budget", "256KiB", "-workloads", "sort", "-strategies", "default;nocompress,victim=largest",
		"-out", dir, "-format", "csv"}, &out, &errb)
	require.NoError(t, err, errb.String())
	rows, err := harness.ReadCSV(&out)
	require.NoError(t, err)
	require.Len(t, rows, 4) // two baselines, two strategies
	require.Equal(t, "baseline: slices.SortFunc", rows[0].Strategy)
	require.InDelta(t, 1, rows[0].TimeRatio, 1e-12)
	require.Equal(t, "victim=largest,nocompress", rows[3].Strategy)
	for _, r := range rows {
		require.Empty(t, r.Err)
		require.Equal(t, int64(5000), r.Records)
		require.FileExists(t, r.Timeline)
		require.Equal(t, dir, filepath.Dir(r.Timeline))
	}
	require.Contains(t, errb.String(), "[4/4] sort victim=largest,nocompress")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 4)
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-budget", "lots"}, `-budget "lots"`},
		{[]string{"-records", "0"}, "-records 0: must be positive"},
		{[]string{"-iterations", "0"}, "-iterations 0: must be positive"},
		{[]string{"-workloads", "sort,pagerank", "-budget", "1MiB"}, "-budget 1.0 MiB: workload pagerank needs at least 4.0 MiB"},
		{[]string{"-strategies", "unroll=lazy"}, `unknown unroll strategy "lazy"`},
		{[]string{"-strategies", "level=MEMORY_SOMETIMES"}, "MEMORY_SOMETIMES"},
		{[]string{"-format", "xml"}, `-format "xml"`},
		{[]string{"-workloads", "nope"}, `unknown workload "nope"`},
		{[]string{"-strategies", "victim=lru"}, `unknown victim order "lru"`},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var errb bytes.Buffer
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &errb)
		require.ErrorContains(t, err, tc.want, tc.args)
	}
}

// -h and -list succeed (exit status 0) and say what the program does; errors exit 1.
func TestHelpAndList(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"-list"}, &out, &errb)
	require.ErrorIs(t, err, errListed)
	require.Zero(t, exitCode(err, &errb))
	require.Contains(t, out.String(), "agg-sort")
	require.Empty(t, errb.String())

	out.Reset()
	err = run(context.Background(), []string{"-h"}, &out, &errb)
	require.ErrorIs(t, err, flag.ErrHelp)
	require.Zero(t, exitCode(err, &errb))
	require.Contains(t, errb.String(), "spillbench runs Spillway's benchmark workloads")
	require.Contains(t, errb.String(), "-workloads string")
	require.Empty(t, out.String())

	errb.Reset()
	require.Equal(t, 1, exitCode(errors.New("boom"), &errb))
	require.Equal(t, "spillbench: boom\n", errb.String())
}
