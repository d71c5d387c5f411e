package mapping

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
)

// TestRewrite pins how member chains on a response become one gjson read,
// and what each gives on the issue fixture.
func TestRewrite(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	tests := []struct {
		name string
		src  string
		ast  string // the program after the rewrite
		want any
	}{
		{name: "nested", src: `issue.user.login`, ast: `get(__budget, issue, "user.login")`, want: "octocat"},
		{name: "index", src: `issue.labels[1].name`, ast: `get(__budget, issue, "labels.1.name")`, want: "good first issue"},
		{name: "quoted key with a dot", src: `issue["odd.key"]`, ast: `get(__budget, issue, "odd\\.key")`, want: "dotted"},
		{name: "quoted key with gjson wildcards", src: `issue["weird key*?"]`, ast: `get(__budget, issue, "weird key\\*\\?")`, want: "starred"},
		{name: "quoted key then member", src: `issue["user"].login`, ast: `get(__budget, issue, "user.login")`, want: "octocat"},
		{name: "optional chaining", src: `issue?.milestone?.title`, ast: `get(__budget, issue, "milestone.title")`, want: nil},
		{name: "optional chaining present", src: `issue?.user?.login`, ast: `get(__budget, issue, "user.login")`, want: "octocat"},
		{name: "missing is nil", src: `issue.nope.deeper[3].x`, ast: `get(__budget, issue, "nope.deeper.3.x")`, want: nil},
		{name: "null is nil", src: `issue.milestone`, ast: `get(__budget, issue, "milestone")`, want: nil},
		{name: "missing optional response", src: `opt.title`, ast: `get(__budget, opt, "title")`, want: nil},
		{name: "empty response is nil", src: `opt == nil`, ast: `get(__budget, opt, "") == nil`, want: true},
		{name: "present response is not nil", src: `issue != nil`, ast: `get(__budget, issue, "") != nil`, want: true},
		{name: "arrays via map", src: `map(issue.labels, .name)`, ast: `map(__getkey(__budget, issue, "labels", "name"), .name)`, want: []any{"bug", "good first issue", "help wanted"}},
		{name: "map reading more than a key", src: `map(issue.labels, .name + "!")`, ast: `map(get(__budget, issue, "labels"), __add(__budget, .name, "!"))`, want: []any{"bug!", "good first issue!", "help wanted!"}},
		{name: "object", src: `issue.reactions.hooray`, ast: `get(__budget, issue, "reactions.hooray")`, want: 1.0},
		{name: "key with a sign", src: `issue.reactions["+1"]`, ast: `get(__budget, issue, "reactions.\\+1")`, want: 1.0},
		{name: "computed index falls back", src: `let i = 2; issue.labels[i].name`, ast: `let i = 2; get(__budget, issue, "labels")[i].name`, want: "help wanted"},
		{name: "negative index falls back", src: `issue.labels[-1].name`, ast: `get(__budget, issue, "labels")[-1].name`, want: "help wanted"},
		{name: "slice", src: `issue.labels[1:][0].name`, ast: `get(__budget, issue, "labels")[1:][0].name`, want: "good first issue"},
		{name: "get with full gjson syntax", src: `get(issue, "labels.#.name")`, ast: `get(__budget, issue, "labels.#.name")`, want: []any{"bug", "good first issue", "help wanted"}},
		{name: "get result is not extended", src: `get(issue, "labels|@reverse")[0].name`, ast: `get(__budget, issue, "labels|@reverse")[0].name`, want: "help wanted"},
		{name: "get on a decoded value", src: `get(issue.user, "login")`, ast: `get(__budget, get(__budget, issue, "user"), "login")`, want: "octocat"},
		{name: "helpers receive the budget", src: `upper(issue.state)`, ast: `upper(__budget, get(__budget, issue, "state"))`, want: "OPEN"},
		{name: "string plus", src: `"#" + groups.number`, ast: `__concat(__budget, "#", groups.number)`, want: "#1347"},
		{name: "any plus", src: `issue.title + "!"`, ast: `__add(__budget, get(__budget, issue, "title"), "!")`, want: "Found a bug in the link preview renderer!"},
		{name: "number plus stays an opcode", src: `1 + 2 * len(uri)`, ast: `1 + 2 * len(uri)`, want: 103},
		{name: "groups and uri", src: `groups.owner + "/" + groups.repo + " " + uri`, ast: `__concat(__budget, __concat(__budget, __concat(__budget, __concat(__budget, groups.owner, "/"), groups.repo), " "), uri)`, want: "octo-org/hello-world https://github.com/octo-org/hello-world/issues/1347"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustCompile(t, tc.src)
			node := p.prog.Node()
			assert.Equal(t, tc.ast, node.String())
			got, err := p.Eval(env)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestCompileErrors pins the exact error lines, positions mapped into the
// YAML file (STYLE.md 2).
func TestCompileErrors(t *testing.T) {
	t.Parallel()
	// `      state: {kind: enum, expr: <src>}` style plain scalar at 31:15.
	plain := config.Pos{File: "config.yaml", Line: 31, Col: 15}
	// expr: |
	//   let t = issue.title;
	//   upper(t) +
	//     groups.nmber
	block := config.Pos{File: "config.yaml", Line: 40, Col: 17, Block: true}
	tests := []struct {
		name string
		src  string
		pos  config.Pos
		want string
	}{
		{
			name: "unknown name with suggestion",
			src:  `upper(isue.title)`, pos: plain,
			want: "config.yaml:31:21: " + testPath + ": unknown name isue (did you mean issue?)",
		},
		{
			name: "unknown name in a block scalar",
			src:  "let t = issue.title;\nupper(t) +\n  groups.nmber\n", pos: block,
			want: "config.yaml:43:10: " + testPath + ": unknown group nmber (did you mean number?)",
		},
		{
			name: "type error in a block scalar",
			src:  "\"a\" +\n  \"b\" + 1", pos: block,
			want: "config.yaml:42:7: " + testPath + ": invalid operation: + (mismatched types string and int)",
		},
		{
			name: "multi-line quoted scalar continues at column 1",
			src:  "issue.title +\nmissing", pos: plain,
			want: "config.yaml:32:1: " + testPath + ": unknown name missing",
		},
		{
			name: "unknown name without suggestion",
			src:  `zzzzzz`, pos: plain,
			want: "config.yaml:31:15: " + testPath + ": unknown name zzzzzz",
		},
		{
			name: "syntax error",
			src:  `issue.title +`, pos: plain,
			want: "config.yaml:31:27: " + testPath + ": unexpected token EOF",
		},
		{
			name: "disabled builtin now TH-34",
			src:  `date(now())`, pos: plain,
			want: "config.yaml:31:20: " + testPath + ": function now is not available in unfurld expressions",
		},
		{
			name: "disabled predicate builtin",
			src:  `reduce(issue.labels, #acc + 1, 0)`, pos: plain,
			want: "config.yaml:31:15: " + testPath + ": function reduce is not available in unfurld expressions",
		},
		{
			name: "unbounded builtin repeat",
			src:  `repeat("x", 10)`, pos: plain,
			want: "config.yaml:31:15: " + testPath + ": function repeat is not available in unfurld expressions",
		},
		{
			name: "$env",
			src:  `$env.issue`, pos: plain,
			want: "config.yaml:31:15: " + testPath + ": $env is not available; use the names directly",
		},
		{
			name: "reserved hidden name",
			src:  `join([], __budget)`, pos: plain,
			want: "config.yaml:31:24: " + testPath + ": unknown name __budget",
		},
		{
			name: "method on a response value",
			src:  `issue.title.lower()`, pos: plain,
			want: "config.yaml:31:27: " + testPath + ": values read from a response have no methods: write f(x), not x.lower()",
		},
		{
			name: "string plus int",
			src:  `"#" + groups.number + 1`, pos: plain,
			want: "config.yaml:31:35: " + testPath + ": invalid operation: + (mismatched types string and int)",
		},
		{
			name: "type error inside a rewritten argument",
			src:  `upper("a" + upper(1))`, pos: plain,
			want: "config.yaml:31:33: " + testPath + ": upper takes (s string), got (int) (see docs/expressions.md#expressions)",
		},
		{
			name: "wrong argument count",
			src:  `truncate(issue.title)`, pos: plain,
			want: "config.yaml:31:15: " + testPath + ": truncate takes (s string, n int), got (any) (see docs/expressions.md#expressions)",
		},
		{
			name: "float length",
			src:  `truncate(issue.title, 2.5)`, pos: plain,
			want: "config.yaml:31:37: " + testPath + ": truncate takes (s string, n int), got (any, float) (see docs/expressions.md#expressions)",
		},
		{
			// expr tried the three-argument overload last and said "not
			// enough arguments".
			name: "swapped arguments",
			src:  `pluralize("many", 3)`, pos: plain,
			want: "config.yaml:31:15: " + testPath + `: pluralize takes (n number, singular string[, plural string]), got (string, int); are the two arguments swapped? (see docs/expressions.md#expressions)`,
		},
		{
			// The helpers' Go parameters are any, so expr's checker passes
			// a string where a number is wanted: it would fail on every
			// unfurl.
			name: "string where a helper wants a number",
			src:  `pluralize(groups.number, "x")`, pos: plain,
			want: "config.yaml:31:15: " + testPath + `: pluralize takes (n number, singular string[, plural string]), got (string, string) (see docs/expressions.md#expressions)`,
		},
		{
			name: "swapped arguments of unknown and known type",
			src:  `"#" + pluralize("comment", issue.comments)`, pos: plain,
			want: "config.yaml:31:21: " + testPath + `: pluralize takes (n number, singular string[, plural string]), got (string, any); are the two arguments swapped? (see docs/expressions.md#expressions)`,
		},
		{
			name: "too many arguments",
			src:  `pluralize(issue.comments, "comment", "comments", "x")`, pos: plain,
			want: "config.yaml:31:15: " + testPath + `: pluralize takes (n number, singular string[, plural string]), got (any, string, string, string) (see docs/expressions.md#expressions)`,
		},
		{
			name: "swapped arguments with a list",
			src:  `join(", ", map(issue.labels, .name))`, pos: plain,
			want: "config.yaml:31:26: " + testPath + `: join takes (list list[, sep string]), got (string, list); are the two arguments swapped? (see docs/expressions.md#expressions)`,
		},
		{
			name: "predicate builtin without its predicate",
			src:  `map(issue.labels)`, pos: plain,
			want: "config.yaml:31:31: " + testPath + `: map takes (list list, predicate any) (see docs/expressions.md#expressions)`,
		},
		{
			name: "builtin with a wrong type",
			src:  `trim(1)`, pos: plain,
			want: "config.yaml:31:15: " + testPath + `: trim takes (s string[, chars string]), got (int) (see docs/expressions.md#expressions)`,
		},
		{
			name: "builtin with a wrong count",
			src:  `"n=" + string(len(issue.labels, 2))`, pos: plain,
			want: "config.yaml:31:29: " + testPath + `: len takes (v any), got (any, int) (see docs/expressions.md#expressions)`,
		},
		{
			name: "unknown group without suggestion",
			src:  `groups.zzzzzz`, pos: plain,
			want: "config.yaml:31:22: " + testPath + ": unknown group zzzzzz (the regex's groups are number, owner, repo)",
		},
		{
			name: "bad regex literal",
			src:  `issue.title matches "("`, pos: plain,
			want: "config.yaml:31:27: " + testPath + ": error parsing regexp: missing closing ): `(`",
		},
		{
			name: "too many nodes TH-34",
			src:  strings.Repeat("1+", MaxNodes) + "1", pos: plain,
			want: "config.yaml:31:2016: " + testPath + ": compilation failed: expression exceeds maximum allowed nodes",
		},
		{
			name: "empty",
			src:  " \n ", pos: plain,
			want: "config.yaml:31:15: " + testPath + ": the expression is empty",
		},
		{
			name: "unknown position",
			src:  `missing`, pos: config.Pos{File: "config.yaml"},
			want: "config.yaml: " + testPath + ": unknown name missing",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := newTestCompiler().Compile(tc.src, tc.pos, testPath)
			var ce *config.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.want, ce.Error())
		})
	}
}

func TestCompileNoGroups(t *testing.T) {
	t.Parallel()
	_, err := NewCompiler([]string{"issue"}, nil).Compile(`groups.id`, testPos, testPath)
	require.EqualError(t, err, "config.yaml:31:22: "+testPath+": unknown group id (the pattern's regex has no named groups)")
}

func TestCompileReservedResponseName(t *testing.T) {
	t.Parallel()
	_, err := NewCompiler([]string{"issue", "uri", "map"}, nil).Compile(`issue.title`, testPos, testPath)
	require.EqualError(t, err, "config.yaml:31:15: "+testPath+": request name uri, map is reserved in expressions; rename the request")
}

func TestIsReserved(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"groups", "uri", "get", "date", "truncate", "default", "map", "now", "toJSON", "in", "let", "$env", "__budget"} {
		assert.True(t, IsReserved(name), name)
	}
	for _, name := range []string{"issue", "repo", "pr", "user", "comments"} {
		assert.False(t, IsReserved(name), name)
	}
}

