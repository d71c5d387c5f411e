package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExpandEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{"A": "a", "EMPTY": "", "B": "${A}"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		name    string
		in      string
		want    string
		missing []string
		bad     int
	}{
		{name: "no reference", in: "plain text", want: "plain text"},
		{name: "set", in: "x-${A}-y", want: "x-a-y"},
		{name: "set but empty", in: "[${EMPTY}]", want: "[]"},
		{name: "default when unset", in: "${NOPE:-fallback}", want: "fallback"},
		{name: "default when empty", in: "${EMPTY:-fallback}", want: "fallback"},
		{name: "default not used when set", in: "${A:-fallback}", want: "a"},
		{name: "empty default", in: "${NOPE:-}", want: ""},
		{name: "default may hold a colon and a dash", in: "${NOPE:-a:-b}", want: "a:-b"},
		{name: "escape", in: "$${A}", want: "${A}"},
		{name: "escape next to a reference", in: "$${A}${A}", want: "${A}a"},
		{name: "values are not expanded again", in: "${B}", want: "${A}"},
		{name: "regex end anchor", in: `^https://x\.com/(?<id>\d+)$`, want: `^https://x\.com/(?<id>\d+)$`},
		{name: "group placeholder", in: "Issue #$<number>", want: "Issue #$<number>"},
		{name: "dollar amounts", in: "$5 and $$ and $", want: "$5 and $$ and $"},
		{name: "graphql variable", in: "query($id: ID!)", want: "query($id: ID!)"},
		{name: "missing", in: "${X}/${Y}", want: "/", missing: []string{"X", "Y"}},
		{name: "missing once per value", in: "${X}${X}", want: "", missing: []string{"X"}},
		{name: "bad name", in: "${1X}", want: "", bad: 1},
		{name: "bash default syntax is not ours", in: "${A-b}", want: "", bad: 1},
		{name: "unterminated", in: "a ${A", want: "a ${A", bad: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, missing, bad, _, _ := expandEnv(tc.in, lookup)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.missing, missing)
			assert.Len(t, bad, tc.bad)
		})
	}
}

// TestEnvRetypesPlainScalars checks that a plain ${NAME} takes the type of
// the text it expands to, while quoted values stay strings.
func TestEnvRetypesPlainScalars(t *testing.T) {
	t.Parallel()
	env := map[string]string{"STATUS": "503", "EMPTY": "", "TILDE": "~", "SECRET": "12345"}
	opts := LoadOptions{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	src := `
server:
  mode: development
  unfurl_error_status: ${STATUS}
  read_timeout: ${EMPTY}
providers:
  - name: tiny
    notion:
      client_secret: ${SECRET}
      integration_client_secret: ${TILDE}
    upstream: {base_url: "https://api.tiny.example", headers: {X-A: "${STATUS}"}}
    patterns:
      - name: thing
        regex: '^https://tiny\.example/(?<id>\d+)$'
        samples: [https://tiny.example/1]
        attributes: [{id: title, kind: title, value: "x"}]
`
	cfg, errs := Parse("env.yaml", []byte(src), opts)
	require.Empty(t, errs.Error())
	assert.Equal(t, 503, cfg.Server.UnfurlErrorStatus)
	assert.Equal(t, Duration(10e9), cfg.Server.ReadTimeout, "an empty plain value leaves the default")
	assert.Equal(t, "12345", cfg.Providers[0].Notion.ClientSecret.Reveal())
	assert.Equal(t, "~", cfg.Providers[0].Notion.IntegrationClientSecret.Reveal(), "a secret reading as null is kept")
	assert.Equal(t, "503", cfg.Providers[0].Upstream.Headers["X-A"])
}

// TestEnvOnlyInValues checks that keys are never expanded, values are.
func TestEnvOnlyInValues(t *testing.T) {
	t.Parallel()
	env := map[string]string{"KEY": "X-Expanded", "HEADER": "value"}
	opts := LoadOptions{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	src := `
server: {mode: development}
providers:
  - name: tiny
    upstream:
      base_url: https://api.tiny.example
      headers: {"${KEY}": "${HEADER}"}
    patterns:
      - name: thing
        regex: '^https://tiny\.example/(?<id>\d+)$'
        samples: [https://tiny.example/1]
        attributes: [{id: title, kind: title, value: "x"}]
`
	cfg, errs := Parse("env.yaml", []byte(src), opts)
	require.Empty(t, errs.Error())
	assert.Equal(t, map[string]string{"${KEY}": "value"}, cfg.Providers[0].Upstream.Headers)
}
