package engine_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// citedSection matches a documentation section a message points the user
// at: docs/expressions.md#expressions, docs/protocol.md#92-syntax.
var citedSection = regexp.MustCompile(`\b(docs/[a-z-]+\.md|README\.md)#([a-z0-9_-]+)`)

// TestCitedSectionsExist: every section a message of the non-test Go code
// cites is a heading of that file, so a renamed heading cannot leave
// messages pointing at nothing.
func TestCitedSectionsExist(t *testing.T) {
	root := ".."
	anchors := map[string]map[string]bool{}
	cited := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
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
				return true
			}
			for _, m := range citedSection.FindAllStringSubmatch(s, -1) {
				cited++
				doc := m[1]
				if anchors[doc] == nil {
					anchors[doc] = markdownAnchors(t, filepath.Join(root, doc))
				}
				assert.True(t, anchors[doc][m[2]], "%s: %s has no heading for #%s", fset.Position(lit.Pos()), doc, m[2])
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)
	assert.Positive(t, cited)
}
