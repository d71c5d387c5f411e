package mapping

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
)

// testPos stands for an attribute's `expr:` value in a YAML file.
var testPos = config.Pos{File: "config.yaml", Line: 31, Col: 15}

const testPath = "providers.github.patterns.issue.attributes.state.expr"

// loadIssue reads the GitHub-issue-shaped fixture.
func loadIssue(tb testing.TB) Doc {
	tb.Helper()
	body, err := os.ReadFile("testdata/issue.json")
	require.NoError(tb, err)
	d, err := NewDoc(body)
	require.NoError(tb, err)
	return d
}

// newTestCompiler knows the response "issue", the optional response "opt"
// (absent from testEnv) and the groups of a GitHub issue URL.
func newTestCompiler() *Compiler {
	return NewCompiler([]string{"issue", "opt"}, []string{"owner", "repo", "number"})
}

func testEnv(tb testing.TB) *Env {
	tb.Helper()
	return &Env{
		URI:    "https://github.com/octo-org/hello-world/issues/1347",
		Groups: map[string]string{"owner": "octo-org", "repo": "hello-world", "number": "1347"},
		Docs:   map[string]Doc{"issue": loadIssue(tb)},
	}
}

// mustCompile compiles src with the test compiler.
func mustCompile(tb testing.TB, src string) *Program {
	tb.Helper()
	p, err := newTestCompiler().Compile(src, testPos, testPath)
	require.NoError(tb, err, "compile %q", src)
	return p
}
