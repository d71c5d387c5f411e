package provider_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
)

// swapProvider is one provider of swapConfig; NAME and TITLE vary.
const swapProvider = `
  - name: NAME
    upstream: {base_url: "https://api.NAME.example.com"}
    patterns:
      - name: page
        regex: '^https://NAME\.example\.com/(?<id>\d+)$'
        samples: [https://NAME.example.com/1]
        requests: [{name: page, url: "/pages/{id}"}]
        attributes: [{id: title, kind: title, value: "TITLE"}]
`

// buildSwap compiles a configuration of the providers given as
// name=title pairs.
func buildSwap(t *testing.T, providers ...string) *provider.Registry {
	t.Helper()
	var b strings.Builder
	b.WriteString("server: {mode: development}\nproviders:")
	for _, p := range providers {
		name, title, _ := strings.Cut(p, "=")
		b.WriteString(strings.NewReplacer("NAME", name, "TITLE", title).Replace(swapProvider))
	}
	cfg, errs := config.Parse("swap.yaml", []byte(b.String()), config.LoadOptions{LookupEnv: noEnv})
	require.False(t, errs.HasErrors(), "%v", errs)
	reg, berrs := provider.Build(cfg, provider.Options{})
	require.False(t, berrs.HasErrors(), "%v", berrs)
	t.Cleanup(reg.Close)
	return reg
}

// TestRegistrySwap checks what a reload does to the providers: added ones
// answer, removed ones are gone, changed ones are compiled again (so their
// caches start empty), unchanged ones keep their compiled instance (and
// caches), and a provider looked up before the swap is still whole.
func TestRegistrySwap(t *testing.T) {
	t.Parallel()
	reg := buildSwap(t, "keep=Keep", "change=Old", "drop=Drop")
	keep, _ := reg.Get("keep")
	change, _ := reg.Get("change")
	drop, _ := reg.Get("drop")

	ch := reg.Swap(buildSwap(t, "add=Add", "keep=Keep", "change=New"))

	assert.Equal(t, []string{"add"}, ch.Added)
	assert.Equal(t, []string{"change"}, ch.Changed)
	assert.Equal(t, []string{"drop"}, ch.Removed)
	assert.ElementsMatch(t, []*provider.Provider{change, drop}, ch.Retired)

	names := []string{}
	for _, p := range reg.All() {
		names = append(names, p.Name)
	}
	assert.Equal(t, []string{"add", "keep", "change"}, names, "the new file's order")
	got, ok := reg.Get("keep")
	require.True(t, ok)
	assert.Same(t, keep, got, "an unchanged provider keeps its instance")
	got, ok = reg.Get("change")
	require.True(t, ok)
	assert.NotSame(t, change, got)
	assert.Equal(t, "New", got.Config.Patterns[0].Attributes[0].Value)
	_, ok = reg.Get("drop")
	assert.False(t, ok, "a removed provider no longer answers")
	_, ok = reg.Get("add")
	assert.True(t, ok)

	// The instances held from before the swap still work.
	assert.Equal(t, "Old", change.Config.Patterns[0].Attributes[0].Value)
	_, err := drop.Match("https://drop.example.com/1")
	require.NoError(t, err)
	provider.CloseRetired(ch.Retired)
}
