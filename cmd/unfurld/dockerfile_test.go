package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Dockerfile is checked here, without a daemon: CI has none.

// dockerInstructions returns the Dockerfile's instructions with their
// continuation lines joined and comments dropped.
func dockerInstructions(t *testing.T, text string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}

// goBuildCommand extracts a `go build` command with its environment
// prefix, the output path replaced, spaces collapsed.
func goBuildCommand(t *testing.T, what, text string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)((?:[A-Z_]+=\S+ )*go build [^&\n]*\./cmd/unfurld)`).FindAllString(text, -1)
	require.Len(t, m, 1, "%s: want exactly one go build of ./cmd/unfurld", what)
	cmd := regexp.MustCompile(`-o \S+`).ReplaceAllString(m[0], "-o OUT")
	return strings.Join(strings.Fields(cmd), " ")
}

// ignoreMatcher is a .dockerignore: patterns relative to the context
// root, `*` and `?` within a path element, `**` across elements, a
// pattern that matches a directory excluding what is under it, and `!`
// re-including. Enough for the patterns this repository uses.
type ignoreMatcher []struct {
	re     *regexp.Regexp
	negate bool
}

func parseDockerignore(t *testing.T, text string) ignoreMatcher {
	t.Helper()
	var m ignoreMatcher
	for _, line := range strings.Split(text, "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(?:.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("$")
		m = append(m, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile(re.String()), neg})
	}
	return m
}

// excluded reports whether path (slash-separated, relative) is left out
// of the context: the last pattern matching it or a parent decides.
func (m ignoreMatcher) excluded(path string) bool {
	out := false
	parts := strings.Split(path, "/")
	for _, p := range m {
		for i := range parts {
			if p.re.MatchString(strings.Join(parts[:i+1], "/")) {
				out = !p.negate
				break
			}
		}
	}
	return out
}

// TestDockerfile checks what can be checked without a daemon: every COPY
// source from the context exists and is not excluded by .dockerignore;
// the sources the build reads (Go files, embedded templates and provider
// files, go.mod, go.sum) are not excluded; the go build command is the
// one .ci/run builds with; and the image has a HEALTHCHECK that runs the
// healthcheck command this binary has.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, name))
		require.NoError(t, err)
		return string(b)
	}
	dockerfile, ci := read("Dockerfile"), read(filepath.Join(".ci", "run"))
	ignore := parseDockerignore(t, read(".dockerignore"))

	copies, healthchecks := 0, 0
	for _, ins := range dockerInstructions(t, dockerfile) {
		fields := strings.Fields(ins)
		switch strings.ToUpper(fields[0]) {
		case "COPY", "ADD":
			args, fromStage := []string{}, false
			for _, f := range fields[1:] {
				switch {
				case strings.HasPrefix(f, "--from="):
					fromStage = true
				case strings.HasPrefix(f, "--"):
				default:
					args = append(args, f)
				}
			}
			require.GreaterOrEqual(t, len(args), 2, ins)
			if fromStage {
				continue
			}
			for _, src := range args[:len(args)-1] {
				copies++
				matches, err := filepath.Glob(filepath.Join(root, src))
				require.NoError(t, err)
				assert.NotEmpty(t, matches, "%s: source %s does not exist", ins, src)
				if src != "." {
					assert.False(t, ignore.excluded(filepath.ToSlash(filepath.Clean(src))), "%s: .dockerignore excludes %s", ins, src)
				}
			}
		case "HEALTHCHECK":
			healthchecks++
			assert.Contains(t, ins, `"/unfurld", "healthcheck"`)
		}
	}
	assert.Positive(t, copies)
	assert.Equal(t, 1, healthchecks, "one HEALTHCHECK")
	hc := false
	for _, c := range commands() {
		hc = hc || c.name == "healthcheck"
	}
	assert.True(t, hc, "the HEALTHCHECK's command exists")

	for _, f := range []string{"go.mod", "go.sum", "config.example.yaml"} {
		assert.False(t, ignore.excluded(f), ".dockerignore excludes %s", f)
	}
	for _, dir := range []string{"cmd", "engine", "providers"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			needed := strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") && !strings.Contains(rel, "/testdata/")
			needed = needed || strings.Contains(rel, "/templates/") || (strings.HasPrefix(rel, "providers/") && strings.Count(rel, "/") == 1 && strings.HasSuffix(rel, ".yaml"))
			if needed {
				assert.False(t, ignore.excluded(rel), ".dockerignore excludes %s, which the build needs", rel)
			}
			return nil
		})
		require.NoError(t, err)
	}
	// The matcher itself, on this file's patterns.
	assert.True(t, ignore.excluded(".git/config"))
	assert.True(t, ignore.excluded("engine/config/testdata/full.good.yaml"))
	assert.True(t, ignore.excluded("cmd/unfurld/main_test.go"))

	assert.Equal(t, goBuildCommand(t, ".ci/run", ci), goBuildCommand(t, "Dockerfile", dockerfile),
		"the image is built with the command CI builds and tests")
}
