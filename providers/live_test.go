package providers_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/providers"
)

// TestBuiltinsLiveDefaults: with nothing exported, every built-in polls
// (every 10 minutes, within 3600 requests an hour) and serves no webhook;
// its webhook secret comes from the environment only (TH-53), and setting
// it turns the route on.
func TestBuiltinsLiveDefaults(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{
		"github": "GITHUB_WEBHOOK_SECRET", "gitlab": "GITLAB_WEBHOOK_SECRET", "linear": "LINEAR_WEBHOOK_SECRET",
		"shortcut": "SHORTCUT_WEBHOOK_SECRET", "pagerduty": "PAGERDUTY_WEBHOOK_SECRET", "clickup": "CLICKUP_WEBHOOK_SECRET",
		"jira": "JIRA_WEBHOOK_SECRET", "bitbucket": "BITBUCKET_WEBHOOK_SECRET",
		"sentry": "SENTRY_WEBHOOK_SECRET",
	}
	for name, env := range secrets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := buildBuiltin(t, name, providers.PlaceholderEnv())
			live := p.Config.Live
			assert.True(t, live.IsEnabled())
			assert.Equal(t, "10m0s", live.PollInterval.D().String())
			assert.Equal(t, 3600, live.MaxRequestsPerHour)
			assert.False(t, p.HasWebhook(), "no secret, no webhook route")

			withSecret := maps.Clone(providers.PlaceholderEnv())
			if withSecret == nil {
				withSecret = map[string]string{}
			}
			withSecret[env] = "a-webhook-secret-of-some-length"
			p = buildBuiltin(t, name, withSecret)
			assert.True(t, p.HasWebhook())
			assert.Equal(t, config.Secret("a-webhook-secret-of-some-length"), p.Config.Live.Webhook.Secret)
		})
	}
}

