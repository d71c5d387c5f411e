package providers_test

import (
	"io/fs"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/providers"
)

// parseBuiltin loads one built-in provider the way a new user's first
// config does: development mode and an empty environment, so every
// ${VAR:-} falls back to its default. Only the variables that have no
// default (providers.PlaceholderEnv) are set.
func parseBuiltin(t *testing.T, name string) (*config.Config, config.Errors) {
	t.Helper()
	return parseBuiltinEnv(t, name, providers.PlaceholderEnv())
}

// parseBuiltinEnv loads one built-in provider in development mode with
// env as the whole environment.
func parseBuiltinEnv(t *testing.T, name string, env map[string]string) (*config.Config, config.Errors) {
	t.Helper()
	src := "server: {mode: development}\nproviders:\n  - include: builtin:" + name + "\n"
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	return config.Parse("builtin.yaml", []byte(src), config.LoadOptions{LookupEnv: lookup, Builtins: providers.FS()})
}

func TestNames(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []string{"asana", "bitbucket", "clickup", "confluence", "figma", "github", "github-oauth", "gitlab", "jira", "linear", "pagerduty", "sentry", "shortcut", "stackoverflow", "trello", "zendesk"}, providers.Names())
	// One definition per service: github-oauth is github's oauth variant,
	// with no file of its own; every other name is a file.
	for _, n := range providers.Names() {
		_, err := fs.Stat(providers.FS(), n+".yaml")
		if n == "github-oauth" {
			assert.ErrorIs(t, err, fs.ErrNotExist, "github-oauth is a variant of github.yaml, not a copy")
			continue
		}
		assert.NoError(t, err, "Names lists %s, FS must hold %s.yaml", n, n)
	}
}

// TestBuiltinsLoad checks that every built-in provider decodes and
// validates without a problem (warnings included), that its name matches
// its file name (include: builtin:NAME relies on it), and that it compiles:
// regexes (RE2, no lookaround: TH-35), each sample matching its own pattern
// and no other, negative samples, URL templates (TH-29, TH-30) and every
// expression (TH-34).
func TestBuiltinsLoad(t *testing.T) {
	t.Parallel()
	for _, name := range providers.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, errs := parseBuiltin(t, name)
			require.Empty(t, errs, "config problems:\n%v", errs)
			require.NotNil(t, cfg)
			require.Len(t, cfg.Providers, 1)
			p := cfg.Providers[0]
			assert.Equal(t, name, p.Name, "the file name is the builtin name")
			assert.NotEmpty(t, p.Notion.Domain)

			comp, berrs := compiled.Compile(cfg, compiled.Options{})
			require.Empty(t, berrs, "build problems:\n%v", berrs)
			require.NotNil(t, comp)
			t.Cleanup(comp.Registry.Close)
		})
	}
}

// TestBuiltinsHardening pins choices each built-in provider must keep: every
// pattern is anchored and has negative samples and a placeholder, and the
// upstream is https with no credential unless the environment supplies one
// (TH-29, TH-31, TH-35, TH-53).
func TestBuiltinsHardening(t *testing.T) {
	t.Parallel()
	for _, name := range providers.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, errs := parseBuiltin(t, name)
			require.False(t, errs.HasErrors(), "%v", errs)
			p := cfg.Providers[0]
			assert.True(t, strings.HasPrefix(p.Upstream.BaseURL, "https://"), "base_url is https")
			assert.True(t, p.Upstream.Auth.Token.IsZero(), "no token without the environment")
			assert.True(t, p.Notion.ClientSecret.IsZero(), "no Notion secret without the environment")
			for _, pt := range p.Patterns {
				assert.True(t, strings.HasPrefix(pt.Regex, "^") && strings.HasSuffix(pt.Regex, "$"), "%s: regex anchored", pt.Name)
				assert.NotEmpty(t, pt.NegativeSamples, "%s: negative samples", pt.Name)
				assert.NotEmpty(t, pt.Placeholder, "%s: placeholder", pt.Name)
			}
		})
	}
}

