package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSetDefaults(t *testing.T) {
	t.Parallel()
	c := &Config{
		Server: Server{Mode: ModeDevelopment},
		Providers: []Provider{{
			Name:     "github",
			Upstream: Upstream{BaseURL: "https://API.github.com:8443/v3"},
			Patterns: []Pattern{{
				Name:     "issue",
				Samples:  []string{"https://www.GitHub.com/a/b/issues/1"},
				Requests: []Request{{Name: "issue", Method: "post"}, {Name: "other"}},
				Attributes: []Attribute{
					{ID: "title", Kind: KindTitle, Path: "title"},
					{ID: "state", Kind: KindEnum, Expr: "issue.state", MaxLength: 10},
				},
				Placeholder: []PlaceholderAttribute{{ID: "number", Kind: KindPlainText}},
			}},
		}},
	}
	c.SetDefaults()

	s := c.Server
	assert.Equal(t, ":8080", s.Listen)
	assert.Equal(t, "http://localhost:8080", s.PublicURL)
	assert.Equal(t, 5*time.Second, s.ReadHeaderTimeout.D())
	assert.Equal(t, 10*time.Second, s.ReadTimeout.D())
	assert.Equal(t, 30*time.Second, s.WriteTimeout.D())
	assert.Equal(t, 120*time.Second, s.IdleTimeout.D())
	assert.Equal(t, 15*time.Second, s.ShutdownTimeout.D())
	assert.Equal(t, ByteSize(16<<10), s.MaxHeaderBytes)
	assert.Equal(t, ByteSize(64<<10), s.UnfurlBodyLimit)
	assert.Equal(t, 8*time.Second, s.UnfurlTimeout.D())
	assert.Equal(t, 200, s.UnfurlErrorStatus)
	assert.Equal(t, 256, s.MaxConcurrentUpstream)
	assert.Equal(t, 1024, s.MaxConnections)
	assert.Empty(t, s.TrustedProxies)
	assert.Equal(t, Log{Level: "info", Format: "text"}, s.Log)
	assert.Equal(t, Storage{Driver: "bolt", Path: "./data/unfurld.db", LockTimeout: Duration(2 * time.Second)}, c.Storage)
	assert.Equal(t, Notion{
		APIBaseURL:    "https://api.notion.com",
		TokenVersion:  "2022-06-28",
		ObjectVersion: "2021-08-16",
		Timeout:       Duration(10 * time.Second),
		RedirectURIs: []string{
			"https://notion.so/externalIntegrationAuthCallback",
			"notion.so/externalIntegrationAuthCallback",
			"https://www.notion.so/externalintegrationauthcallback",
			"https://notion.so/externalintegrationauthcallback",
			"https://www.notion.so/externalIntegrationAuthCallback",
		},
	}, c.Notion)

	p := c.Providers[0]
	assert.Equal(t, "github", p.DisplayName)
	assert.Equal(t, "unfurld", p.Dev)
	assert.Equal(t, "github", p.Notion.ClientID)
	assert.Equal(t, "github.com", p.Notion.Domain)
	assert.Equal(t, 2000, p.MaxTextLength)
	assert.Equal(t, ErrorMessages{
		NotFound:  "Not found",
		Reconnect: "Reconnect your account to see this preview",
		TryLater:  "The service is unavailable, try again later",
	}, p.Errors)
	u := p.Upstream
	assert.Equal(t, []string{"api.github.com:8443"}, u.AllowedHosts)
	assert.Equal(t, 5*time.Second, u.Timeout.D())
	assert.Equal(t, 30*time.Second, u.CacheTTL.D(), "no positions: a zero cache_ttl counts as unset")
	assert.Equal(t, ByteSize(2<<20), u.MaxBodyBytes)
	assert.Equal(t, Auth{Type: "none", Header: "Authorization", Prefix: "Bearer", OAuth2: OAuth2{ClientAuth: "header"}, Identity: Identity{Method: "GET"}}, u.Auth)

	pt := p.Patterns[0]
	assert.Equal(t, "POST", pt.Requests[0].Method)
	assert.Equal(t, "GET", pt.Requests[1].Method)
	assert.Equal(t, Attribute{ID: "title", Name: "title", Kind: "title", Section: "title", Path: "title", From: "issue", MaxLength: 2000}, pt.Attributes[0])
	assert.Equal(t, Attribute{ID: "state", Name: "state", Kind: "enum", Section: "primary", Expr: "issue.state", MaxLength: 10}, pt.Attributes[1])
	assert.Equal(t, PlaceholderAttribute{ID: "number", Name: "number", Kind: "plain_text", Section: "secondary"}, pt.Placeholder[0])
}

func TestSetDefaultsProductionLeavesPublicURL(t *testing.T) {
	t.Parallel()
	c := &Config{}
	c.SetDefaults()
	assert.Equal(t, ModeProduction, c.Server.Mode)
	assert.Empty(t, c.Server.PublicURL, "production has no default public URL (TH-13)")
}

