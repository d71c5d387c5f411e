package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/unfurld/unfurld/engine/config"
)

// TestNextSteps: the start banner says when Notion cannot reach
// public_url, and suggests the dry run of a sample link.
func TestNextSteps(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Providers: []config.Provider{
		{Name: "none"},
		{Name: "hn", Patterns: []config.Pattern{{Samples: []string{"https://news.ycombinator.com/item?id=8863"}}}},
	}}
	tests := []struct {
		public, addr string
		unreachable  bool
		page         string
	}{
		{public: "http://localhost:8080", addr: "127.0.0.1:8080", unreachable: true, page: "http://127.0.0.1:8080/"},
		{public: "http://192.168.1.20:8080", addr: "[::]:8080", unreachable: true, page: "http://127.0.0.1:8080/"},
		{public: "https://box.local", addr: "0.0.0.0:9000", unreachable: true, page: "http://127.0.0.1:9000/"},
		{public: "https://unfurl.example.com", addr: "10.0.0.5:8080", page: "http://10.0.0.5:8080/"},
	}
	dev := *cfg
	dev.Server.Mode = config.ModeDevelopment
	var b strings.Builder
	printNextSteps(&b, &dev, "config.yaml", "127.0.0.1:8080")
	assert.Contains(t, b.String(), "Or in a browser, with the preview as Notion draws it: http://127.0.0.1:8080/lab\n")
	for _, tc := range tests {
		t.Run(tc.public, func(t *testing.T) {
			t.Parallel()
			c := *cfg
			c.Server.PublicURL = tc.public
			var b strings.Builder
			printNextSteps(&b, &c, "my config.yaml", tc.addr)
			out := b.String()
			if tc.unreachable {
				assert.Contains(t, out, "Notion cannot reach "+tc.public)
			} else {
				assert.NotContains(t, out, "cannot reach")
			}
			assert.Contains(t, out, "  unfurld preview --config 'my config.yaml' --trace 'https://news.ycombinator.com/item?id=8863'\n")
			assert.Contains(t, out, "This server's page: "+tc.page)
			assert.NotContains(t, out, "/lab", "production without server.lab.enabled has no lab")
		})
	}
}