func TestCompilePath(t *testing.T) {
	t.Parallel()
	c := newTestCompiler()
	env := testEnv(t)

	p, err := c.CompilePath("issue", "labels.#.name", testPos, "x.path")
	require.NoError(t, err)
	got, err := p.Eval(env)
	require.NoError(t, err)
	assert.Equal(t, []any{"bug", "good first issue", "help wanted"}, got)

	missing, err := c.CompilePath("opt", "title", testPos, "x.path")
	require.NoError(t, err)
	got, err = missing.Eval(env)
	require.NoError(t, err)
	assert.Nil(t, got)
	got, err = missing.Eval(nil)
	require.NoError(t, err)
	assert.Nil(t, got)

	_, err = c.CompilePath("isue", "title", testPos, "x.from")
	require.EqualError(t, err, `config.yaml:31:15: x.from: no request named "isue" in this pattern (did you mean issue?)`)
	_, err = c.CompilePath("issue", " ", testPos, "x.path")
	require.EqualError(t, err, "config.yaml:31:15: x.path: the path is empty")
}

func TestPosOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		pos       config.Pos
		line, col int
		want      config.Pos
	}{
		{"plain first line", config.Pos{File: "f", Line: 3, Col: 10}, 1, 4, config.Pos{File: "f", Line: 3, Col: 14}},
		{"plain later line", config.Pos{File: "f", Line: 3, Col: 10}, 2, 4, config.Pos{File: "f", Line: 4, Col: 5}},
		{"block first line", config.Pos{File: "f", Line: 3, Col: 10, Block: true}, 1, 0, config.Pos{File: "f", Line: 4, Col: 1}},
		{"block third line", config.Pos{File: "f", Line: 3, Col: 10, Block: true}, 3, 2, config.Pos{File: "f", Line: 6, Col: 3}},
		{"unknown", config.Pos{File: "f"}, 2, 2, config.Pos{File: "f"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, posOf(tc.pos, tc.line, tc.col))
		})
	}
}
