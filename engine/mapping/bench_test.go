package mapping

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkEvalPath reads one field of a ~6 KB issue: one gjson lookup,
// nothing else decoded.
func BenchmarkEvalPath(b *testing.B) {
	p := mustCompile(b, `issue.user.login`)
	env := testEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		out, err := p.Eval(env)
		if err != nil || out != "octocat" {
			b.Fatal(out, err)
		}
	}
}

// BenchmarkEvalExpr is a realistic title-like expression.
func BenchmarkEvalExpr(b *testing.B) {
	p := mustCompile(b, `"#" + groups.number + " " + truncate(issue.title, 30) + " · " + join(map(issue.labels, .name), ", ")`)
	env := testEnv(b)
	out, err := p.Eval(env)
	require.NoError(b, err)
	require.Equal(b, "#1347 Found a bug in the link previ… · bug, good first issue, help wanted", out)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Eval(env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDocGet is the raw gjson read with conversion.
func BenchmarkDocGet(b *testing.B) {
	d := loadIssue(b)
	b.ReportAllocs()
	for b.Loop() {
		if d.Get("user.login") != "octocat" {
			b.Fatal("wrong value")
		}
	}
}

// BenchmarkCompile is the load-time cost of one expression.
func BenchmarkCompile(b *testing.B) {
	c := newTestCompiler()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Compile(`join(map(issue.labels, .name), ", ")`, testPos, testPath); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewDoc is the per-response check of a ~6 KB body: nesting
// depth, JSON validity and the copy into the Doc.
func BenchmarkNewDoc(b *testing.B) {
	body, err := os.ReadFile("testdata/issue.json")
	require.NoError(b, err)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewDoc(body); err != nil {
			b.Fatal(err)
		}
	}
}
