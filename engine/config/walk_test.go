package config

import (
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPositions checks the path rules of the positions index: scalars at
// their value, collections at their key, named list items by name, other
// items by index, literal blocks flagged.
func TestPositions(t *testing.T) {
	t.Parallel()
	file := filepath.Join("testdata", "full.good.yaml")
	cfg, errs := Load(file, testOptions())
	require.Empty(t, errs.Error())
	p := cfg.Positions
	tests := []struct {
		path      string
		line, col int
		block     bool
	}{
		{path: "", line: 2, col: 1},
		{path: "server.mode", line: 2, col: 16},
		{path: "providers", line: 3, col: 1},
		{path: "providers.github", line: 4, col: 5},
		{path: "providers.github.upstream", line: 5, col: 5},
		{path: "providers.github.upstream.base_url", line: 6, col: 17},
		{path: "providers.github.upstream.headers.Accept", line: 7, col: 25},
		{path: "providers.github.patterns.issue", line: 10, col: 9},
		{path: "providers.github.patterns.issue.regex", line: 11, col: 16},
		{path: "providers.github.patterns.issue.samples", line: 12, col: 9},
		{path: "providers.github.patterns.issue.samples[0]", line: 12, col: 19},
		{path: "providers.github.patterns.issue.requests.issue.url", line: 15, col: 18},
		{path: "providers.github.patterns.issue.attributes.title", line: 17, col: 13},
		{path: "providers.github.patterns.issue.attributes.title.path", line: 17, col: 44},
		{path: "providers.github.patterns.issue.attributes.state.colors", line: 21, col: 13},
		{path: "providers.github.patterns.issue.attributes.body.expr", line: 25, col: 19, block: true},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			got, ok := p[tc.path]
			require.True(t, ok, "no position for %q", tc.path)
			assert.Equal(t, Pos{File: file, Line: tc.line, Col: tc.col, Block: tc.block}, got)
		})
	}
}

// TestPositionsOfIncludes checks that included providers are placed in
// their own files, under providers.<name>.
func TestPositionsOfIncludes(t *testing.T) {
	t.Parallel()
	cfg, errs := Load(filepath.Join("testdata", "include.good.yaml"), testOptions())
	require.Empty(t, errs.Error())
	require.Len(t, cfg.Providers, 2)
	assert.Equal(t, "tiny", cfg.Providers[0].Name)
	assert.Equal(t, "mini", cfg.Providers[1].Name)
	assert.Equal(t, Pos{File: filepath.Join("testdata", "providers", "tiny.yaml"), Line: 7, Col: 12},
		cfg.Positions["providers.tiny.patterns.thing.regex"])
	assert.Equal(t, Pos{File: "builtin:mini", Line: 5, Col: 12},
		cfg.Positions["providers.mini.patterns.page.regex"])
	assert.Equal(t, "none", cfg.Providers[0].Upstream.Headers["X-Key"], "included files get ${ENV} expansion")
}

// TestAnchors checks aliases and merge keys: values come from the anchor,
// the mapping's own keys win, and positions point at the text.
func TestAnchors(t *testing.T) {
	t.Parallel()
	file := filepath.Join("testdata", "anchors.good.yaml")
	cfg, errs := Load(file, testOptions())
	require.Empty(t, errs.Error())
	b := cfg.Providers[1]
	assert.Equal(t, "https://api.a.example", b.Upstream.BaseURL)
	assert.Equal(t, Duration(3e9), b.Upstream.Timeout)
	assert.Equal(t, Duration(2e9), cfg.Providers[0].Upstream.Timeout)
	require.Len(t, b.Patterns, 1)
	assert.Equal(t, "q", b.Patterns[0].Name)
	assert.Equal(t, cfg.Providers[0].Patterns[0].Regex, b.Patterns[0].Regex)
	assert.Equal(t, []string{"https://a.example/1"}, b.Patterns[0].Samples)
	assert.True(t, b.Notion.SharedDomain, "notion: *notion")
	assert.Equal(t, 12, cfg.Positions["providers.b.patterns.q.regex"].Line)
	assert.Equal(t, 19, cfg.Positions["providers.b.upstream.timeout"].Line)
}

// TestAliasBombs checks that self-referring and exponential aliases end
// with an error instead of running for ever.
func TestAliasBombs(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"self": "server: &a {log: *a}\n",
		"laughs": `a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
providers: [{name: x, patterns: [{samples: *f}]}]
`,
		"merge loop": "server: &s\n  <<: *s\n",
	}
	for name, src := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, errs := Parse("bomb.yaml", []byte(src), testOptions())
			assert.True(t, errs.HasErrors())
		})
	}
}

func TestBuiltinsMayBeNil(t *testing.T) {
	t.Parallel()
	src := "server: {mode: development}\nproviders:\n  - include: builtin:github\n"
	_, errs := Parse("c.yaml", []byte(src), LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	assert.Equal(t, `c.yaml:3:14: providers[0].include: unknown builtin provider "github"`, errs.Error())

	fsys := fstest.MapFS{"github.yaml": {Data: []byte("name: [\n")}}
	_, errs = Parse("c.yaml", []byte(src), LoadOptions{Builtins: fsys})
	assert.Equal(t, `builtin:github:1:1: yaml: did not find expected node content`, errs.Error())
}

func TestItemPaths(t *testing.T) {
	t.Parallel()
	assert.Equal(t,
		[]string{"p.a", "p[1]", "p.b", "p[3]"},
		itemPaths("p", []string{"a", "", "b", "a"}))
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"title", "title", 0},
		{"titel", "title", 2},
		{"lisen", "listen", 1},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, editDistance(tc.a, tc.b), "%s/%s", tc.a, tc.b)
	}
}
