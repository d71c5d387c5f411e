package provider_test

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
)

// webhookProvider names the links of an event's "links" list.
const webhookProvider = `server: {mode: development}
providers:
  - name: hook
    display_name: Hook
    dev: tests
    upstream: {base_url: https://api.hook.example.com}
    live:
      webhook: {secret: a-webhook-secret-of-some-length, header: X-Sig, uris: 'event.links'}
    patterns:
      - name: page
        regex: '^https://hook\.example\.com/(?<id>\d+)$'
        samples: [https://hook.example.com/1]
        requests: [{name: page, url: "/pages/{id}"}]
        attributes: [{id: title, kind: title, value: "T"}]
`

// TestWebhookURIsBound: one event may name up to MaxWebhookURIs distinct
// links (10,000, a bulk change's event, issue 11), in the event's order
// with duplicates and empty links dropped; an event naming more is
// refused whole, so that its 202 never covers links it dropped.
func TestWebhookURIsBound(t *testing.T) {
	t.Parallel()
	cfg, errs := config.Parse("hook.yaml", []byte(webhookProvider), config.LoadOptions{LookupEnv: noEnv})
	require.False(t, errs.HasErrors(), "%v", errs)
	reg, berrs := provider.Build(cfg, provider.Options{})
	require.False(t, berrs.HasErrors(), "%v", berrs)
	t.Cleanup(reg.Close)
	p, ok := reg.Get("hook")
	require.True(t, ok)

	link := func(i int) string { return "https://hook.example.com/" + strconv.Itoa(i) }
	tests := []struct {
		name    string
		links   []any
		want    []string
		wantErr string
	}{
		{"duplicates and empty links dropped", []any{link(1), "", link(2), link(1), nil, link(3)}, []string{link(1), link(2), link(3)}, ""},
		{"ten thousand", nil, nil, ""},
		{"refused past ten thousand", nil, nil, "the event names more than 10000 links; nothing was queued"},
	}
	for i := range 10_000 {
		tests[1].links = append(tests[1].links, link(i), link(i))
		tests[1].want = append(tests[1].want, link(i))
	}
	for i := range 10_050 {
		tests[2].links = append(tests[2].links, link(i))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			event, err := json.Marshal(map[string]any{"links": tc.links})
			require.NoError(t, err)
			got, err := p.WebhookURIs(event)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
