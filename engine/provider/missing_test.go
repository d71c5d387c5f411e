package provider_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
)

// TestTraceNamesMissingField: in a trace (preview --trace, fixtures, the
// lab), an attribute whose path or expression finds nothing in the
// response says which part is absent and lists the nearest fields that
// exist, instead of a bare "value is empty".
func TestTraceNamesMissingField(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"title": "Fix it", "assignees": [{"login": "ann"}], "milestone": null, "state": "open"}`))
	}))
	t.Cleanup(up.Close)
	src := strings.ReplaceAll(`
server: {mode: development}
providers:
  - name: acme
    upstream: {base_url: UPSTREAM, allow_private_networks: true}
    patterns:
      - name: item
        regex: '^https://acme\.example/items/(?<id>\d+)$'
        samples: [https://acme.example/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: title}
          - {id: owner, kind: plain_text, path: asignees.0.login}
          - {id: due, kind: plain_text, expr: 'default(item.milestone.due_on, "")'}
          - {id: state, kind: enum, path: state}
`, "UPSTREAM", up.URL)
	cfg, errs := config.Parse("missing.yaml", []byte(src), config.LoadOptions{LookupEnv: noEnv})
	require.False(t, errs.HasErrors(), "%v", errs)
	reg, berrs := provider.Build(cfg, provider.Options{})
	require.False(t, berrs.HasErrors(), "%v", berrs)
	t.Cleanup(reg.Close)
	p, _ := reg.Get("acme")

	r := p.Unfurl(t.Context(), "https://acme.example/items/1", provider.Credential{}, provider.UnfurlOptions{Trace: true})
	require.Nil(t, r.Error, string(r.Body))
	missing := map[string]string{}
	for _, a := range r.Trace.Attributes {
		if a.Missing != "" {
			missing[a.ID] = a.Missing
		}
	}
	assert.Equal(t, map[string]string{
		"owner": `value is empty: item has no field "asignees" (did you mean "assignees"?); its fields: "assignees", "state", "title", "milestone"`,
		"due":   `value is empty: item.milestone is null`,
	}, missing)
}