// TestCacheTTLZeroKept checks that `cache_ttl: 0s` disables the cache
// instead of getting the default.
func TestCacheTTLZeroKept(t *testing.T) {
	t.Parallel()
	cfg, errs := Load(filepath.Join("testdata", "production.good.yaml"), testOptions())
	require.Empty(t, errs.Error())
	u := cfg.Providers[0].Upstream
	assert.Equal(t, Duration(0), u.CacheTTL)
	assert.Equal(t, ByteSize(512<<10), u.MaxBodyBytes)

	cfg, errs = Load(filepath.Join("testdata", "full.good.yaml"), testOptions())
	require.Empty(t, errs.Error())
	assert.Equal(t, 30*time.Second, cfg.Providers[0].Upstream.CacheTTL.D())
}

// TestProductionGood spot-checks a decoded file: env values, normalised
// methods, free-form bodies and the $${ escape.
func TestProductionGood(t *testing.T) {
	t.Parallel()
	cfg, errs := Load(filepath.Join("testdata", "production.good.yaml"), testOptions())
	require.Empty(t, errs.Error())
	assert.Equal(t, filepath.Join("testdata", "production.good.yaml"), cfg.File)
	assert.Equal(t, ":9090", cfg.Server.Listen)
	assert.Equal(t, 20*time.Second, cfg.Server.ReadTimeout.D())
	assert.Equal(t, ByteSize(32<<10), cfg.Server.MaxHeaderBytes)
	p := cfg.Providers[0]
	assert.Equal(t, "0123456789abcdef0123456789abcdef-notion", p.Notion.ClientSecret.Reveal())
	r := p.Patterns[0].Requests[0]
	assert.Equal(t, "POST", r.Method)
	assert.Equal(t, map[string]any{
		"query":     "query($id: ID!) { item(id: $id) { title } }",
		"variables": map[string]any{"id": "{id}"},
	}, r.Body)
	assert.Equal(t, `item.title + " ${x}"`, p.Patterns[0].Attributes[0].Expr)
	assert.Equal(t, 43, cfg.Positions["providers.tracker.patterns.item.requests.item.body.variables.id"].Line)
}

func TestDefaultSection(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		KindTitle: "title", KindPlainText: "secondary", KindEnum: "primary", KindDate: "primary",
		KindDatetime: "primary", KindColor: "background", KindImage: "avatar", KindVideo: "embed",
		KindAudio: "embed", KindHTML: "embed", KindPDF: "embed", KindRelation: "primary", "nope": "",
	}
	for kind, section := range want {
		assert.Equal(t, section, DefaultSection(kind), kind)
	}
	for _, k := range kinds() {
		assert.NotEmpty(t, DefaultSection(k), "every kind has a section: %s", k)
	}
}

// TestCanaryIntervalInherited: a provider without canary.interval takes
// the top-level one; its own value, "0s" included, wins; and
// canary.credential_file reads the credential like any other secret.
func TestCanaryIntervalInherited(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "canary-token"), []byte("s3cret-canary\n"), 0o600))
	provider := func(name, canary string) string {
		return `
  - name: ` + name + `
    upstream: {base_url: https://api.tiny.example}
    notion: {shared_domain: true}
    canary: {` + canary + `}
    patterns:
      - name: thing
        regex: '^https://tiny\.example/(?<id>\d+)$'
        samples: [https://tiny.example/1]
        attributes: [{id: title, kind: title, value: "x"}]`
	}
	yml := "server: {mode: development}\ncanary: {interval: 24h, baseline: canary.json}\nproviders:" +
		provider("inherits", "credential_file: canary-token") +
		provider("own", "interval: 48h") +
		provider("off", "interval: 0s") + "\n"
	path := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yml), 0o600))
	cfg, errs := Load(path, testOptions())
	require.Empty(t, errs.Error())

	assert.Equal(t, Canary{Interval: Duration(24 * time.Hour), Baseline: "canary.json"}, cfg.Canary)
	assert.Equal(t, filepath.Join(dir, "canary.json"), cfg.CanaryBaseline(), "relative to the config file")
	assert.Equal(t, 24*time.Hour, cfg.Providers[0].Canary.Interval.D())
	assert.Equal(t, "s3cret-canary", cfg.Providers[0].Canary.Credential.Reveal())
	assert.Equal(t, 48*time.Hour, cfg.Providers[1].Canary.Interval.D())
	assert.Equal(t, time.Duration(0), cfg.Providers[2].Canary.Interval.D())
}

// TestMetricsDefaults: /metrics is on and asks for the admin token
// unless the configuration says otherwise.
func TestMetricsDefaults(t *testing.T) {
	var m Metrics
	assert.True(t, m.IsEnabled())
	assert.True(t, m.TokenRequired())
	cfg, errs := Load(filepath.Join("testdata", "metrics.good.yaml"), testOptions())
	require.False(t, errs.HasErrors(), "%v", errs)
	assert.True(t, cfg.Server.Metrics.IsEnabled())
	assert.False(t, cfg.Server.Metrics.TokenRequired())
	assert.Equal(t, "127.0.0.1:9091", cfg.Server.AdminListen)
}
