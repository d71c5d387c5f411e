package engine_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mdLink matches an inline Markdown link's target: [text](target).
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// urlScheme matches an absolute URL's scheme (https:, mailto:).
var urlScheme = regexp.MustCompile(`^[a-z]+:`)

// codeSpan matches inline code, whose brackets are not links.
var codeSpan = regexp.MustCompile("`[^`]*`")

// TestDocsLinksResolve: every relative link of the README and of docs/
// (and the examples' READMEs) reaches a file that exists and, when it
// names a section, a heading of that file, so moving or renaming a section
// cannot leave the documentation pointing at nothing.
func TestDocsLinksResolve(t *testing.T) {
	root := ".."
	files := []string{filepath.Join(root, "README.md")}
	for _, glob := range []string{"docs/*.md", "examples/*/README.md"} {
		m, err := filepath.Glob(filepath.Join(root, glob))
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.Greater(t, len(files), 5, "the documentation pages were not found")

	checked := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, target := range markdownLinks(string(data)) {
			if strings.HasPrefix(target, "<") || urlScheme.MatchString(target) {
				continue // an absolute URL: not ours to check offline
			}
			checked++
			path, anchor, _ := strings.Cut(target, "#")
			dest := file
			if path != "" {
				dest = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(dest); err != nil {
					assert.Fail(t, "broken link", "%s: %s: no file %s", file, target, dest)
					continue
				}
			}
			if anchor == "" {
				continue
			}
			require.True(t, strings.HasSuffix(dest, ".md"), "%s: %s: a section of a file that is not Markdown", file, target)
			assert.True(t, markdownAnchors(t, dest)[anchor], "%s: %s: %s has no heading for #%s", file, target, dest, anchor)
		}
	}
	assert.Positive(t, checked)
}

// TestMarkdownAnchors pins the GitHub anchor rules the link checks rely on.
func TestMarkdownAnchors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.md")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join([]string{
		"# Title",
		"## 9.2 Syntax",
		"### Durability: what `202` means, what survives `kill -9`",
		"## `providers[].live`",
		"## Title",
		"```yaml",
		"# not-a-heading",
		"```",
		"#nospace",
	}, "\n")), 0o644))
	got := markdownAnchors(t, path)
	want := map[string]bool{
		"title": true, "92-syntax": true,
		"durability-what-202-means-what-survives-kill--9": true,
		"providerslive": true, "title-1": true,
	}
	assert.Equal(t, want, got)
}

// markdownLinks returns the inline link targets of a Markdown text,
// leaving out fenced code blocks and code spans.
func markdownLinks(text string) []string {
	var out []string
	fence := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fence = !fence
			continue
		}
		if fence {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// markdownAnchors returns the anchors of a Markdown file's headings, made
// as GitHub makes them: lower case, spaces to '-', other punctuation
// dropped ("### 9.2 Syntax" is #92-syntax), a repeated heading suffixed
// -1, -2...; lines in fenced code blocks are not headings.
func markdownAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]bool{}
	seen := map[string]int{}
	fence := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fence = !fence
			continue
		}
		text, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if fence || !ok || !strings.HasPrefix(line, "#") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(text)) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		anchor := b.String()
		if n := seen[anchor]; n > 0 {
			seen[anchor] = n + 1
			anchor = anchor + "-" + strconv.Itoa(n)
		} else {
			seen[anchor] = 1
		}
		out[anchor] = true
	}
	return out
}
