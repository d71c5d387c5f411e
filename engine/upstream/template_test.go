package upstream

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// values is a Lookup over a fixed map keyed by "name" or "name.path"; an
// absent key is a missing value, as a null response field is.
func values(m map[string]string) Lookup {
	return func(name, path string) (string, error) {
		key := name
		if path != "" {
			key += "." + path
		}
		v, ok := m[key]
		if !ok {
			return "", fmt.Errorf("no value: %w", ErrMissingValue)
		}
		return v, nil
	}
}

func TestParseTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []Placeholder
	}{
		{name: "plain", in: "application/json"},
		{name: "group", in: "token {tok}", want: []Placeholder{{Name: "tok"}}},
		{name: "two", in: "{owner}/{repo}", want: []Placeholder{{Name: "owner"}, {Name: "repo"}}},
		{name: "gjson path", in: "{issue.user.login}", want: []Placeholder{{Name: "issue", Path: "user.login"}}},
		{name: "gjson modifiers", in: "{r.items.#.id|@reverse}", want: []Placeholder{{Name: "r", Path: "items.#.id|@reverse"}}},
		{name: "unicode path", in: "{r.ünï}", want: []Placeholder{{Name: "r", Path: "ünï"}}},
		{name: "underscore and digits", in: "{_a9}", want: []Placeholder{{Name: "_a9"}}},
		{name: "query marks no query in plain text", in: "a?{x}", want: []Placeholder{{Name: "x"}}},
		{name: "graphql", in: "query($id: String!) { issue(id: $id) { title } }"},
		{name: "graphql with variable placeholder", in: `{"query":"{ viewer { login } }","id":"{id}"}`, want: []Placeholder{{Name: "id"}}},
		{name: "tight graphql braces hold a placeholder", in: "{viewer{login}}", want: []Placeholder{{Name: "login"}}},
		{name: "empty braces", in: "{}"},
		{name: "digit first", in: "{1abc}"},
		{name: "space inside", in: "{a b}"},
		{name: "empty path", in: "{a.}"},
		{name: "space in path", in: "{a.b c}"},
		{name: "brace in path", in: "{a.b{c}}", want: []Placeholder{{Name: "c"}}},
		{name: "unclosed", in: "{abc"},
		{name: "lone closer", in: "abc}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tmpl, err := ParseTemplate(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, nilIfEmpty(tmpl.Placeholders()))
			assert.Equal(t, len(tc.want) == 0, tmpl.Literal())
			assert.Equal(t, tc.in, tmpl.String())
			if tmpl.Literal() {
				out, err := tmpl.Expand(values(nil))
				require.NoError(t, err)
				assert.Equal(t, tc.in, out, "literal braces pass through")
			}
		})
	}

	_, err := ParseTemplate("bad \xff")
	require.Error(t, err)
}

func nilIfEmpty(p []Placeholder) []Placeholder {
	if len(p) == 0 {
		return nil
	}
	return p
}

func TestExpand(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseTemplate("Bearer {tok} ({user.name})")
	require.NoError(t, err)
	tests := []struct {
		name string
		tok  string
		want string // empty: ErrBadValue
	}{
		{name: "plain", tok: "abc", want: "Bearer abc (Ann)"},
		{name: "tab and unicode pass", tok: "a\tü", want: "Bearer a\tü (Ann)"},
		{name: "CRLF header injection", tok: "x\r\nX-Evil: 1"},
		{name: "LF", tok: "x\nY"},
		{name: "CR", tok: "x\rY"},
		{name: "NUL", tok: "x\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := tmpl.Expand(values(map[string]string{"tok": tc.tok, "user.name": "Ann"}))
			if tc.want == "" {
				require.ErrorIs(t, err, ErrBadValue)
				assert.Contains(t, err.Error(), "{tok}")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, out)
		})
	}

	_, err = tmpl.Expand(values(map[string]string{"tok": "x"}))
	require.ErrorContains(t, err, "{user.name}: no value")
	require.ErrorIs(t, err, ErrMissingValue, "a missing value reaches the caller, which may skip an optional request")
	assert.NotErrorIs(t, err, ErrBadValue)
}

