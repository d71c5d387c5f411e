package providers_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/fixture"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/providers"
)

var update = flag.Bool("update", false, "rewrite want.golden.json files from the current output")

// builtinConfig includes every built-in provider, in development mode and
// with an empty environment, as a new user's first run would; only the
// variables a builtin cannot load without get stand-ins
// (providers.PlaceholderEnv), as `unfurld test` gives them. Like `unfurld
// test`, it lets github and github-oauth share github.com.
func builtinConfig(t *testing.T) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("server: {mode: development}\nproviders:\n")
	for _, n := range providers.Names() {
		fmt.Fprintf(&b, "  - include: builtin:%s\n", n)
	}
	env := providers.PlaceholderEnv()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, errs := config.Parse("builtin.yaml", []byte(b.String()), config.LoadOptions{LookupEnv: lookup, Builtins: providers.FS(), AllowSharedDomains: true})
	require.False(t, errs.HasErrors(), "%v", errs)
	return cfg
}

// TestFixtures runs every case under testdata/<provider>/<case>/ through
// the same runner as `unfurld test` (STYLE.md 3).
func TestFixtures(t *testing.T) {
	cfg := builtinConfig(t)
	cases, err := fixture.Discover("testdata", providers.Names())
	require.NoError(t, err)
	perProvider := map[string]int{}
	for _, c := range cases {
		perProvider[c.Provider]++
		t.Run(c.Provider+"/"+c.Name, func(t *testing.T) {
			r := fixture.Run(t.Context(), cfg, c, *update)
			require.NoError(t, r.Err)
			assert.NotEmpty(t, r.Requests, "the case reached the fake upstream")
		})
	}
	for _, n := range providers.Names() {
		assert.GreaterOrEqual(t, perProvider[n], 1, "provider %s has no fixture case", n)
	}
}

// TestFixturesCoverEveryKind: every URL kind (pattern) of every built-in
// has at least one fixture case whose URI it matches, so a new kind cannot
// ship without a recorded answer. A variant's kinds are its file's: a case
// of github covers github-oauth's pattern of the same name.
func TestFixturesCoverEveryKind(t *testing.T) {
	fileOf := map[string]string{}
	for _, b := range config.ListBuiltins(providers.FS()) {
		for _, n := range b.Includes() {
			fileOf[n] = b.Name
		}
	}
	cfg := builtinConfig(t)
	reg, berrs := provider.Build(cfg, provider.Options{})
	require.False(t, berrs.HasErrors(), "%v", berrs)
	t.Cleanup(reg.Close)
	cases, err := fixture.Discover("testdata", providers.Names())
	require.NoError(t, err)
	covered := map[string]bool{}
	for _, c := range cases {
		data, err := os.ReadFile(filepath.Join(c.Dir, "request.json"))
		require.NoError(t, err)
		var req struct {
			URI string `json:"uri"`
		}
		require.NoError(t, json.Unmarshal(data, &req), c.Dir)
		p, ok := reg.Get(c.Provider)
		require.True(t, ok, c.Provider)
		m, err := p.Match(req.URI)
		require.NoError(t, err, "%s: %s matches no pattern of %s", c.Dir, req.URI, c.Provider)
		covered[fileOf[c.Provider]+"/"+m.Pattern.Name] = true
	}
	for _, p := range reg.All() {
		for _, pat := range p.Patterns {
			assert.True(t, covered[fileOf[p.Name]+"/"+pat.Name], "%s: URL kind %s has no fixture case", p.Name, pat.Name)
		}
	}
}
