package engine_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// internalID matches the ids of the team's own notes (threats TH-nn,
// faults Fnn, "protocol 6.6"), which no user can look up. Messages cite
// docs/security.md or docs/protocol.md instead (whose anchors are lower
// case), or nothing.
var internalID = regexp.MustCompile(`\bTH-\d+|\bprotocol \d+|\(F\d+\)|\bF\d+[,;)]|security\.md [A-Z]`)

// TestMessagesCiteNoInternalIDs scans every string literal of the
// non-test Go code (errors, log lines, pages, CLI output) and every golden
// file: what a user reads must resolve inside the repository. Comments
// may keep the ids.
func TestMessagesCiteNoInternalIDs(t *testing.T) {
	root := ".."
	var goFiles, goldens int
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); strings.HasPrefix(name, ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go"):
			goFiles++
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			require.NoError(t, err)
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					s = lit.Value
				}
				assert.False(t, internalID.MatchString(s), "%s: message cites an internal id: %s", fset.Position(lit.Pos()), s)
				return true
			})
		case strings.HasSuffix(path, ".golden") || strings.HasSuffix(path, ".html"):
			goldens++
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.False(t, internalID.Match(data), "%s cites an internal id: %s", path, internalID.Find(data))
		}
		return nil
	})
	require.NoError(t, err)
	assert.Greater(t, goFiles, 50)
	assert.Greater(t, goldens, 20)
}