// TestBuiltinsUseEnvironment checks that the documented variables reach the
// provider, so the comments at the top of each file stay true. Only the
// auth-none provider has a service-wide token; per-user providers get
// their credentials from each connection, github-oauth and zendesk their
// upstream app from <NAME>_CLIENT_ID and <NAME>_CLIENT_SECRET, and the
// per-customer hosts (jira, confluence, zendesk) reach the base URL, the
// Notion domain and the patterns.
func TestBuiltinsUseEnvironment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		authType string
		token    string // service-wide token variable, auth none only
		oauthApp string // <oauthApp>_CLIENT_ID/SECRET reach upstream.auth.oauth2
		site     string // the variable naming the customer's host
		host     string // the host it gives with site set to "acme"
		appKey   string // the variable reaching upstream.auth.secrets.app_key
	}{
		{name: "asana", authType: config.AuthAPIKey},
		{name: "bitbucket", authType: config.AuthAPIKey},
		{name: "confluence", authType: config.AuthAPIKey, site: "CONFLUENCE_SITE", host: "acme.atlassian.net"},
		{name: "github", authType: config.AuthNone, token: "GITHUB_TOKEN"},
		{name: "github-oauth", authType: config.AuthOAuth2, oauthApp: "GITHUB"},
		{name: "gitlab", authType: config.AuthAPIKey},
		{name: "jira", authType: config.AuthAPIKey, site: "JIRA_SITE", host: "acme.atlassian.net"},
		{name: "linear", authType: config.AuthAPIKey},
		{name: "shortcut", authType: config.AuthAPIKey},
		{name: "pagerduty", authType: config.AuthAPIKey},
		{name: "clickup", authType: config.AuthAPIKey},
		{name: "zendesk", authType: config.AuthOAuth2, oauthApp: "ZENDESK", site: "ZENDESK_SUBDOMAIN", host: "acme.zendesk.com"},
		{name: "figma", authType: config.AuthAPIKey},
		{name: "sentry", authType: config.AuthAPIKey},
		{name: "stackoverflow", authType: config.AuthNone},
		{name: "trello", authType: config.AuthAPIKey, appKey: "TRELLO_APP_KEY"},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix := strings.ToUpper(strings.ReplaceAll(tc.name, "-", "_")) + "_NOTION_"
			env := map[string]string{
				prefix + "CLIENT_SECRET":      "pair-a-secret-0123456789abcdefghijkl",
				prefix + "INTEGRATION_ID":     "pair-b-id",
				prefix + "INTEGRATION_SECRET": "pair-b-secret-0123456789abcdefghijk",
			}
			if tc.token != "" {
				env[tc.token] = "upstream-token"
			}
			if tc.oauthApp != "" {
				env[tc.oauthApp+"_CLIENT_ID"] = "app-client-id"
				env[tc.oauthApp+"_CLIENT_SECRET"] = "app-client-secret"
			}
			if tc.site != "" {
				env[tc.site] = "acme"
			}
			if tc.appKey != "" {
				env[tc.appKey] = "app-key-0123"
			}
			cfg, errs := parseBuiltinEnv(t, tc.name, env)
			require.False(t, errs.HasErrors(), "%v", errs)
			p := cfg.Providers[0]
			assert.Equal(t, tc.authType, p.Upstream.Auth.Type)
			if tc.token != "" {
				assert.Equal(t, "upstream-token", p.Upstream.Auth.Token.Reveal())
			} else {
				assert.True(t, p.Upstream.Auth.Token.IsZero(), "a per-user provider has no service-wide token")
			}
			if tc.appKey != "" {
				// An operator secret: read by upstream.auth.value only,
				// and by the token link the form shows.
				assert.Equal(t, "app-key-0123", p.Upstream.Auth.Secrets["app_key"].Reveal())
				assert.Contains(t, p.Upstream.Auth.APIKey.HelpURL, "key=app-key-0123")
			}
			if tc.oauthApp != "" {
				assert.Equal(t, "app-client-id", p.Upstream.Auth.OAuth2.ClientID)
				assert.Equal(t, "app-client-secret", p.Upstream.Auth.OAuth2.ClientSecret.Reveal())
			}
			if tc.site != "" {
				// One customer host everywhere, so a link to another
				// customer's site never reaches this one's API with this
				// one's credentials (TH-27, TH-30).
				assert.Equal(t, tc.host, p.Notion.Domain)
				assert.True(t, strings.HasPrefix(p.Upstream.BaseURL, "https://"+tc.host+"/") || p.Upstream.BaseURL == "https://"+tc.host, p.Upstream.BaseURL)
				for _, pt := range p.Patterns {
					assert.Contains(t, pt.Regex, strings.ReplaceAll(tc.host, ".", `\.`), "%s: the regex pins the host", pt.Name)
					for _, s := range pt.Samples {
						assert.True(t, strings.HasPrefix(s, "https://"+tc.host+"/") || strings.HasPrefix(s, "http://"+tc.host+"/"), s)
					}
				}
				if a := p.Upstream.Auth.OAuth2; a.TokenURL != "" {
					assert.True(t, strings.HasPrefix(a.TokenURL, "https://"+tc.host+"/"), a.TokenURL)
					assert.True(t, strings.HasPrefix(a.AuthorizeURL, "https://"+tc.host+"/"), a.AuthorizeURL)
				}
			}
			assert.Equal(t, env[prefix+"CLIENT_SECRET"], p.Notion.ClientSecret.Reveal())
			assert.Equal(t, "pair-b-id", p.Notion.IntegrationClientID)
			assert.Equal(t, env[prefix+"INTEGRATION_SECRET"], p.Notion.IntegrationClientSecret.Reveal())
		})
	}
	for _, n := range providers.Names() {
		assert.True(t, covered[n], "builtin %s has no row here", n)
	}
}

