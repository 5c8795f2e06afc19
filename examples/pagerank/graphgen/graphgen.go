// Package graphgen generates directed graphs with power-law degree distributions, deterministic
// by seed, and reads edge lists, for Spillway's PageRank example and benchmarks.
//
// A generated graph is a sequence of Config.Edges edges; edge e's endpoints depend only on the
// seed and e, never on how the sequence is split, so a graph split over any number of map tasks
// (Split) is the same graph as the whole (All). Sources and destinations are drawn from Zipf
// distributions over the vertex ids (out- and in-degrees follow power laws, as in web and social
// graphs), each through its own permutation of the ids so the busiest sources are not the most
// linked-to destinations. Duplicate edges and self-loops occur, as in real edge lists; PageRank
// removes duplicates itself (Spark's example calls distinct).
package graphgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"strings"

	"github.com/spillway/spillway/examples/stream"
)

// Edge is a directed edge between two vertex ids.
type Edge struct {
	Src, Dst int64
}

// Defaults of Config.
const (
	DefaultVertices = 100_000
	DefaultEdges    = 1_000_000
	// DefaultSkew is the Zipf exponent s of both degree distributions.
	DefaultSkew = 1.2
	// DefaultOffset is the Zipf offset v: P(rank k) ∝ (v + k)^-s. A larger offset flattens the
	// head, so the busiest vertex has a modest share of the edges instead of a large fraction.
	DefaultOffset = 50
)

// Config describes a generated graph. Its zero value means the defaults.
type Config struct {
	// Vertices is the number of vertex ids, [0, Vertices). 0 means DefaultVertices.
	Vertices int64
	// Edges is the number of edges generated (duplicates included). 0 means DefaultEdges.
	Edges int64
	// Seed selects the graph.
	Seed uint64
	// Skew is the Zipf exponent s of the degree distributions; it must be > 1. 0 means
	// DefaultSkew.
	Skew float64
	// Offset is the Zipf offset v; it must be >= 1. 0 means DefaultOffset.
	Offset float64
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c Config) Validate() error {
	var errs []error
	if c.Vertices < 0 {
		errs = append(errs, fmt.Errorf("graphgen: Config.Vertices %d is negative", c.Vertices))
	}
	if c.Edges < 0 {
		errs = append(errs, fmt.Errorf("graphgen: Config.Edges %d is negative", c.Edges))
	}
	if c.Skew != 0 && !(c.Skew > 1) {
		errs = append(errs, fmt.Errorf("graphgen: Config.Skew %g must be > 1", c.Skew))
	}
	if c.Offset != 0 && !(c.Offset >= 1) {
		errs = append(errs, fmt.Errorf("graphgen: Config.Offset %g must be >= 1", c.Offset))
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with every zero field replaced by its default.
func (c Config) WithDefaults() Config {
	if c.Vertices == 0 {
		c.Vertices = DefaultVertices
	}
	if c.Edges == 0 {
		c.Edges = DefaultEdges
	}
	if c.Skew == 0 {
		c.Skew = DefaultSkew
	}
	if c.Offset == 0 {
		c.Offset = DefaultOffset
	}
	return c
}

// Generator draws the edges of one Config. It holds no mutable state and is safe for
// concurrent use.
type Generator struct {
	cfg            Config
	srcMul, srcAdd uint64
	dstMul, dstAdd uint64
}

// New returns the generator of cfg (zero fields take their defaults), or cfg's validation
// error.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	n := uint64(cfg.Vertices)
	r := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))
	g := &Generator{cfg: cfg}
	g.srcMul, g.srcAdd = permutation(r, n)
	g.dstMul, g.dstAdd = permutation(r, n)
	return g, nil
}

// Config returns the generator's configuration with defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// permutation returns a and b such that k -> (a*k + b) mod n is a permutation of [0, n):
// a is coprime to n.
func permutation(r *rand.Rand, n uint64) (a, b uint64) {
	if n == 1 {
		return 1, 0
	}
	for {
		a = r.Uint64N(n-1) + 1
		if gcd(a, n) == 1 {
			return a, r.Uint64N(n)
		}
	}
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// permute maps a rank to a vertex id; 128-bit arithmetic keeps a*k exact.
func permute(k, a, b, n uint64) int64 {
	return int64((mulmod(a, k, n) + b) % n)
}

func mulmod(a, k, n uint64) uint64 {
	if a < 1<<32 && k < 1<<32 {
		return a * k % n
	}
	// Russian-peasant multiplication stays within 64 bits because a, k < n <= 2^63.
	var r uint64
	a %= n
	for k > 0 {
		if k&1 == 1 {
			r = (r + a) % n
		}
		a = (a << 1) % n
		k >>= 1
	}
	return r
}

// Edges returns edges [from, to) of the graph in order. It panics unless 0 <= from <= to <=
// Config.Edges.
func (g *Generator) Edges(from, to int64) iter.Seq[Edge] {
	if from < 0 || from > to || to > g.cfg.Edges {
		panic(fmt.Sprintf("graphgen: edge range [%d, %d) outside [0, %d)", from, to, g.cfg.Edges))
	}
	n := uint64(g.cfg.Vertices)
	return stream.Range(g.cfg.Seed, from, to, func(r *rand.Rand) func() Edge {
		src := rand.NewZipf(r, g.cfg.Skew, g.cfg.Offset, n-1)
		dst := rand.NewZipf(r, g.cfg.Skew, g.cfg.Offset, n-1)
		return func() Edge {
			return Edge{Src: permute(src.Uint64(), g.srcMul, g.srcAdd, n), Dst: permute(dst.Uint64(), g.dstMul, g.dstAdd, n)}
		}
	})
}

// Split returns the edges of split i of n equal consecutive splits (the input partition of map
// task i). It panics unless 0 <= i < n.
func (g *Generator) Split(i, n int) iter.Seq[Edge] {
	return g.Edges(stream.SplitRange(g.cfg.Edges, i, n))
}

// All returns every edge of the graph, in order.
func (g *Generator) All() []Edge {
	out := make([]Edge, 0, g.cfg.Edges)
	for e := range g.Edges(0, g.cfg.Edges) {
		out = append(out, e)
	}
	return out
}

// EdgeList is a graph read from a file: its edges between vertex ids, and the name of each id.
type EdgeList struct {
	// Edges are the edges, in the file's order.
	Edges []Edge
	// Names holds the name of vertex id i at index i; ids are given in order of first appearance.
	Names []string
}

// ReadEdgeList parses an edge list: one edge per line as two vertex names separated by spaces
// or tabs ("src dst"; names are any strings without white space, URLs in Spark's example, which
// splits on whitespace too); blank lines and lines starting with '#' are skipped, and so is
// anything after the second name. Errors name the line.
func ReadEdgeList(r io.Reader) (*EdgeList, error) {
	list := &EdgeList{}
	ids := map[string]int64{}
	id := func(name string) int64 {
		v, ok := ids[name]
		if !ok {
			v = int64(len(list.Names))
			ids[name] = v
			list.Names = append(list.Names, name)
		}
		return v
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) < 2 {
			return nil, fmt.Errorf("graphgen: edge list line %d: want \"src dst\", got %q", line, text)
		}
		list.Edges = append(list.Edges, Edge{Src: id(fields[0]), Dst: id(fields[1])})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("graphgen: edge list line %d is longer than 1 MiB: %w", line+1, err)
		}
		return nil, fmt.Errorf("graphgen: reading edge list: %w", err)
	}
	return list, nil
}
