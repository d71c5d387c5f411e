package provider_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/mapping"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// TestEvaluateUsesThePatternCompiler: the lab's playground compiles with
// the pattern's own compiler (its response and group names, the helper
// allowlist and MaxNodes, TH-34) and reads the answers one traced unfurl
// recorded.
func TestEvaluateUsesThePatternCompiler(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	up.Set("/v2/tickets/OPS-42", upstreamtest.Response{Body: `{"summary":"Disk full","owner_id":"u1","project_id":"p1","labels":[{"name":"ops"},{"name":"p1"}]}`})
	up.Set("/v2/users/u1", upstreamtest.Response{Body: `{"display_name":"Ada","team_id":null}`})
	up.Set("/v2/projects/p1", upstreamtest.Response{Body: `{"name":"Infra"}`})
	p := buildAgainst(t, optionalConfig, up.URL(), "acme")

	const uri = "https://acme.example/t/OPS-42"
	var answers []provider.Exchange
	r := p.Unfurl(t.Context(), uri, provider.Credential{}, provider.UnfurlOptions{Trace: true, NoCache: true,
		Record: func(x provider.Exchange) { answers = append(answers, x) }})
	require.Nil(t, r.Error, string(r.Body))
	m, err := p.Match(uri)
	require.NoError(t, err)
	assert.Equal(t, []string{"ticket", "owner", "team", "project"}, m.Pattern.Requests())

	tooBig := strings.Repeat("1 + ", mapping.MaxNodes) + "1"
	tests := []struct {
		name, mode, from, src string
		want                  any
		wantErr               string
	}{
		{name: "expr over two responses", mode: provider.PlaygroundExpr, src: `ticket.summary + " (" + owner.display_name + ")"`, want: "Disk full (Ada)"},
		{name: "expr reads groups", mode: provider.PlaygroundExpr, src: `groups.key`, want: "OPS-42"},
		{name: "helpers are there", mode: provider.PlaygroundExpr, src: `join(map(ticket.labels, .name), ", ")`, want: "ops, p1"},
		{name: "skipped request reads empty", mode: provider.PlaygroundExpr, src: `team == nil`, want: true},
		{name: "path defaults to the first request", mode: provider.PlaygroundPath, src: `labels.#.name`, want: []any{"ops", "p1"}},
		{name: "path from a named request", mode: provider.PlaygroundPath, from: "project", src: `name`, want: "Infra"},
		{name: "missing path is nil", mode: provider.PlaygroundPath, src: `nope`, want: nil},
		{name: "typo gets a suggestion", mode: provider.PlaygroundExpr, src: `tickt.summary`, wantErr: "expression:1:1: unknown name tickt (did you mean ticket?)"},
		{name: "builtin outside the allowlist", mode: provider.PlaygroundExpr, src: `now()`, wantErr: "now"},
		{name: "MaxNodes applies (TH-34)", mode: provider.PlaygroundExpr, src: tooBig, wantErr: "nodes"},
		{name: "runtime error", mode: provider.PlaygroundExpr, src: `date("soon")`, wantErr: "date"},
		{name: "unknown response", mode: provider.PlaygroundPath, from: "tiket", src: "a", wantErr: `no request named "tiket" in this pattern (did you mean ticket?)`},
		{name: "unknown mode", mode: "yaml", src: "a", wantErr: "unknown playground mode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := p.Evaluate(m, answers, tc.mode, tc.from, tc.src)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