// TestParseURLTemplate covers load-time URL template checks (TH-29, TH-30,
// TH-53).
func TestParseURLTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []Placeholder
		wantErr string
	}{
		{in: "/repos/{owner}/{repo}/issues/{number}", want: []Placeholder{{Name: "owner"}, {Name: "repo"}, {Name: "number"}}},
		{in: "/search?q={q}&page={p.next}", want: []Placeholder{{Name: "q", InQuery: true}, {Name: "p", Path: "next", InQuery: true}}},
		{in: "/a/{x}?b={y}", want: []Placeholder{{Name: "x"}, {Name: "y", InQuery: true}}},
		{in: "/user"},
		{in: "https://api.github.com/repos/{o}", want: []Placeholder{{Name: "o"}}},
		{in: "https://api.github.com:8443/x?{k}={v}", want: []Placeholder{{Name: "k", InQuery: true}, {Name: "v", InQuery: true}}},
		{in: "HTTPS://api.github.com/{o}", want: []Placeholder{{Name: "o"}}},
		{in: "https://api.github.com"},
		{in: "https://{host}/x", wantErr: "placeholder {host} in the host is not allowed"},
		{in: "https://api.{domain}.com/x", wantErr: "placeholder {domain} in the host is not allowed"},
		{in: "https://api.github.com:{port}/x", wantErr: "placeholder {port} in the host is not allowed"},
		{in: "https://{user}@api.github.com/x", wantErr: "placeholder {user} in the host is not allowed"},
		{in: "https://api.github.com{path}", wantErr: "placeholder {path} in the host is not allowed"},
		{in: "https://{r.host}/x", wantErr: "placeholder {r.host} in the host is not allowed"},
		{in: "{scheme}://api.github.com/x", wantErr: "placeholder {scheme} in the scheme is not allowed"},
		{in: "http{s}://api.github.com/x", wantErr: "placeholder {s} in the scheme is not allowed"},
		{in: "{url}", wantErr: "want an absolute http(s) URL or a path starting with /"},
		{in: "ftp://api.github.com/{x}", wantErr: `scheme "ftp"`},
		{in: "javascript:alert(1)", wantErr: "want an absolute http(s) URL"},
		{in: "repos/{x}", wantErr: "want an absolute http(s) URL"},
		{in: "", wantErr: "want an absolute http(s) URL"},
		{in: "//evil.com/{x}", wantErr: "single /"},
		{in: "https://user:pw@api.github.com/x", wantErr: "user info"},
		{in: "https:///x", wantErr: "no host"},
		{in: "/a/../{x}", wantErr: "dot segment"},
		{in: "/a/./{x}", wantErr: "dot segment"},
		{in: "/a/%2e%2e/{x}", wantErr: "dot segment"},
		{in: "/a/{x}/..", wantErr: "dot segment"},
		{in: "/a b/{x}", wantErr: "spaces"},
		{in: "/a/{x}\n", wantErr: "control"},
		{in: "/a/{x}#frag", wantErr: "fragment"},
		{in: "/a/{x }", wantErr: "stray brace"},
		{in: "/a/{}", wantErr: "stray brace"},
		{in: "/a/}", wantErr: "stray brace"},
		{in: "/a/\xff", wantErr: "UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			tmpl, err := ParseURLTemplate(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, nilIfEmpty(tmpl.Placeholders()))
		})
	}
}