// TestBuiltinsWithoutEnvironment loads each built-in provider with nothing
// exported. Only the upstream apps (github-oauth, zendesk, trello) and the
// customer's own host (jira, confluence, zendesk: no default, so that
// credentials never go to a guessed site) are required, and they are
// named at once (config problems all reported together, STYLE.md 2);
// every other builtin loads, as config.example.yaml relies on. It also
// keeps PlaceholderEnv exact: no more variables than a builtin requires.
func TestBuiltinsWithoutEnvironment(t *testing.T) {
	t.Parallel()
	required := map[string][]string{
		"github-oauth": {"GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET"},
		"jira":         {"JIRA_SITE"},
		"confluence":   {"CONFLUENCE_SITE"},
		"zendesk":      {"ZENDESK_SUBDOMAIN", "ZENDESK_CLIENT_ID", "ZENDESK_CLIENT_SECRET"},
		"trello":       {"TRELLO_APP_KEY"},
	}
	var all []string
	for _, n := range providers.Names() {
		t.Run(n, func(t *testing.T) {
			t.Parallel()
			_, errs := parseBuiltinEnv(t, n, nil)
			want := required[n]
			if len(want) == 0 {
				require.False(t, errs.HasErrors(), "%v", errs)
				return
			}
			require.True(t, errs.HasErrors())
			msg := errs.Error()
			for _, v := range want {
				assert.Contains(t, msg, "environment variable "+v+" is not set")
			}
			assert.Equal(t, len(want), strings.Count(msg, "is not set"), "only %v are required: %s", want, msg)
		})
		all = append(all, required[n]...)
	}
	env := providers.PlaceholderEnv()
	assert.Len(t, env, len(all))
	for _, v := range all {
		assert.NotEmpty(t, env[v], "PlaceholderEnv sets %s", v)
	}
}

// TestGitHubOAuthVariant: builtin:github-oauth is github.yaml with its
// oauth variant laid over it. Everything but the sign-in, the Notion
// credentials and the webhook secret comes from the one definition, and the
// service-wide token is cleared, so a GITHUB_TOKEN in the environment never
// goes out on a signed-in user's requests.
func TestGitHubOAuthVariant(t *testing.T) {
	t.Parallel()
	env := providers.PlaceholderEnv()
	env["GITHUB_TOKEN"] = "ghp_service-wide-token"
	base, errs := parseBuiltinEnv(t, "github", env)
	require.False(t, errs.HasErrors(), "%v", errs)
	oauth, errs := parseBuiltinEnv(t, "github-oauth", env)
	require.False(t, errs.HasErrors(), "%v", errs)
	g, o := base.Providers[0], oauth.Providers[0]

	assert.Equal(t, g.Patterns, o.Patterns)
	assert.Len(t, o.Patterns, 8, "the new kinds reach both ways in")
	assert.Equal(t, g.Errors, o.Errors)
	assert.Equal(t, g.DisplayName, o.DisplayName)
	assert.Equal(t, g.Notion.Domain, o.Notion.Domain)
	gu, ou := g.Upstream, o.Upstream
	// The token URL's host is allowed for outbound calls by default, so
	// only github-oauth has github.com.
	assert.ElementsMatch(t, append(slices.Clone(gu.AllowedHosts), "github.com"), ou.AllowedHosts)
	gu.Auth, ou.Auth = config.Auth{}, config.Auth{}
	gu.AllowedHosts, ou.AllowedHosts = nil, nil
	assert.Equal(t, gu, ou, "upstream settings besides auth")

	assert.Equal(t, config.AuthNone, g.Upstream.Auth.Type)
	assert.Equal(t, "ghp_service-wide-token", g.Upstream.Auth.Token.Reveal())
	assert.Equal(t, config.AuthOAuth2, o.Upstream.Auth.Type)
	assert.Empty(t, o.Upstream.Auth.Token.Reveal(), "the variant clears the service-wide token")
	assert.Equal(t, "https://github.com/login/oauth/authorize", o.Upstream.Auth.OAuth2.AuthorizeURL)
	assert.Equal(t, "https://github.com/login/oauth/access_token", o.Upstream.Auth.OAuth2.TokenURL)
	assert.Equal(t, []string{"repo", "read:user"}, o.Upstream.Auth.OAuth2.Scopes)
	assert.False(t, o.Upstream.Auth.OAuth2.DisablePKCE, "PKCE stays on (TH-06)")
	assert.Empty(t, g.Upstream.Auth.OAuth2.TokenURL, "the variant does not leak into the base")
}