// TestBuiltinWebhookURIs maps sample events of each upstream (shapes from
// their webhook documentation, trimmed) to the links to refresh; every
// link must name an object one of the provider's patterns matches.
func TestBuiltinWebhookURIs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		provider, name, event string
		want                  []string
	}{
		{"github", "issues", `{"action":"closed","issue":{"number":7,"html_url":"https://github.com/octo/hello/issues/7"},"repository":{"html_url":"https://github.com/octo/hello"}}`,
			[]string{"https://github.com/octo/hello/issues/7"}},
		{"github", "issue comment on a pull request", `{"action":"created","issue":{"html_url":"https://github.com/octo/hello/pull/8","pull_request":{}},"comment":{"html_url":"https://github.com/octo/hello/pull/8#issuecomment-1"}}`,
			[]string{"https://github.com/octo/hello/pull/8"}},
		{"github", "pull request", `{"action":"closed","pull_request":{"html_url":"https://github.com/octo/hello/pull/8","merged":true}}`,
			[]string{"https://github.com/octo/hello/pull/8"}},
		{"github", "discussion comment", `{"action":"created","discussion":{"number":90,"html_url":"https://github.com/octo/hello/discussions/90"},"comment":{"html_url":"https://github.com/octo/hello/discussions/90#discussioncomment-1"}}`,
			[]string{"https://github.com/octo/hello/discussions/90"}},
		{"github", "release", `{"action":"published","release":{"tag_name":"v1.0.0","html_url":"https://github.com/octo/hello/releases/tag/v1.0.0"}}`,
			[]string{"https://github.com/octo/hello/releases/tag/v1.0.0"}},
		{"github", "workflow run", `{"action":"completed","workflow_run":{"id":30433642,"html_url":"https://github.com/octo/hello/actions/runs/30433642","conclusion":"success"}}`,
			[]string{"https://github.com/octo/hello/actions/runs/30433642"}},
		{"github", "ping", `{"zen":"Keep it logically awesome.","hook_id":1}`, nil},
		{"gitlab", "issue", `{"object_kind":"issue","object_attributes":{"iid":3,"url":"https://gitlab.com/grp/sub/app/-/issues/3"}}`,
			[]string{"https://gitlab.com/grp/sub/app/-/issues/3"}},
		{"gitlab", "merge request", `{"object_kind":"merge_request","object_attributes":{"url":"https://gitlab.com/grp/app/-/merge_requests/12"}}`,
			[]string{"https://gitlab.com/grp/app/-/merge_requests/12"}},
		{"gitlab", "comment", `{"object_kind":"note","object_attributes":{"url":"https://gitlab.com/grp/app/-/issues/3#note_99"}}`,
			[]string{"https://gitlab.com/grp/app/-/issues/3"}},
		{"gitlab", "pipeline", `{"object_kind":"pipeline","object_attributes":{"id":31,"ref":"main","status":"success","url":"https://gitlab.com/grp/app/-/pipelines/31"}}`,
			[]string{"https://gitlab.com/grp/app/-/pipelines/31"}},
		{"gitlab", "push", `{"object_kind":"push","ref":"refs/heads/main"}`, nil},
		{"linear", "issue", `{"action":"update","type":"Issue","url":"https://linear.app/acme/issue/ENG-123/crash-on-save","data":{"identifier":"ENG-123","url":"https://linear.app/acme/issue/ENG-123/crash-on-save"}}`,
			[]string{"https://linear.app/acme/issue/ENG-123"}},
		{"linear", "comment", `{"action":"create","type":"Comment","url":"https://linear.app/acme/issue/ENG-123/crash-on-save#comment-5f1c2a9b","data":{"body":"x"}}`,
			[]string{"https://linear.app/acme/issue/ENG-123"}},
		{"linear", "project", `{"action":"update","type":"Project","url":"https://linear.app/acme/project/mobile-app-redesign-3f2a1b9c8d7e","data":{}}`,
			[]string{"https://linear.app/acme/project/mobile-app-redesign-3f2a1b9c8d7e"}},
		{"linear", "no url", `{"action":"remove","type":"IssueLabel","data":{"id":"x"}}`, nil},
		{"shortcut", "story update", `{"id":"595285dc-9c43-4b9c-a1e6-0cd9aff5b084","changed_at":"2023-08-10T21:49:43Z","version":"v1","primary_id":32,"actions":[{"id":32,"entity_type":"story","action":"update","name":"Test1","story_type":"feature","app_url":"https://app.shortcut.com/acme/story/32","changes":{"workflow_state_id":{"new":500000010,"old":500000006}}}]}`,
			[]string{"https://app.shortcut.com/acme/story/32"}},
		{"shortcut", "story with slug and comment", `{"version":"v1","actions":[{"id":33,"entity_type":"story","action":"update","app_url":"https://app.shortcut.com/acme/story/33/release-notes"},{"id":90,"entity_type":"story-comment","action":"create","app_url":"https://app.shortcut.com/acme/story/33/release-notes#activity-90"}]}`,
			[]string{"https://app.shortcut.com/acme/story/33"}},
		{"shortcut", "epic", `{"version":"v1","actions":[{"id":7,"entity_type":"epic","action":"update","app_url":"https://app.shortcut.com/acme/epic/7"}]}`, nil},
		{"pagerduty", "incident acknowledged", `{"event":{"id":"01BRFC9Q0XDR0ABSGXF71G7P1U","event_type":"incident.acknowledged","resource_type":"incident","occurred_at":"2020-10-02T18:45:22.169Z","data":{"id":"PGR0VU2","type":"incident","self":"https://api.pagerduty.com/incidents/PGR0VU2","html_url":"https://acme.pagerduty.com/incidents/PGR0VU2","number":2,"status":"acknowledged","title":"A little bump in the road"}}}`,
			[]string{"https://acme.pagerduty.com/incidents/PGR0VU2"}},
		{"pagerduty", "incident annotated", `{"event":{"id":"01BRFCAL7SE3WB4PH5ZGHAPVLZ","event_type":"incident.annotated","resource_type":"incident","data":{"incident":{"html_url":"https://acme.pagerduty.com/incidents/PGR0VU2","id":"PGR0VU2","self":"https://api.pagerduty.com/incidents/PGR0VU2","summary":"A little bump in the road","type":"incident_reference"},"id":"P8DIPNB","content":"Going to restart the server.","type":"incident_note"}}}`,
			[]string{"https://acme.pagerduty.com/incidents/PGR0VU2"}},
		{"pagerduty", "service updated", `{"event":{"event_type":"service.updated","resource_type":"service","data":{"id":"PF9KMXH","type":"service","html_url":"https://acme.pagerduty.com/service-directory/PF9KMXH"}}}`, nil},
		{"pagerduty", "ping", `{"event":{"id":"5ac64822-4adc-4fda-ade0-410becf0de4f","event_type":"pagey.ping","resource_type":"pagey","data":{"message":"Hello from your friend Pagey!","type":"ping"}}}`, nil},
		{"clickup", "task status updated", `{"event":"taskStatusUpdated","history_items":[{"id":"2800787326486798749","type":1,"field":"status"}],"task_id":"1vj37mc","webhook_id":"7fa3ec74-69a8-4530-a251-8a13730bd204"}`,
			[]string{"https://app.clickup.com/t/1vj37mc"}},
		{"clickup", "list created", `{"event":"listCreated","history_items":[],"list_id":"162641285","webhook_id":"7fa3ec74-69a8-4530-a251-8a13730bd204"}`, nil},
		// Sentry's "issue" webhook (Sentry-Hook-Resource: issue): the
		// sentry.io form of the link, whichever form web_url names.
		{"sentry", "issue resolved", `{"action":"resolved","installation":{"uuid":"7a485448-a9e2-4c85-8a3c-4f44175783c9"},"data":{"issue":{"id":"1170820242","shortId":"FRONTEND-1","url":"https://sentry.io/api/0/issues/1170820242/","web_url":"https://sentry.io/organizations/example/issues/1170820242/","project_url":"https://sentry.io/organizations/example/issues/?project=1","status":"resolved"}},"actor":{"type":"user","id":1,"name":"Jane Doe"}}`,
			[]string{"https://sentry.io/organizations/example/issues/1170820242/"}},
		{"sentry", "issue on the org subdomain", `{"action":"created","data":{"issue":{"id":"4509301234","web_url":"https://acme.sentry.io/issues/4509301234/"}}}`,
			[]string{"https://sentry.io/organizations/acme/issues/4509301234/"}},
		{"sentry", "installation", `{"action":"created","data":{"installation":{"uuid":"7a485448-a9e2-4c85-8a3c-4f44175783c9"}}}`, nil},
		{"sentry", "issue without a link", `{"action":"created","data":{"issue":{"id":"1"}}}`, nil},
	}
	built := map[string]*provider.Provider{}
	for _, name := range []string{"github", "gitlab", "linear", "shortcut", "pagerduty", "clickup", "jira", "bitbucket", "sentry"} {
		built[name] = buildBuiltin(t, name, providers.PlaceholderEnv())
	}
	for _, tc := range tests {
		t.Run(tc.provider+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			p := built[tc.provider]
			got, err := p.WebhookURIs([]byte(tc.event))
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			for _, uri := range got {
				_, err := p.Match(uri)
				assert.NoError(t, err, "%s matches no pattern", uri)
			}
		})
	}
}

