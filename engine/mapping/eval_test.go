package mapping

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
)

// doubling builds `let s1 = "x" + "x"; let s2 = s1 + s1; ... sN`: a string
// of 2^n bytes from a few dozen nodes.
func doubling(n int) string {
	var b strings.Builder
	b.WriteString(`let s1 = "x" + "x"; `)
	for i := 2; i <= n; i++ {
		fmt.Fprintf(&b, "let s%d = s%d + s%d; ", i, i-1, i-1)
	}
	fmt.Fprintf(&b, "s%d", n)
	return b.String()
}

// TestEvalBudget shows that expressions building huge values stop with an
// error instead of exhausting memory (TH-34).
func TestEvalBudget(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	tests := []struct {
		name string
		src  string
	}{
		{name: "string doubled 40 times (1 TiB)", src: doubling(40)},
		{name: "string doubled through any-typed plus", src: `let a = issue.body; let b = a + a + a + a; let c = b + b + b + b; let d = c + c + c + c; let e = d + d + d + d; let f = e + e + e + e; let g = f + f + f + f; g + g + g + g`},
		{name: "nested replace", src: `replace(replace(issue.body, "", issue.body), "", issue.body)`},
		{name: "join of a huge list", src: `let b = issue.body; join(map(1..90000, b), "")`},
		{name: "decoding in a loop", src: `map(1..50000, issue)`},
		{name: "split in a loop", src: `map(1..50000, split(issue.body, ""))`},
		{name: "upper in a loop", src: `let b = issue.body; map(1..50000, upper(b))`},
		{name: "VM: huge range", src: `map(1..1000000, #)`},
		{name: "VM: list literals in a loop", src: `map(1..60000, [#, #, #])`},
		{name: "VM: nested ranges", src: `map(1..1000, map(1..1000, #))`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustCompile(t, tc.src)
			out, err := p.Eval(env)
			require.Error(t, err)
			assert.Nil(t, out)
			require.ErrorIs(t, err, ErrBudget)
			var ee *EvalError
			require.ErrorAs(t, err, &ee)
			assert.Contains(t, ee.Msg, "memory budget exceeded")
		})
	}
}

// TestEvalWithinBudget checks that the budgets leave room for real work.
func TestEvalWithinBudget(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, `len(join(map(1..5000, string(#) + issue.title), "\n"))`)
	out, err := p.Eval(testEnv(t))
	require.NoError(t, err)
	assert.Greater(t, out, 200_000)
}

// TestEvalPanicRecovered shows that a panic inside a helper or the VM
// becomes an error and the caller keeps running (TH-34).
func TestEvalPanicRecovered(t *testing.T) {
	t.Parallel()
	c := newTestCompiler()
	c.opts = append(c.opts,
		expr.Function("boom", func(...any) (any, error) { panic("kaboom") }),
		expr.Function("boomErr", func(...any) (any, error) { panic(ErrBudget) }),
		expr.Function("nilMap", func(...any) (any, error) {
			var m map[string]int
			m["x"] = 1 // a runtime.Error panic
			return nil, nil
		}),
	)
	tests := []struct {
		src     string
		wantMsg string
	}{
		{src: `"a" + boom()`, wantMsg: "kaboom"},
		{src: `boomErr()`, wantMsg: "memory budget exceeded"},
		{src: `nilMap()`, wantMsg: "assignment to entry in nil map"},
		{src: `int(issue.title)`, wantMsg: `invalid operation: int(Found a bug in the link preview renderer)`},
		{src: `issue.labels[len(issue.labels)]`, wantMsg: "index out of range: 3 (array length is 3)"},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			t.Parallel()
			p, err := c.Compile(tc.src, testPos, testPath)
			require.NoError(t, err)
			var out any
			require.NotPanics(t, func() { out, err = p.Eval(testEnv(t)) })
			assert.Nil(t, out)
			var ee *EvalError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, tc.wantMsg, ee.Msg)
		})
	}
}

// TestEvalErrorPosition maps run-time errors into the YAML file like
// compile errors.
func TestEvalErrorPosition(t *testing.T) {
	t.Parallel()
	c := newTestCompiler()
	block := config.Pos{File: "config.yaml", Line: 40, Col: 17, Block: true}
	p, err := c.Compile("let n = len(issue.labels);\nissue.labels[n].name", block, testPath)
	require.NoError(t, err)
	_, err = p.Eval(testEnv(t))
	require.EqualError(t, err, "config.yaml:42:13: "+testPath+": index out of range: 3 (array length is 3)")

	p, err = c.Compile(`date(issue.title)`, testPos, testPath)
	require.NoError(t, err)
	_, err = p.Eval(testEnv(t))
	require.EqualError(t, err, `config.yaml:31:15: `+testPath+`: date: cannot read "Found a bug in the link preview renderer" as a time: want RFC 3339 (2024-01-31T17:04:05Z), YYYY-MM-DD or unix seconds`)
	assert.Equal(t, testPath, p.String())
}

// TestEvalErrorMessageIsShort keeps upstream text in messages to one
// short line (TH-33).
func TestEvalErrorMessageIsShort(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, `uri`)
	e := p.evalError(errors.New("first\nsecond\t" + strings.Repeat("x", 1000)))
	assert.Equal(t, "first second "+strings.Repeat("x", 286)+"…", e.Msg)
	assert.Len(t, []rune(e.Msg), 300)
}

func TestEvalEnvs(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, `[uri, groups.number, issue.title, opt.title]`)

	out, err := p.Eval(nil)
	require.NoError(t, err)
	assert.Equal(t, []any{"", "", nil, nil}, out)

	out, err = p.Eval(&Env{URI: "u"})
	require.NoError(t, err)
	assert.Equal(t, []any{"u", "", nil, nil}, out)

	out, err = p.Eval(testEnv(t))
	require.NoError(t, err)
	assert.Equal(t, []any{"https://github.com/octo-org/hello-world/issues/1347", "1347", "Found a bug in the link preview renderer", nil}, out)
}

// TestEvalConcurrent runs one Program from 50 goroutines; run with -race.
func TestEvalConcurrent(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, `"#" + groups.number + " " + truncate(issue.title, 20) + " (" + join(map(issue.labels, upper(.name)), ", ") + ")"`)
	env := testEnv(t)
	const want = "#1347 Found a bug in the … (BUG, GOOD FIRST ISSUE, HELP WANTED)"
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			for range 20 {
				out, err := p.Eval(env)
				if err != nil {
					errs <- err
					return
				}
				if out != want {
					errs <- fmt.Errorf("got %q", out)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
}
