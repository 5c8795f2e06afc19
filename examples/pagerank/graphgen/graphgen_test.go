package graphgen

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Vertices: -1}, "Vertices -1"},
		{Config{Edges: -2}, "Edges -2"},
		{Config{Skew: 1}, "Skew 1 must be > 1"},
		{Config{Offset: 0.5}, "Offset 0.5"},
		{Config{Vertices: -1, Edges: -2, Skew: 1, Offset: 0.5}, "Vertices -1"}, // every field is reported:
		{Config{Vertices: -1, Edges: -2, Skew: 1, Offset: 0.5}, "Edges -2"},
		{Config{Vertices: -1, Edges: -2, Skew: 1, Offset: 0.5}, "Skew 1 must be > 1"},
		{Config{Vertices: -1, Edges: -2, Skew: 1, Offset: 0.5}, "Offset 0.5"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.cfg), func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
			_, err = New(tt.cfg)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// TestSplitsMakeTheSameGraph: the graph does not depend on how it is split, and the seed
// selects it.
func TestSplitsMakeTheSameGraph(t *testing.T) {
	g, err := New(Config{Vertices: 1000, Edges: 20_000, Seed: 7})
	require.NoError(t, err)
	all := g.All()
	require.Len(t, all, 20_000)
	for _, e := range all {
		require.True(t, e.Src >= 0 && e.Src < 1000 && e.Dst >= 0 && e.Dst < 1000, "edge %v", e)
	}
	for _, n := range []int{1, 2, 3, 7, 64} {
		var joined []Edge
		for i := range n {
			for e := range g.Split(i, n) {
				joined = append(joined, e)
			}
		}
		require.Equal(t, all, joined, "%d splits", n)
	}
	again, err := New(Config{Vertices: 1000, Edges: 20_000, Seed: 7})
	require.NoError(t, err)
	require.Equal(t, all, again.All())
	other, err := New(Config{Vertices: 1000, Edges: 20_000, Seed: 8})
	require.NoError(t, err)
	require.NotEqual(t, all, other.All())
}

// TestPowerLaw: degrees are skewed (a few hubs, many small degrees), and the busiest source
// is not the busiest destination.
func TestPowerLaw(t *testing.T) {
	g, err := New(Config{Vertices: 10_000, Edges: 200_000, Seed: 1})
	require.NoError(t, err)
	out, in := map[int64]int{}, map[int64]int{}
	for _, e := range g.All() {
		out[e.Src]++
		in[e.Dst]++
	}
	top := func(m map[int64]int) (int64, int, int) {
		var best int64
		degrees := make([]int, 0, len(m))
		for v, d := range m {
			degrees = append(degrees, d)
			if d > m[best] || (d == m[best] && v < best) {
				best = v
			}
		}
		slices.Sort(degrees)
		return best, m[best], degrees[len(degrees)/2]
	}
	hubOut, maxOut, medianOut := top(out)
	hubIn, maxIn, medianIn := top(in)
	t.Logf("out: max %d median %d over %d sources; in: max %d median %d over %d", maxOut, medianOut, len(out), maxIn, medianIn, len(in))
	require.Greater(t, maxOut, 50*medianOut)
	require.Greater(t, maxIn, 50*medianIn)
	require.Less(t, maxOut, 200_000/20, "the offset keeps the largest hub a modest share")
	require.NotEqual(t, hubOut, hubIn)
}

func TestEdgesRange(t *testing.T) {
	g, err := New(Config{Vertices: 50, Edges: 10_000, Seed: 3})
	require.NoError(t, err)
	all := g.All()
	for _, r := range [][2]int64{{0, 0}, {0, 1}, {4095, 4097}, {5000, 10_000}, {9999, 10_000}} {
		got := append([]Edge{}, slices.Collect(g.Edges(r[0], r[1]))...)
		require.Equal(t, all[r[0]:r[1]], got, "range %v", r)
	}
	require.Panics(t, func() { g.Edges(5, 4) })
	require.Panics(t, func() { g.Edges(0, 10_001) })
	require.Panics(t, func() { g.Split(2, 2) })
	// Stopping early stops the generator.
	var n int
	for range g.Edges(0, 10_000) {
		n++
		if n == 3 {
			break
		}
	}
	require.Equal(t, 3, n)
}

func TestSingleVertex(t *testing.T) {
	g, err := New(Config{Vertices: 1, Edges: 10})
	require.NoError(t, err)
	for _, e := range g.All() {
		require.Equal(t, Edge{}, e)
	}
}

func TestMulmod(t *testing.T) {
	n := uint64(1<<62 + 57)
	a, k := n-3, n-5
	// (n-3)(n-5) ≡ 15 (mod n)
	require.Equal(t, uint64(15), mulmod(a, k, n))
	require.Equal(t, uint64(6), mulmod(2, 3, 7))
}

func TestReadEdgeList(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Edge
		names    []string
		err      string
	}{
		{"empty", "", nil, nil, ""},
		{"comments and blanks", "# a graph\n\n1 2\n  # indented comment\n2\t3\n", []Edge{{0, 1}, {1, 2}}, []string{"1", "2", "3"}, ""},
		{"extra fields and spaces", "  10   20  weight=3\r\n-1 10\n", []Edge{{0, 1}, {2, 0}}, []string{"10", "20", "-1"}, ""},
		{"URLs, as Spark's example reads", "http://a/ http://b/\nhttp://b/ http://a/\n", []Edge{{0, 1}, {1, 0}}, []string{"http://a/", "http://b/"}, ""},
		{"one field", "1 2\n3\n", nil, nil, `line 2: want "src dst", got "3"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadEdgeList(strings.NewReader(tt.in))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got.Edges)
			require.Equal(t, tt.names, got.Names)
		})
	}
	_, err := ReadEdgeList(strings.NewReader("1 2\n" + strings.Repeat("9", 2<<20)))
	require.ErrorContains(t, err, "line 2 is longer than 1 MiB")
}

// FuzzReadEdgeList: the parser never panics, and what it accepts prints back (by name) to a
// list it parses the same way.
func FuzzReadEdgeList(f *testing.F) {
	f.Add([]byte("1 2\n# c\n3\t4\n"))
	f.Add([]byte("http://a/ http://b/"))
	f.Add([]byte("1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := ReadEdgeList(bytes.NewReader(data))
		if err != nil {
			return
		}
		var b strings.Builder
		for _, e := range list.Edges {
			fmt.Fprintf(&b, "%s %s\n", list.Names[e.Src], list.Names[e.Dst])
		}
		again, err := ReadEdgeList(strings.NewReader(b.String()))
		require.NoError(t, err)
		require.Equal(t, list.Edges, again.Edges)
	})
}
