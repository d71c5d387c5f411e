package providers_test

import (
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/fixture"
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
