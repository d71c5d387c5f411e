package providers_test

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/providers"
)

// parseBuiltin loads one built-in provider the way a new user's first
// config does: development mode and an empty environment, so every
// ${VAR:-} falls back to its default.
func parseBuiltin(t *testing.T, name string) (*config.Config, config.Errors) {
	t.Helper()
	src := "server: {mode: development}\nproviders:\n  - include: builtin:" + name + "\n"
	noEnv := func(string) (string, bool) { return "", false }
	return config.Parse("builtin.yaml", []byte(src), config.LoadOptions{LookupEnv: noEnv, Builtins: providers.FS()})
}

func TestNames(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []string{"github", "gitlab", "linear"}, providers.Names())
	for _, n := range providers.Names() {
		_, err := fs.Stat(providers.FS(), n+".yaml")
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

			reg, berrs := provider.Build(cfg, provider.Options{})
			require.Empty(t, berrs, "build problems:\n%v", berrs)
			require.NotNil(t, reg)
			t.Cleanup(reg.Close)
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
// provider, so the comments at the top of each file stay true.
func TestBuiltinsUseEnvironment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		token string
	}{
		{name: "github", token: "GITHUB_TOKEN"},
		{name: "gitlab", token: "GITLAB_TOKEN"},
		{name: "linear", token: "LINEAR_API_KEY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix := strings.ToUpper(tc.name) + "_NOTION_"
			env := map[string]string{
				tc.token:                      "upstream-token",
				prefix + "CLIENT_SECRET":      "pair-a-secret-0123456789abcdefghijkl",
				prefix + "INTEGRATION_ID":     "pair-b-id",
				prefix + "INTEGRATION_SECRET": "pair-b-secret-0123456789abcdefghijk",
			}
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			src := "server: {mode: development}\nproviders:\n  - include: builtin:" + tc.name + "\n"
			cfg, errs := config.Parse("builtin.yaml", []byte(src), config.LoadOptions{LookupEnv: lookup, Builtins: providers.FS()})
			require.False(t, errs.HasErrors(), "%v", errs)
			p := cfg.Providers[0]
			assert.Equal(t, "upstream-token", p.Upstream.Auth.Token.Reveal())
			assert.Equal(t, env[prefix+"CLIENT_SECRET"], p.Notion.ClientSecret.Reveal())
			assert.Equal(t, "pair-b-id", p.Notion.IntegrationClientID)
			assert.Equal(t, env[prefix+"INTEGRATION_SECRET"], p.Notion.IntegrationClientSecret.Reveal())
		})
	}
}