// TestExpandURL is the TH-29 corpus: every value either lands escaped in
// exactly one path segment or query component, or is refused.
func TestExpandURL(t *testing.T) {
	t.Parallel()
	const base = "https://gitlab.com/api/v4"
	tests := []struct {
		name string
		tmpl string
		base string // default base
		vals map[string]string
		want string // empty: error
		// errIs is the wanted sentinel when want is empty; nil means any
		// error.
		errIs error
	}{
		{name: "gitlab project path", tmpl: "/projects/{id}", vals: map[string]string{"id": "group/project"}, want: base + "/projects/group%2Fproject"},
		{name: "base trailing slash", tmpl: "/projects/{id}", base: base + "/", vals: map[string]string{"id": "7"}, want: base + "/projects/7"},
		{name: "base without path", tmpl: "/repos/{o}/{r}", base: "https://api.github.com", vals: map[string]string{"o": "a", "r": "b"}, want: "https://api.github.com/repos/a/b"},
		{name: "gjson value", tmpl: "/users/{issue.user.login}", vals: map[string]string{"issue.user.login": "ann"}, want: base + "/users/ann"},
		{name: "literal", tmpl: "/user", want: base + "/user"},
		{name: "query", tmpl: "/search?q={q}&n={n}", vals: map[string]string{"q": "a b&c=d#e/f", "n": "2"}, want: base + "/search?q=a+b%26c%3Dd%23e%2Ff&n=2"},
		{name: "empty query value", tmpl: "/s?q={q}", vals: map[string]string{"q": ""}, want: base + "/s?q="},
		{name: "dots in query are data", tmpl: "/s?q={q}", vals: map[string]string{"q": ".."}, want: base + "/s?q=.."},
		{name: "absolute template ignores base", tmpl: "https://api.github.com/repos/{o}", vals: map[string]string{"o": "x/y"}, want: "https://api.github.com/repos/x%2Fy"},
		{name: "escaped slash", tmpl: "/p/{id}", vals: map[string]string{"id": "%2f"}, want: base + "/p/%252f"},
		{name: "question mark", tmpl: "/p/{id}", vals: map[string]string{"id": "a?admin=1"}, want: base + "/p/a%3Fadmin=1"},
		{name: "hash", tmpl: "/p/{id}", vals: map[string]string{"id": "a#frag"}, want: base + "/p/a%23frag"},
		{name: "semicolon", tmpl: "/p/{id}", vals: map[string]string{"id": "a;/../b"}, errIs: ErrBadValue},
		{name: "semicolon alone", tmpl: "/p/{id}", vals: map[string]string{"id": "a;b=c"}, want: base + "/p/a%3Bb=c"},
		{name: "percent", tmpl: "/p/{id}", vals: map[string]string{"id": "100%"}, want: base + "/p/100%25"},
		{name: "unicode", tmpl: "/p/{id}", vals: map[string]string{"id": "über"}, want: base + "/p/%C3%BCber"},
		{name: "full-width dots are not dots", tmpl: "/p/{id}", vals: map[string]string{"id": "．．"}, want: base + "/p/%EF%BC%8E%EF%BC%8E"},
		{name: "at sign stays in the path", tmpl: "/p/{id}", vals: map[string]string{"id": "@evil.com"}, want: base + "/p/@evil.com"},
		{name: "double slash value", tmpl: "/p/{id}", vals: map[string]string{"id": "//evil.com"}, want: base + "/p/%2F%2Fevil.com"},
		{name: "colon", tmpl: "/p/{id}", vals: map[string]string{"id": "a:b"}, want: base + "/p/a:b"},
		{name: "three dots are a name", tmpl: "/p/{id}", vals: map[string]string{"id": "..."}, want: base + "/p/..."},
		{name: "1024 bytes", tmpl: "/p/{id}", vals: map[string]string{"id": strings.Repeat("a", 1024)}, want: base + "/p/" + strings.Repeat("a", 1024)},
		{name: "dotdot", tmpl: "/p/{id}", vals: map[string]string{"id": ".."}, errIs: ErrBadValue},
		{name: "dot", tmpl: "/p/{id}", vals: map[string]string{"id": "."}, errIs: ErrBadValue},
		{name: "encoded dotdot", tmpl: "/p/{id}", vals: map[string]string{"id": "%2e%2e"}, errIs: ErrBadValue},
		{name: "encoded dotdot upper", tmpl: "/p/{id}", vals: map[string]string{"id": "%2E%2E"}, errIs: ErrBadValue},
		{name: "half encoded dotdot", tmpl: "/p/{id}", vals: map[string]string{"id": ".%2e"}, errIs: ErrBadValue},
		{name: "double encoded dotdot", tmpl: "/p/{id}", vals: map[string]string{"id": "%252e%252e"}, errIs: ErrBadValue},
		{name: "traversal with slash", tmpl: "/p/{id}", vals: map[string]string{"id": "../admin"}, errIs: ErrBadValue},
		{name: "traversal inside", tmpl: "/p/{id}", vals: map[string]string{"id": "a/../../b"}, errIs: ErrBadValue},
		{name: "traversal encoded slash", tmpl: "/p/{id}", vals: map[string]string{"id": "..%2fadmin"}, errIs: ErrBadValue},
		{name: "traversal backslash", tmpl: "/p/{id}", vals: map[string]string{"id": "..\\admin"}, errIs: ErrBadValue},
		{name: "dot made by template and value", tmpl: "/p/.{id}", vals: map[string]string{"id": "."}, errIs: ErrBadValue},
		{name: "dot made by two values", tmpl: "/p/{a}{b}", vals: map[string]string{"a": ".", "b": "."}, errIs: ErrBadValue},
		{name: "empty in path", tmpl: "/p/{id}/x", vals: map[string]string{"id": ""}, errIs: ErrBadValue},
		{name: "CRLF", tmpl: "/p/{id}", vals: map[string]string{"id": "a\r\nHost: evil"}, errIs: ErrBadValue},
		{name: "encoded CRLF", tmpl: "/p/{id}", vals: map[string]string{"id": "%0d%0a"}, errIs: ErrBadValue},
		{name: "encoded CRLF in query", tmpl: "/p?q={q}", vals: map[string]string{"q": "%0D%0A"}, errIs: ErrBadValue},
		{name: "NUL", tmpl: "/p/{id}", vals: map[string]string{"id": "a\x00"}, errIs: ErrBadValue},
		{name: "DEL", tmpl: "/p/{id}", vals: map[string]string{"id": "a\x7f"}, errIs: ErrBadValue},
		{name: "C1 control", tmpl: "/p/{id}", vals: map[string]string{"id": "a\u0085"}, errIs: ErrBadValue},
		{name: "invalid UTF-8", tmpl: "/p/{id}", vals: map[string]string{"id": "\xff"}, errIs: ErrBadValue},
		{name: "too long", tmpl: "/p/{id}", vals: map[string]string{"id": strings.Repeat("a", 1025)}, errIs: ErrBadValue},
		{name: "too long in query", tmpl: "/p?q={q}", vals: map[string]string{"q": strings.Repeat("a", 1025)}, errIs: ErrBadValue},
		{name: "missing value stays missing, not bad", tmpl: "/p/{id}", vals: map[string]string{}, errIs: ErrMissingValue},
		{name: "missing value in query", tmpl: "/p?q={q}", vals: map[string]string{}, errIs: ErrMissingValue},
		{name: "bad base scheme", tmpl: "/p", base: "ftp://gitlab.com"},
		{name: "base with query", tmpl: "/p", base: base + "?x=1"},
		{name: "base with user", tmpl: "/p", base: "https://u@gitlab.com"},
		{name: "base relative", tmpl: "/p", base: "/api"},
		{name: "base with dot segment", tmpl: "/p", base: "https://gitlab.com/api/../x", errIs: ErrBadValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tmpl, err := ParseURLTemplate(tc.tmpl)
			require.NoError(t, err)
			b := tc.base
			if b == "" {
				b = base
			}
			got, err := tmpl.ExpandURL(b, values(tc.vals))
			if tc.want == "" {
				require.Error(t, err, "got %q", got)
				if tc.errIs != nil {
					require.ErrorIs(t, err, tc.errIs)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}

	plain, err := ParseTemplate("/p/{id}")
	require.NoError(t, err)
	_, err = plain.ExpandURL(base, values(map[string]string{"id": "x"}))
	require.ErrorContains(t, err, "not a url template")
}

// FuzzExpandURL: whatever the template and value, an expanded URL keeps
// the base (or template) host and has no dot segment (TH-29, TH-30).
func FuzzExpandURL(f *testing.F) {
	seeds := [][2]string{
		{"/projects/{id}", "group/project"},
		{"/p/{id}", ".."},
		{"/p/{id}", "%2e%2e"},
		{"/p/.{id}", "."},
		{"/p/{a}{b}", "."},
		{"/p/{id}?q={id}", "a?b#c"},
		{"/p/%2e{id}", "%2e"},
		{"/p{id}", "@evil.com"},
		{"/{id}", "//evil.com"},
		{"https://api.github.com/{x}", "../x"},
		{"/p/{id}", "%252e%252e"},
		{"/p/{id}", "..%5c.."},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	const base = "https://api.example.com/v4"
	f.Fuzz(func(t *testing.T, tmplText, value string) {
		tmpl, err := ParseURLTemplate(tmplText)
		if err != nil {
			return
		}
		out, err := tmpl.ExpandURL(base, func(string, string) (string, error) { return value, nil })
		if err != nil {
			return
		}
		u, err := url.Parse(out)
		require.NoError(t, err)
		wantHost := "api.example.com"
		if tmpl.absolute {
			wantHost = tmpl.host
		}
		require.Equal(t, wantHost, u.Host, "expanded %q", out)
		for _, p := range []string{u.EscapedPath(), u.Path} {
			for seg := range strings.SplitSeq(p, "/") {
				require.NotEqual(t, "..", seg, "expanded %q", out)
				require.NotEqual(t, ".", seg, "expanded %q", out)
			}
		}
	})
}

func BenchmarkExpandURL(b *testing.B) {
	tmpl, err := ParseURLTemplate("/projects/{id}/issues/{iid}?per_page={n}")
	require.NoError(b, err)
	lookup := values(map[string]string{"id": "group/sub/project", "iid": "42", "n": "20"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tmpl.ExpandURL("https://gitlab.com/api/v4", lookup); err != nil {
			b.Fatal(err)
		}
	}
}