// TestPagerDutyRegion: PAGERDUTY_API_URL moves the API to another service
// region (EU accounts), and the credential goes only there (TH-27); without
// it the API is the US one.
func TestPagerDutyRegion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, env, wantBase, wantHost string
	}{
		{name: "default", wantBase: "https://api.pagerduty.com", wantHost: "api.pagerduty.com"},
		{name: "eu", env: "https://api.eu.pagerduty.com", wantBase: "https://api.eu.pagerduty.com", wantHost: "api.eu.pagerduty.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := providers.PlaceholderEnv()
			if env == nil {
				env = map[string]string{}
			}
			if tc.env != "" {
				env["PAGERDUTY_API_URL"] = tc.env
			}
			cfg, errs := parseBuiltinEnv(t, "pagerduty", env)
			require.False(t, errs.HasErrors(), "%v", errs)
			u := cfg.Providers[0].Upstream
			assert.Equal(t, tc.wantBase, u.BaseURL)
			assert.Equal(t, []string{tc.wantHost}, u.AllowedHosts)
		})
	}
}

// TestPagerDutyAnyTenant: every account's own subdomain is served (the
// builtin sets notion.subdomains), not only the hosts of its samples,
// and a look-alike host is not (TH-28).
func TestPagerDutyAnyTenant(t *testing.T) {
	t.Parallel()
	p := buildBuiltin(t, "pagerduty", providers.PlaceholderEnv())
	for _, uri := range []string{
		"https://othertenant.pagerduty.com/incidents/Q2ABCDE",
		"https://othertenant.eu.pagerduty.com/incidents/Q2ABCDE",
	} {
		m, err := p.Match(uri)
		require.NoError(t, err, uri)
		assert.Equal(t, "Q2ABCDE", m.Groups["id"], uri)
	}
	_, err := p.Match("https://othertenant.pagerduty.com.evil.example/incidents/Q2ABCDE")
	assert.Error(t, err)
}

// TestBuiltinRevocation: builtins whose users sign in with OAuth revoke
// the grant at the upstream when the connection is deleted (TH-40), with
// the endpoint's host allowed; API-key and public builtins have no grant
// of ours to revoke and declare nothing.
func TestBuiltinRevocation(t *testing.T) {
	t.Parallel()
	want := map[string]config.Revocation{
		"github-oauth": {URL: "https://api.github.com/applications/{client_id}/grant", Style: config.RevocationGitHubGrant},
	}
	for _, n := range providers.Names() {
		t.Run(n, func(t *testing.T) {
			cfg, errs := parseBuiltinEnv(t, n, providers.PlaceholderEnv())
			require.False(t, errs.HasErrors(), "%v", errs)
			require.Len(t, cfg.Providers, 1)
			up := cfg.Providers[0].Upstream
			rev := up.Auth.OAuth2.Revocation
			assert.Equal(t, want[n], rev)
			if rev.URL != "" {
				assert.Equal(t, config.AuthOAuth2, up.Auth.Type)
				u, err := url.Parse(rev.URL)
				require.NoError(t, err)
				assert.Contains(t, up.AllowedHosts, u.Host)
			}
		})
	}
}