// buildBuiltin compiles one built-in provider with env as the environment.
func buildBuiltin(t *testing.T, name string, env map[string]string) *provider.Provider {
	t.Helper()
	cfg, errs := parseBuiltinEnv(t, name, env)
	require.False(t, errs.HasErrors(), "%v", errs)
	comp, berrs := compiled.Compile(cfg, compiled.Options{})
	require.NotNil(t, comp, "%v", berrs)
	reg := comp.Registry
	t.Cleanup(reg.Close)
	p, ok := reg.Get(name)
	require.True(t, ok)
	return p
}

// TestBuiltinWebhookSignatures pins each built-in's webhook verification to
// what its vendor documents: the header, the HMAC (or token), the encoding
// and any text before the signature. A wrong one would answer every real
// delivery 401, and nothing else would notice.
func TestBuiltinWebhookSignatures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		provider, header, algorithm, prefix, encoding string
	}{
		{"github", "X-Hub-Signature-256", config.WebhookHMACSHA256, "sha256=", "hex"},
		{"gitlab", "X-Gitlab-Token", config.WebhookToken, "", "hex"},
		{"linear", "Linear-Signature", config.WebhookHMACSHA256, "", "hex"},
		// Shortcut: Payload-Signature, hex HMAC-SHA256 of the body.
		{"shortcut", "Payload-Signature", config.WebhookHMACSHA256, "", "hex"},
		// PagerDuty v3: X-PagerDuty-Signature, "v1=" and hex HMAC-SHA256.
		{"pagerduty", "X-PagerDuty-Signature", config.WebhookHMACSHA256, "v1=", "hex"},
		// ClickUp: X-Signature, hex HMAC-SHA256 of the body.
		{"clickup", "X-Signature", config.WebhookHMACSHA256, "", "hex"},
		// Sentry integrations: Sentry-Hook-Signature, hex HMAC-SHA256 of
		// the body with the integration's client secret.
		{"sentry", "Sentry-Hook-Signature", config.WebhookHMACSHA256, "", "hex"},
	}
	for _, tc := range tests {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			// The settings take their defaults once a secret is set.
			env := maps.Clone(providers.PlaceholderEnv())
			if env == nil {
				env = map[string]string{}
			}
			env[strings.ToUpper(tc.provider)+"_WEBHOOK_SECRET"] = "a-webhook-secret-of-some-length"
			cfg, errs := parseBuiltinEnv(t, tc.provider, env)
			require.False(t, errs.HasErrors(), "%v", errs)
			w := cfg.Providers[0].Live.Webhook
			assert.Equal(t, tc.header, w.Header)
			assert.Equal(t, tc.algorithm, w.Algorithm)
			assert.Equal(t, tc.prefix, w.Prefix)
			assert.Equal(t, tc.encoding, w.Encoding)
		})
	}
}

// TestBuiltinsPollOnly: the providers whose upstream has no webhook a
// header signature can verify (public registries, Stack Exchange, Figma's
// passcode-in-body webhooks) serve no webhook route whatever the
// environment, and poll more gently than the default (10m, 3600 an hour),
// within what each upstream allows anonymous clients.
func TestBuiltinsPollOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		interval    string
		maxRequests int
	}{
		{name: "figma", interval: "30m0s", maxRequests: 600},
		// 10 an hour keeps a day under the API's keyless quota of 300.
		{name: "stackoverflow", interval: "6h0m0s", maxRequests: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := buildBuiltin(t, tc.name, providers.PlaceholderEnv())
			live := p.Config.Live
			assert.True(t, live.IsEnabled())
			assert.Equal(t, tc.interval, live.PollInterval.D().String())
			assert.Equal(t, tc.maxRequests, live.MaxRequestsPerHour)
			assert.True(t, live.Webhook.Secret.IsZero(), "no webhook secret to set")
			assert.Empty(t, live.Webhook.URIs)
			assert.False(t, p.HasWebhook())
		})
	}
}
