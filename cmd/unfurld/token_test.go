package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTokenWithCredential: `unfurld token` works for a provider whose
// users bring their own API key: the key comes from --credential or
// $UNFURLD_CREDENTIAL, is sealed into the connection (never stored in
// clear, TH-41), and the running server unfurls with it. A provider that
// needs one refuses to make a connection without it; one that takes none
// refuses one given.
func TestTokenWithCredential(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Api-Key"))
		mu.Unlock()
		if r.Header.Get("X-Api-Key") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"name":"Seven"}`)
	}))
	t.Cleanup(api.Close)
	dir := t.TempDir()
	listen := freePort(t)
	db := filepath.Join(dir, "data", "unfurld.db")
	cfg := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`server: {mode: development, listen: "`+listen+`", shutdown_timeout: 2s, log: {level: warn}}
storage: {path: `+db+`}
providers:
  - name: keyed
    upstream:
      base_url: `+api.URL+`
      allow_private_networks: true
      auth:
        type: api_key
        header: X-Api-Key
        prefix: none
        identity: {url: /me, key: 'identity.name', name: 'identity.name'}
    live: {poll_interval: 0s}
    patterns:
      - name: item
        regex: '^https://keyed\.example/items/(?<id>\d+)$'
        samples: [https://keyed.example/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: name}
  - name: fielded
    upstream:
      base_url: `+api.URL+`
      allow_private_networks: true
      auth:
        type: api_key
        header: X-Api-Key
        value: 'credential.email + ":" + credential.token'
        api_key:
          fields:
            - {name: email, label: E-mail, type: email}
            - {name: token, label: API token}
        identity: {url: /me, key: 'identity.name', name: 'identity.name'}
    live: {poll_interval: 0s}
    patterns:
      - name: item
        regex: '^https://fielded\.example/items/(?<id>\d+)$'
        samples: [https://fielded.example/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: name}
  - name: public
    upstream: {base_url: `+api.URL+`, allow_private_networks: true}
    patterns:
      - name: item
        regex: '^https://public\.example/items/(?<id>\d+)$'
        samples: [https://public.example/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: name}
`), 0o600))

	refusals := []struct {
		name string
		args []string
		vars map[string]string
		err  string
	}{
		{name: "needs a key", args: []string{"--provider", "keyed"}, err: "provider keyed needs each user's own API key: give it with --credential or $UNFURLD_CREDENTIAL"},
		{name: "takes none", args: []string{"--provider", "public", "--credential", "k"}, err: "provider public takes no per-user credential"},
		{name: "control characters", args: []string{"--provider", "keyed", "--credential", "a b"}, err: "holds spaces or control characters"},
		{name: "fields: one missing", args: []string{"--provider", "fielded", "--credential", "email=ana@example.com"}, err: "Fill in API token. (give token with --credential token=VALUE or $UNFURLD_CREDENTIAL_TOKEN)"},
		{name: "fields: unknown", args: []string{"--provider", "fielded", "--credential", "email=ana@example.com", "--credential", "token=t", "--credential", "pin=1"}, err: `provider fielded has no credential field "pin" (it asks for email, token)`},
		{name: "fields: checked like the form", args: []string{"--provider", "fielded", "--credential", "email=nobody", "--credential", "token=t"}, err: "E-mail does not look like an e-mail address."},
		{name: "fields: not NAME=VALUE", args: []string{"--provider", "fielded", "--credential", "just-a-key"}, err: "give each as --credential NAME=VALUE"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			e, out, errb := testEnv(tc.vars)
			assert.Equal(t, exitUsage, run(t.Context(), append([]string{"token", "--config", cfg}, tc.args...), e))
			assert.Contains(t, errb.String(), tc.err)
			assert.Empty(t, out.String())
		})
	}

	const flagKey, envKey = "key-from-the-flag-4242", "key-from-the-environment-4343"
	e, out, errb := testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"token", "--config", cfg, "--provider", "keyed", "--credential", flagKey}, e), errb.String())
	flagTok := strings.TrimSpace(out.String())
	e, out, errb = testEnv(map[string]string{"UNFURLD_CREDENTIAL": envKey})
	require.Equal(t, exitOK, run(t.Context(), []string{"token", "--config", cfg, "--provider", "keyed"}, e), errb.String())
	envTok := strings.TrimSpace(out.String())

	const fieldToken = "field-token-with,comma=4444"
	e, out, errb = testEnv(map[string]string{"UNFURLD_CREDENTIAL_TOKEN": fieldToken})
	require.Equal(t, exitOK, run(t.Context(), []string{"token", "--config", cfg, "--provider", "fielded", "--credential", "email=ana@example.com"}, e), errb.String())
	fieldTok := strings.TrimSpace(out.String())

	raw, err := os.ReadFile(db)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), flagKey, "the key is sealed at rest")
	assert.NotContains(t, string(raw), envKey)

	assert.NotContains(t, string(raw), fieldToken)

	stop := startServe(t, nil, "--config", cfg)
	for tok, key := range map[string]string{flagTok: flagKey, envTok: envKey, fieldTok: "ana@example.com:" + fieldToken} {
		prov := "keyed"
		if tok == fieldTok {
			prov = "fielded"
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+listen+"/providers/"+prov+"/unfurl", strings.NewReader(`{"uri":"https://`+prov+`.example/items/7"}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var env struct {
			Operations []struct {
				Path []string `json:"path"`
			} `json:"operations"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&env))
		require.NoError(t, resp.Body.Close())
		require.Len(t, env.Operations, 1)
		assert.Equal(t, []string{"attributes"}, env.Operations[0].Path, "unfurled with %s", key)
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	assert.ElementsMatch(t, []string{flagKey, envKey, "ana@example.com:" + fieldToken}, seen, "each connection's own key reached the upstream, the fields in the provider's shape")
}
