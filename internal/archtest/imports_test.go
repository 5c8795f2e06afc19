// Package archtest holds repository-wide checks that no single package owns.
package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/spillway/spillway"

// layers gives each top-level folder its place in README.md's import direction:
//
//	bench/  ->  examples/*  ->  executor  ->  shuffle  ->  collection, tungsten  ->  storage  ->  memory
//	                                                                                  \------>  estimator
//
// A package may reach (directly or through internal/...) only packages of a lower
// layer, or packages under its own top-level folder. memory and estimator are both
// leaves and may not reach each other.
var layers = map[string]int{
	"memory":     0,
	"estimator":  0,
	"storage":    1,
	"collection": 2,
	"tungsten":   2,
	"shuffle":    3,
	"executor":   4,
	"examples":   5,
	"bench":      6,
}

// scan returns, for every package directory of the module (relative to root), the
// module-internal packages its files import, tests included.
func scan(t *testing.T, root string) map[string][]string {
	t.Helper()
	imports := map[string]map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // a nested module is not part of this one
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		dir = filepath.ToSlash(dir)
		if imports[dir] == nil {
			imports[dir] = map[string]bool{}
		}
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			if rel, ok := strings.CutPrefix(p, module+"/"); ok {
				imports[dir][rel] = true
			}
		}
		return nil
	})
	require.NoError(t, err)
	out := map[string][]string{}
	for dir, set := range imports {
		out[dir] = []string{}
		for p := range set {
			out[dir] = append(out[dir], p)
		}
		sort.Strings(out[dir])
	}
	return out
}

func top(pkg string) string {
	first, _, _ := strings.Cut(pkg, "/")
	return first
}

// violations lists every "pkg reaches other" edge that breaks the direction.
func violations(imports map[string][]string) []string {
	var bad []string
	for pkg := range imports {
		layer, ok := layers[top(pkg)]
		if !ok {
			continue // internal/... and the root are checked through the packages that use them
		}
		seen := map[string]bool{}
		var walk func(p, via string)
		walk = func(p, via string) {
			for _, dep := range imports[p] {
				if seen[dep] {
					continue
				}
				seen[dep] = true
				path := via + " -> " + dep
				if top(dep) == "internal" {
					walk(dep, path)
					continue
				}
				if top(dep) == top(pkg) {
					walk(dep, path)
					continue
				}
				if depLayer, ok := layers[top(dep)]; !ok || depLayer >= layer {
					bad = append(bad, path)
				}
			}
		}
		walk(pkg, pkg)
	}
	sort.Strings(bad)
	return bad
}

func TestImportDirection(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	imports := scan(t, root)
	require.Contains(t, imports, "internal/archtest", "the scan must see this very package")
	require.Empty(t, violations(imports), "imports against README.md's direction")
}

// TestExamplesImportNoInternal keeps every example a program a user can copy: nothing under
// examples/ imports the module's internal packages, which no other module may import.
func TestExamplesImportNoInternal(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	for pkg, deps := range scan(t, root) {
		if top(pkg) != "examples" {
			continue
		}
		for _, dep := range deps {
			require.NotEqual(t, "internal", top(dep), "%s imports %s", pkg, dep)
		}
	}
}

// TestViolationsDetected proves the checker itself can fail.
func TestViolationsDetected(t *testing.T) {
	tests := []struct {
		name    string
		imports map[string][]string
		want    []string
	}{
		{"downward is fine", map[string][]string{"shuffle": {"collection", "memory"}, "collection": {"storage"}}, nil},
		{"upward", map[string][]string{"storage": {"collection"}}, []string{"storage -> collection"}},
		{"leaf to leaf", map[string][]string{"memory": {"estimator"}}, []string{"memory -> estimator"}},
		{"through internal", map[string][]string{"memory": {"internal/x"}, "internal/x": {"storage"}},
			[]string{"memory -> internal/x -> storage"}},
		{"own subpackage", map[string][]string{"storage": {"storage/codec"}, "storage/codec": {"memory"}}, nil},
		{"library to examples", map[string][]string{"shuffle": {"examples/pagerank"}}, []string{"shuffle -> examples/pagerank"}},
		{"shuffle to executor", map[string][]string{"shuffle": {"executor"}}, []string{"shuffle -> executor"}},
		{"examples to executor", map[string][]string{"examples/pagerank": {"executor", "shuffle"}}, nil},
		{"bench to examples", map[string][]string{"bench/workload": {"examples/pagerank/pagerank"}}, nil},
		{"examples to bench", map[string][]string{"examples/pagerank": {"bench/harness"}}, []string{"examples/pagerank -> bench/harness"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, violations(tt.imports))
		})
	}
}
