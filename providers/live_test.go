package providers_test

import (
	"maps"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
		"jira": "JIRA_WEBHOOK_SECRET", "bitbucket": "BITBUCKET_WEBHOOK_SECRET",
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
		{"github", "ping", `{"zen":"Keep it logically awesome.","hook_id":1}`, nil},
		{"gitlab", "issue", `{"object_kind":"issue","object_attributes":{"iid":3,"url":"https://gitlab.com/grp/sub/app/-/issues/3"}}`,
			[]string{"https://gitlab.com/grp/sub/app/-/issues/3"}},
		{"gitlab", "merge request", `{"object_kind":"merge_request","object_attributes":{"url":"https://gitlab.com/grp/app/-/merge_requests/12"}}`,
			[]string{"https://gitlab.com/grp/app/-/merge_requests/12"}},
		{"gitlab", "comment", `{"object_kind":"note","object_attributes":{"url":"https://gitlab.com/grp/app/-/issues/3#note_99"}}`,
			[]string{"https://gitlab.com/grp/app/-/issues/3"}},
		{"gitlab", "push", `{"object_kind":"push","ref":"refs/heads/main"}`, nil},
		{"linear", "issue", `{"action":"update","type":"Issue","url":"https://linear.app/acme/issue/ENG-123/crash-on-save","data":{"identifier":"ENG-123","url":"https://linear.app/acme/issue/ENG-123/crash-on-save"}}`,
			[]string{"https://linear.app/acme/issue/ENG-123"}},
		{"linear", "comment", `{"action":"create","type":"Comment","url":"https://linear.app/acme/issue/ENG-123/crash-on-save#comment-5f1c2a9b","data":{"body":"x"}}`,
			[]string{"https://linear.app/acme/issue/ENG-123"}},
		{"linear", "project", `{"action":"update","type":"Project","url":"https://linear.app/acme/project/mobile-app-redesign-3f2a1b9c8d7e","data":{}}`,
			[]string{"https://linear.app/acme/project/mobile-app-redesign-3f2a1b9c8d7e"}},
		{"linear", "no url", `{"action":"remove","type":"IssueLabel","data":{"id":"x"}}`, nil},
		// Jira events name the issue by key; the link is built on the
		// configured site (PlaceholderEnv: your-domain).
		{"jira", "issue updated", `{"timestamp":1710771729517,"webhookEvent":"jira:issue_updated","issue_event_type_name":"issue_generic","issue":{"id":"10002","self":"https://your-domain.atlassian.net/rest/api/2/10002","key":"ED-1","fields":{"summary":"Main order flow broken"}}}`,
			[]string{"https://your-domain.atlassian.net/browse/ED-1"}},
		{"jira", "comment created", `{"webhookEvent":"comment_created","comment":{"id":"10020","body":"x"},"issue":{"id":"10002","key":"ED-1"}}`,
			[]string{"https://your-domain.atlassian.net/browse/ED-1"}},
		{"jira", "project created", `{"webhookEvent":"project_created","project":{"id":10000,"key":"ED"}}`, nil},
		{"bitbucket", "pull request updated", `{"actor":{"display_name":"Emma Richards"},"pullrequest":{"id":42,"title":"Cache deps","state":"OPEN","links":{"html":{"href":"https://bitbucket.org/atlassian/bitbucket-pipelines/pull-requests/42"}}},"repository":{"full_name":"atlassian/bitbucket-pipelines"}}`,
			[]string{"https://bitbucket.org/atlassian/bitbucket-pipelines/pull-requests/42"}},
		{"bitbucket", "push", `{"push":{"changes":[]},"repository":{"full_name":"atlassian/bitbucket-pipelines"}}`, nil},
	}
	built := map[string]*provider.Provider{}
	for _, name := range []string{"github", "gitlab", "linear", "jira", "bitbucket"} {
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
	reg, berrs := provider.Build(cfg, provider.Options{})
	require.False(t, berrs.HasErrors(), "%v", berrs)
	t.Cleanup(reg.Close)
	p, ok := reg.Get(name)
	require.True(t, ok)
	return p
}
