package archtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeShowsQuickstart keeps README.md's usage example compiling: the example is
// examples/quickstart/main.go, built and vetted with everything else, and the README must show
// it verbatim.
func TestReadmeShowsQuickstart(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	src, err := os.ReadFile(filepath.Join(root, "examples", "quickstart", "main.go"))
	require.NoError(t, err)
	require.True(t, strings.Contains(string(readme), "```go\n"+string(src)+"```"),
		"README.md must show examples/quickstart/main.go verbatim in a go code block")
}
