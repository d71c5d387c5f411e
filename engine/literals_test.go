package engine_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// walkRepo calls fn for every file under the repository root ("..")
// outside dot-directories (.git, .ci, editors' folders).
func walkRepo(t *testing.T, fn func(path string)) {
	t.Helper()
	root := ".."
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
		fn(path)
		return nil
	})
	require.NoError(t, err)
}

// eachMessage calls fn with every string literal of the repository's
// non-test Go code (errors, log lines, pages, CLI output: what a user
// reads) and its position, and returns how many Go files it read.
func eachMessage(t *testing.T, fn func(pos token.Position, s string)) (goFiles int) {
	t.Helper()
	walkRepo(t, func(path string) {
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return
		}
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
			fn(fset.Position(lit.Pos()), s)
			return true
		})
	})
	return goFiles
}
