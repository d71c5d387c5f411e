package provider_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// optionalConfig is docs/configuration.md's ticket-and-owner provider: the owner
// lookup reads the ticket's owner_id and is optional, the team lookup
// reads the owner and is optional too, and the project lookup is required.
const optionalConfig = `
server: {mode: development}
providers:
  - name: acme
    upstream: {base_url: UPSTREAM, allow_private_networks: true}
    patterns:
      - name: ticket
        regex: '^https://acme\.example/t/(?<key>[A-Z]{2,10}-\d{1,8})$'
        samples: [https://acme.example/t/OPS-42]
        requests:
          - {name: ticket, url: '/v2/tickets/{key}'}
          - {name: owner, url: '/v2/users/{ticket.owner_id}', optional: true}
          - {name: team, url: '/v2/teams/{owner.team_id}', optional: true}
          - {name: project, url: '/v2/projects/{ticket.project_id}'}
        attributes:
          - {id: title, kind: title, path: summary}
          - {id: project, kind: plain_text, path: name, from: project}
          - {id: owner, kind: plain_text, path: display_name, from: owner}
          - {id: team, kind: plain_text, path: name, from: team}
`

// TestOptionalRequestSkipsMissingValue: a null or absent value in an
// optional request's URL template skips that request, its attributes come
// out missing and the trace says why; a required request reading one
// still fails the unfurl, and an unsafe value fails it even for an
// optional request (TH-29).
func TestOptionalRequestSkipsMissingValue(t *testing.T) {
	t.Parallel()
	const project = `"project_id": "p1"`
	tests := []struct {
		name   string
		ticket string
		// wantAttrs are the attribute ids of the answer; nil for an error.
		wantAttrs []string
		wantError int
		// wantPaths are the upstream paths requested.
		wantPaths []string
		// wantTrace are lines of the trace's requests and attributes.
		wantTrace []string
	}{
		{
			name:      "owner present",
			ticket:    `{"summary": "Fix it", "owner_id": "u1", ` + project + `}`,
			wantAttrs: []string{"title", "project", "owner", "team", "dev"},
			wantPaths: []string{"/v2/tickets/OPS-42", "/v2/users/u1", "/v2/teams/t1", "/v2/projects/p1"},
		},
		{
			name:      "owner null: owner and team skipped",
			ticket:    `{"summary": "Fix it", "owner_id": null, ` + project + `}`,
			wantAttrs: []string{"title", "project", "dev"},
			wantPaths: []string{"/v2/tickets/OPS-42", "/v2/projects/p1"},
			wantTrace: []string{
				"request owner skipped: {ticket.owner_id}: value is null or absent",
				"request team skipped: {owner.team_id}: value is null or absent",
				"attribute owner missing: request owner was skipped ({ticket.owner_id}: value is null or absent)",
				"attribute team missing: request team was skipped ({owner.team_id}: value is null or absent)",
			},
		},
		{
			name:      "owner absent",
			ticket:    `{"summary": "Fix it", ` + project + `}`,
			wantAttrs: []string{"title", "project", "dev"},
			wantPaths: []string{"/v2/tickets/OPS-42", "/v2/projects/p1"},
		},
		{
			name:      "required request reading a null value fails as before",
			ticket:    `{"summary": "Fix it", "owner_id": "u1", "project_id": null}`,
			wantError: 400,
			wantPaths: []string{"/v2/tickets/OPS-42", "/v2/users/u1", "/v2/teams/t1"},
			wantTrace: []string{"request project error: {ticket.project_id}: value is null or absent"},
		},
		{
			name:      "unsafe value in an optional request still fails (TH-29)",
			ticket:    `{"summary": "Fix it", "owner_id": "..", ` + project + `}`,
			wantError: 400,
			wantPaths: []string{"/v2/tickets/OPS-42"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := upstreamtest.New(t)
			up.Set("/v2/tickets/OPS-42", upstreamtest.Response{Body: tc.ticket})
			up.Set("/v2/users/u1", upstreamtest.Response{Body: `{"display_name": "Ann", "team_id": "t1"}`})
			up.Set("/v2/teams/t1", upstreamtest.Response{Body: `{"name": "Ops"}`})
			up.Set("/v2/projects/p1", upstreamtest.Response{Body: `{"name": "Launch"}`})
			p := buildAgainst(t, optionalConfig, up.URL(), "acme")

			r := p.Unfurl(t.Context(), "https://acme.example/t/OPS-42", provider.Credential{}, provider.UnfurlOptions{Trace: true})
			if tc.wantError != 0 {
				require.NotNil(t, r.Error, string(r.Body))
				assert.Equal(t, tc.wantError, r.Error.Status)
			} else {
				require.Nil(t, r.Error, string(r.Body))
				var ids []string
				for _, a := range r.Attributes {
					ids = append(ids, a.ID)
				}
				assert.Equal(t, tc.wantAttrs, ids)
			}
			var paths []string
			for _, rq := range up.Requests() {
				paths = append(paths, rq.Path)
			}
			assert.Equal(t, tc.wantPaths, paths, "a skipped request is never sent")

			var lines []string
			for _, rq := range r.Trace.Requests {
				switch {
				case rq.Skipped != "":
					lines = append(lines, "request "+rq.Name+" skipped: "+rq.Skipped)
				case rq.Error != "":
					lines = append(lines, "request "+rq.Name+" error: "+rq.Error)
				}
			}
			for _, a := range r.Trace.Attributes {
				if a.Missing != "" {
					lines = append(lines, "attribute "+a.ID+" missing: "+a.Missing)
				}
			}
			for _, want := range tc.wantTrace {
				assert.Contains(t, lines, want)
			}
		})
	}
}
