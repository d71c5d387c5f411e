package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVariantOverlay loads testdata/variant.good.yaml: the base is left as
// written, the variant changes only the keys it names (maps merge, scalars
// replace), and every value keeps the position of the line that holds it.
func TestVariantOverlay(t *testing.T) {
	t.Parallel()
	cfg, errs := Load(filepath.Join("testdata", "variant.good.yaml"), testOptions())
	require.False(t, errs.HasErrors(), "%v", errs)
	require.Len(t, cfg.Providers, 3)

	base, signin := cfg.Providers[0], cfg.Providers[1]
	assert.Equal(t, "duo", base.Name)
	assert.Equal(t, AuthNone, base.Upstream.Auth.Type, "the variant must not leak into the base")
	assert.Equal(t, "duo-signin", signin.Name)
	assert.Equal(t, AuthAPIKey, signin.Upstream.Auth.Type)
	assert.Equal(t, "Paste a Duo key", signin.Upstream.Auth.APIKey.HelpText)
	assert.Equal(t, 5*time.Second, time.Duration(signin.Upstream.Timeout), "a key the variant leaves alone comes from the base")
	assert.Equal(t, base.Patterns, signin.Patterns, "a list the variant leaves alone comes from the base")
	assert.Equal(t, "Duo", signin.DisplayName)

	// Positions point at the file and line holding each value: the
	// variant's lines for what it changed, the base's for the rest.
	assert.Equal(t, Pos{File: "builtin:duo", Line: 9, Col: 12}, cfg.Positions["providers.duo-signin.upstream.timeout"])
	assert.Equal(t, Pos{File: "builtin:duo", Line: 21, Col: 15}, cfg.Positions["providers.duo-signin.upstream.auth.type"])
	assert.Equal(t, Pos{File: "builtin:duo", Line: 10, Col: 16}, cfg.Positions["providers.duo.upstream.auth.type"])

	local := cfg.Providers[2]
	assert.Equal(t, "local-other", local.Name)
	assert.Equal(t, 3*time.Second, time.Duration(local.Upstream.Timeout))
	assert.Equal(t, "https://api.local.example", local.Upstream.BaseURL, "the variant of an included file merges too")
}

// TestListBuiltins lists files with their variants, and what an include
// can name for each.
func TestListBuiltins(t *testing.T) {
	t.Parallel()
	got := ListBuiltins(os.DirFS(filepath.Join("testdata", "builtin")))
	assert.Equal(t, []Builtin{{Name: "duo", Variants: []string{"signin"}}, {Name: "mini"}}, got)
	assert.Equal(t, []string{"duo", "duo-signin"}, got[0].Includes())
}

// TestVariantsDeclaration: the variants key itself is checked when a file
// declaring it is included, whichever variant is asked for; the keys inside
// a variant when it is the one asked for.
func TestVariantsDeclaration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, variants, variant, want string
	}{
		{name: "not a mapping", variants: "variants: [a]", want: `f.yaml:3:1: providers[0].variants: want a mapping of variant names to the keys they change, got a list`},
		{name: "bad name", variants: "variants: {Big: {name: x}}", want: `f.yaml:3:12: providers[0].variants: a variant name is lower-case letters, digits and '-', got "Big"`},
		{name: "not a mapping inside", variants: "variants: {a: 1}", want: `f.yaml:3:12: providers[0].variants.a: want a mapping of the keys the variant changes`},
		{name: "nested", variants: "variants: {a: {variants: {}}}", want: `f.yaml:3:12: providers[0].variants.a: a variant cannot declare variants or includes`},
		{name: "duplicate key inside", variants: "variants: {a: {name: x, name: y}}", variant: "a", want: `f.yaml:3:25: providers[0]: key "name" is already defined on line 3`},
		{name: "duplicate", variants: "variants: {a: {name: x}, a: {name: y}}", want: `f.yaml:3:26: providers[0].variants: variant "a" is already defined on line 3`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := "name: x\nupstream: {base_url: \"https://api.x.example\"}\n" + tc.variants + "\n" +
				"patterns: [{name: p, regex: '^https://x\\.example/(?<id>[0-9]+)$', samples: [https://x.example/1], attributes: [{id: title, kind: title, value: t}]}]\n"
			require.NoError(t, os.WriteFile(filepath.Join(dir, "f.yaml"), []byte(file), 0o600))
			cfgFile := filepath.Join(dir, "c.yaml")
			entry := "{include: f.yaml}"
			if tc.variant != "" {
				entry = "{include: f.yaml, variant: " + tc.variant + "}"
			}
			require.NoError(t, os.WriteFile(cfgFile, []byte("server: {mode: development}\nproviders: ["+entry+"]\n"), 0o600))
			_, errs := Load(cfgFile, testOptions())
			require.True(t, errs.HasErrors())
			assert.Equal(t, filepath.Join(dir, tc.want), errs.Error())
		})
	}
}
