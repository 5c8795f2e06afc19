package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spillway/spillway/examples/pagerank/pagerank"
	"github.com/spillway/spillway/executor"
)

func TestHelp(t *testing.T) {
	require.ErrorIs(t, run([]string{"-h"}, os.Stdout), flag.ErrHelp)
}

// TestQuietWhenNotTerminal runs on an edge list with URL names, printing to a file: the output
// names the pages, explains its figures, and has no progress line.
func TestQuietWhenNotTerminal(t *testing.T) {
	dir := t.TempDir()
	edges := filepath.Join(dir, "edges.txt")
	require.NoError(t, os.WriteFile(edges, []byte("# Spark's example data\nurl_1 url_4\nurl_2 url_1\nurl_3 url_1\nurl_4 url_1\n"), 0o600))
	out, err := os.Create(filepath.Join(dir, "out.txt"))
	require.NoError(t, err)
	defer out.Close()
	require.False(t, isTerminal(out))
	require.NoError(t, run([]string{"-edges", edges, "-memory", "unlimited"}, out))
	text, err := os.ReadFile(out.Name())
	require.NoError(t, err)
	require.NotContains(t, string(text), "\r")
	for _, want := range []string{"2 pages ranked", "page url_1", "page url_4", "links partitions computed", "check: every rank equals"} {
		require.Contains(t, string(text), want)
	}
}

func TestProgressLine(t *testing.T) {
	if null, err := os.Open(os.DevNull); err == nil {
		defer null.Close()
		require.True(t, isTerminal(null), "%s is a character device", os.DevNull)
	}
	ex, err := executor.New(executor.Config{Budget: executor.MinBudget, Dirs: []string{t.TempDir()}})
	require.NoError(t, err)
	defer ex.Close()
	var b bytes.Buffer
	p := &progress{out: &b, ex: ex, iterations: 10}
	p.show(pagerank.Event{Phase: pagerank.PhaseContribute, Iteration: 3, Partition: 1, Records: 65536})
	require.Equal(t, "\r\033[Kiteration 3/10: writing contributions (task 1: 65,536 records); spills forced so far 0 (0 B)", b.String())
	p.clear()
	require.True(t, strings.HasSuffix(b.String(), "\r\033[K"))
}
