package compiled_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
)

func TestRestartRequired(t *testing.T) {
	t.Parallel()
	base := func() *config.Config {
		c := &config.Config{}
		c.Server.Mode = config.ModeDevelopment
		c.Providers = []config.Provider{{Name: "a"}}
		c.SetDefaults()
		return c
	}
	tests := []struct {
		name string
		edit func(*config.Config)
		want []string
	}{
		{name: "same", edit: func(*config.Config) {}, want: nil},
		{name: "providers only", edit: func(c *config.Config) { c.Providers = nil }, want: nil},
		{name: "listen", edit: func(c *config.Config) { c.Server.Listen = ":9090" }, want: []string{"server.listen"}},
		{name: "storage and log", edit: func(c *config.Config) {
			c.Storage.Path = "/elsewhere.db"
			c.Server.Log.Level = "debug"
		}, want: []string{"server.log.level", "storage.path"}},
		{name: "secret named, not shown", edit: func(c *config.Config) { c.Server.SecretKeys = "k2:new" }, want: []string{"server.secret_keys"}},
		{name: "list", edit: func(c *config.Config) { c.Notion.RedirectURIs = []string{"https://example.com/cb"} }, want: []string{"notion.redirect_uris"}},
		{name: "every section but providers", edit: func(c *config.Config) { c.Canary.Baseline = "canary.json" }, want: []string{"canary.baseline"}},
		{name: "a provider's canary schedule", edit: func(c *config.Config) {
			c.Providers[0].Canary.Interval = config.Duration(time.Hour)
			c.Providers = append(c.Providers, config.Provider{Name: "b", Canary: config.ProviderCanary{Interval: config.Duration(time.Hour)}})
		}, want: []string{"providers.a.canary.interval", "providers.b.canary.interval"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			next := base()
			tc.edit(next)
			assert.Equal(t, tc.want, compiled.RestartRequired(base(), next))
		})
	}
}
