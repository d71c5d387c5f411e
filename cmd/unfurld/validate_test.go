package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestValidateRefusesWhatServeRefuses: every configuration serve refuses
// to start with, validate refuses with the same message (TH-53: refuse
// at validation, in CI, not at the deploy). Each case used to pass
// validate and fail only when serve built the app or listened.
func TestValidateRefusesWhatServeRefuses(t *testing.T) {
	const shortKey = "k1:AAECAwQFBgcICQoLDA0ODw" // 16 bytes
	tests := []struct {
		name string
		// server and provider are spliced into a development config.
		server, notion, auth string
		env                  map[string]string
		want                 string
	}{
		{
			name:   "secret_keys without an id",
			server: `secret_keys: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"`,
			want:   "server.secret_keys: keyring entry 1 has no key id, want id:base64key",
		},
		{
			name:   "secret_keys too short from the environment",
			server: `secret_keys: "${UNFURLD_SECRET_KEYS}"`,
			env:    map[string]string{"UNFURLD_SECRET_KEYS": shortKey},
			want:   "server.secret_keys: key k1 is 16 bytes, want 32 (the value is from the environment variable UNFURLD_SECRET_KEYS)",
		},
		{
			name:   "listen address without a port",
			server: `listen: "8080"`,
			want:   `server.listen: want host:port or :port, e.g. :8080, got "8080"`,
		},
		{
			name:   "notion api with a query",
			notion: `api_base_url: "https://api.notion.com/?via=proxy"`,
			want:   `notion.api_base_url: notion base url "https://api.notion.com/?via=proxy": want http(s)://host[:port][/path]`,
		},
		{
			name: "oauth2 extra param the flow sets itself",
			auth: `type: oauth2
        oauth2: {authorize_url: "https://acme.example/oauth/authorize", token_url: "https://acme.example/oauth/token", client_id: app, client_secret: app-secret, extra_params: {state: fixed}}
        identity: {url: /me, key: string(identity.id), name: identity.name}`,
			want: `providers.acme.upstream.auth.oauth2: upstream oauth2 for "acme": extra param "state" is set by the flow itself`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "config.yaml")
			auth := tc.auth
			if auth == "" {
				auth = "type: none"
			}
			yml := `server:
  mode: development
  ` + tc.server + `
storage: {path: '` + filepath.Join(dir, "data", "unfurld.db") + `'}
notion:
  timeout: 5s
  ` + tc.notion + `
providers:
  - name: acme
    upstream:
      base_url: https://api.acme.example
      auth:
        ` + auth + `
    patterns:
      - name: item
        regex: '^https://acme\.example/items/(?<id>\d+)$'
        samples: [https://acme.example/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes: [{id: title, kind: title, path: name}]
`
			require.NoError(t, os.WriteFile(cfg, []byte(yml), 0o600))

			e, _, verr := testEnv(tc.env)
			require.Equal(t, exitFailure, run(t.Context(), []string{"validate", "--config", cfg}, e), verr.String())
			assert.Contains(t, verr.String(), tc.want)

			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			e, _, serr := testEnv(tc.env)
			e.ready = func(string) { cancel() } // should it start after all, stop it
			require.Equal(t, exitFailure, run(ctx, []string{"serve", "--config", cfg, "--listen", "127.0.0.1:0"}, e), serr.String())
			assert.Equal(t, problemLines(verr.String()), problemLines(serr.String()), "serve and validate print the same problems")
			_, err := os.Stat(filepath.Join(dir, "data"))
			assert.ErrorIs(t, err, os.ErrNotExist, "nothing was started or generated")
		})
	}
}

// problemLines keeps the file:line:col lines of a command's stderr.
func problemLines(s string) []string {
	at := regexp.MustCompile(`\.yaml:\d+:\d+: `)
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if at.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}
