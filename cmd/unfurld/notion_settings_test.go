package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
)

// update rewrites the golden files of this package's testdata
// (STYLE.md 9: go test ./... -update).
var update = flag.Bool("update", false, "rewrite the .golden files of testdata")

const (
	settingsFixture = "testdata/notion_settings.yaml"
	// acmeSecret is pair A's secret of the fixture (protocol 1.2); it must
	// never be printed without --show-secrets (TH-49).
	acmeSecret = "acme-pair-a-secret-do-not-print-0123456789"
)

func settingsEnv() map[string]string {
	return map[string]string{"ACME_NOTION_CLIENT_SECRET": acmeSecret}
}

// TestNotionSettingsGolden pins the whole output, text and JSON, for a
// fixture holding protocol 9.1's example rule.
func TestNotionSettingsGolden(t *testing.T) {
	for _, tc := range []struct {
		name, golden string
		args         []string
	}{
		{"text", "testdata/notion_settings.txt.golden", nil},
		{"json", "testdata/notion_settings.json.golden", []string{"--format", "json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, out, errb := testEnv(settingsEnv())
			args := append([]string{"notion-settings", "--config", settingsFixture}, tc.args...)
			require.Equal(t, exitOK, run(t.Context(), args, e), errb.String())
			if *update {
				require.NoError(t, os.WriteFile(tc.golden, out.Bytes(), 0o644))
			}
			want, err := os.ReadFile(tc.golden)
			require.NoError(t, err)
			assert.Equal(t, string(want), out.String())
			assert.Empty(t, errb.String(), "an https public URL needs no note")
		})
	}
}

// TestNotionSettingsHidesSecrets: without --show-secrets no output
// carries the secret, only where it comes from (TH-49).
func TestNotionSettingsHidesSecrets(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"text", nil},
		{"json", []string{"--format", "json"}},
		{"one provider", []string{"--provider", "acme"}},
		{"one provider json", []string{"--provider", "acme", "--format", "json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, out, errb := testEnv(settingsEnv())
			args := append([]string{"notion-settings", "--config", settingsFixture}, tc.args...)
			require.Equal(t, exitOK, run(t.Context(), args, e), errb.String())
			assert.NotContains(t, out.String(), acmeSecret)
			assert.NotContains(t, errb.String(), acmeSecret)
			assert.Contains(t, out.String(), "ACME_NOTION_CLIENT_SECRET")
		})
	}
}

func TestNotionSettingsShowSecrets(t *testing.T) {
	t.Run("text", func(t *testing.T) {
		cfg := copyFixture(t)
		e, out, errb := testEnv(settingsEnv())
		require.Equal(t, exitOK, run(t.Context(), []string{"notion-settings", "--config", cfg, "--provider", "acme", "--show-secrets"}, e), errb.String())
		assert.Contains(t, out.String(), "  OAuth Client Secret          "+acmeSecret+"\n")
	})
	t.Run("json", func(t *testing.T) {
		cfg := copyFixture(t)
		e, out, errb := testEnv(settingsEnv())
		require.Equal(t, exitOK, run(t.Context(), []string{"notion-settings", "--config", cfg, "--show-secrets", "--format", "json"}, e), errb.String())
		got := decodeSettings(t, out.Bytes())
		require.Len(t, got, 2)
		assert.Equal(t, acmeSecret, got[0]["oauth_client_secret"])
	})
}

// TestNotionSettingsDevSecret: in development mode the secret shown is
// the one FillDevSecrets keeps for serve, and without --show-secrets the
// command writes nothing.
func TestNotionSettingsDevSecret(t *testing.T) {
	cfg := copyFixture(t)
	devFile := filepath.Join(filepath.Dir(cfg), "data", config.DevSecretsFile)

	e, out, errb := testEnv(settingsEnv())
	require.Equal(t, exitOK, run(t.Context(), []string{"notion-settings", "--config", cfg, "--provider", "hackernews"}, e), errb.String())
	assert.Contains(t, out.String(), "(hidden) generated in development mode into "+devFile+"; --show-secrets prints it")
	assert.NoFileExists(t, devFile)

	printed := func() string {
		e, out, errb := testEnv(settingsEnv())
		require.Equal(t, exitOK, run(t.Context(), []string{"notion-settings", "--config", cfg, "--provider", "hackernews", "--show-secrets", "--format", "json"}, e), errb.String())
		got := decodeSettings(t, out.Bytes())
		require.Len(t, got, 1)
		s, _ := got[0]["oauth_client_secret"].(string)
		return s
	}
	first := printed()
	raw, err := os.ReadFile(devFile)
	require.NoError(t, err)
	var kept map[string]string
	require.NoError(t, json.Unmarshal(raw, &kept))
	assert.Equal(t, kept["providers.hackernews.notion.client_secret"], first)
	assert.Len(t, first, 43, "32 random bytes, base64")
	assert.Equal(t, first, printed(), "a second run shows the kept secret")
}

// TestNotionSettingsJSONHasEveryField decodes the JSON and checks each
// field of protocol 1.4 and 9.1 is present and filled.
func TestNotionSettingsJSONHasEveryField(t *testing.T) {
	e, out, errb := testEnv(settingsEnv())
	require.Equal(t, exitOK, run(t.Context(), []string{"notion-settings", "--config", settingsFixture, "--format", "json"}, e), errb.String())
	got := decodeSettings(t, out.Bytes())
	require.Len(t, got, 2)

	acme := got[0]
	assert.Equal(t, map[string]any{
		"provider":                   "acme",
		"display_name":               "Acme Tracker",
		"oauth_authorize_url":        "https://unfurl.example.com/providers/acme/authorize",
		"oauth_token_url":            "https://unfurl.example.com/providers/acme/token",
		"oauth_client_id":            "acme-notion",
		"oauth_client_secret_source": map[string]any{"kind": "environment", "env": "ACME_NOTION_CLIENT_SECRET"},
		"oauth_scopes":               "unfurl user_name",
		"deleted_token_callback_url": "https://unfurl.example.com/providers/acme/deleted",
		"unfurl_callback_url":        "https://unfurl.example.com/providers/acme/unfurl",
		"unfurl_url_domain":          "acme.example",
		"rules":                      acme["rules"],
	}, acme)

	rules, ok := acme["rules"].([]any)
	require.True(t, ok)
	require.Len(t, rules, 2)
	item := rules[0].(map[string]any)
	assert.Equal(t, "item", item["rule_name"])
	assert.Equal(t, []any{"https://acme.example/items/23487"}, item["sample_urls"])
	assert.Equal(t, `^(?<site>https\:\/\/acme\.example)\/items\/(?<itemNo>\d+)$`, item["pattern"], "as written, in Notion's syntax")
	// Protocol 9.1's example, placeholders and all.
	attrs, err := json.Marshal(item["unfurl_regex_attributes"])
	require.NoError(t, err)
	assert.JSONEq(t, `[
	  {"id":"title","name":"Title","type":"inline","inline":{"title":{"value":"Acme Item #$<itemNo>","section":"title"}}},
	  {"id":"itemId","name":"Item Id","type":"inline","inline":{"plain_text":{"value":"#$<itemNo>","section":"identifier"}}},
	  {"id":"dev","name":"Developer Name","type":"inline","inline":{"plain_text":{"value":"Acme Inc","section":"secondary"}}}
	]`, string(attrs))
	assert.Contains(t, out.String(), `"#$<itemNo>"`, "placeholders are not HTML-escaped")

	board := rules[1].(map[string]any)
	assert.Equal(t, []any{"https://acme.example/boards/ops", "https://acme.example/boards/web-team"}, board["sample_urls"])

	hn := got[1]
	assert.Equal(t, "hackernews", hn["oauth_client_id"], "client_id defaults to the provider name")
	assert.Equal(t, "news.ycombinator.com", hn["unfurl_url_domain"], "domain defaults to the first sample's host")
	assert.Equal(t, "dev_secrets_file", hn["oauth_client_secret_source"].(map[string]any)["kind"])
	assert.NotContains(t, hn, "oauth_client_secret")
}

// TestNotionSettingsSecretSource covers each place pair A's secret can
// come from, built-in providers included.
func TestNotionSettingsSecretSource(t *testing.T) {
	const provider = `
    upstream: {base_url: https://api.acme.example}
    patterns:
      - name: item
        regex: '^https://acme\.example/items/(?<id>\d+)$'
        samples: [https://acme.example/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes: [{id: title, kind: title, path: name}]
`
	for _, tc := range []struct {
		name, providers string
		vars            map[string]string
		want            func(dir string) map[string]any
	}{{
		name:      "environment",
		providers: "  - name: acme\n    notion: {client_secret: \"${ACME_SECRET}\"}" + provider,
		vars:      map[string]string{"ACME_SECRET": acmeSecret},
		want:      func(string) map[string]any { return map[string]any{"kind": "environment", "env": "ACME_SECRET"} },
	}, {
		name:      "environment after an escaped reference",
		providers: "  - name: acme\n    notion: {client_secret: \"$${NOT_ME}${ACME_SECRET:-}\"}" + provider,
		vars:      map[string]string{"ACME_SECRET": acmeSecret},
		want:      func(string) map[string]any { return map[string]any{"kind": "environment", "env": "ACME_SECRET"} },
	}, {
		name:      "literal",
		providers: "  - name: acme\n    notion:\n      client_secret: " + acmeSecret + provider,
		want: func(dir string) map[string]any {
			return map[string]any{"kind": "config", "file": filepath.Join(dir, "config.yaml") + ":6:22"}
		},
	}, {
		name:      "file",
		providers: "  - name: acme\n    notion: {client_secret_file: secret.txt}" + provider,
		want: func(dir string) map[string]any {
			return map[string]any{"kind": "file", "file": filepath.Join(dir, "secret.txt")}
		},
	}, {
		name:      "empty variable in development mode",
		providers: "  - name: acme\n    notion: {client_secret: \"${ACME_SECRET:-}\"}" + provider,
		want: func(dir string) map[string]any {
			return map[string]any{"kind": "dev_secrets_file", "env": "ACME_SECRET", "file": filepath.Join(dir, "data", config.DevSecretsFile)}
		},
	}, {
		name:      "built-in provider",
		providers: "  - include: builtin:github\n",
		vars:      map[string]string{"GITHUB_NOTION_CLIENT_SECRET": acmeSecret},
		want: func(string) map[string]any {
			return map[string]any{"kind": "environment", "env": "GITHUB_NOTION_CLIENT_SECRET"}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "config.yaml")
			require.NoError(t, os.WriteFile(filepath.Join(dir, "secret.txt"), []byte(acmeSecret+"\n"), 0o600))
			require.NoError(t, os.WriteFile(cfg, []byte("server: {mode: development}\nstorage: {path: "+filepath.Join(dir, "data", "unfurld.db")+"}\nproviders:\n"+tc.providers), 0o600))
			e, out, errb := testEnv(tc.vars)
			require.Equal(t, exitOK, run(t.Context(), []string{"notion-settings", "--config", cfg, "--format", "json"}, e), errb.String())
			got := decodeSettings(t, out.Bytes())
			require.Len(t, got, 1)
			assert.Equal(t, tc.want(dir), got[0]["oauth_client_secret_source"])
			assert.NotContains(t, out.String()+errb.String(), acmeSecret)
		})
	}
}

func TestNotionSettingsErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		message string
	}{
		{"unknown provider", []string{"--provider", "nope"}, exitUsage, `unfurld notion-settings: unknown provider "nope"; ` + settingsFixture + " has: acme, hackernews\n"},
		{"unknown format", []string{"--format", "yaml"}, exitUsage, "--format must be text or json"},
		{"stray argument", []string{"https://acme.example/items/1"}, exitUsage, "unexpected argument"},
		{"unknown flag", []string{"--show-secret"}, exitUsage, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, out, errb := testEnv(settingsEnv())
			args := append([]string{"notion-settings", "--config", settingsFixture}, tc.args...)
			assert.Equal(t, tc.code, run(t.Context(), args, e))
			assert.Contains(t, errb.String(), tc.message)
			assert.Empty(t, out.String())
		})
	}
	t.Run("bad configuration", func(t *testing.T) {
		e, out, errb := testEnv(nil) // ACME_NOTION_CLIENT_SECRET unset
		assert.Equal(t, exitFailure, run(t.Context(), []string{"notion-settings", "--config", settingsFixture}, e))
		assert.Contains(t, errb.String(), "environment variable ACME_NOTION_CLIENT_SECRET is not set")
		assert.Empty(t, out.String())
	})
}

// TestNotionSettingsConfigExample: the README's example config prints a
// block per provider, and a note that localhost is not reachable.
func TestNotionSettingsConfigExample(t *testing.T) {
	e, out, errb := testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"notion-settings", "--config", "../../config.example.yaml"}, e), errb.String())
	for _, name := range []string{"github", "gitlab", "linear", "hackernews"} {
		assert.Contains(t, out.String(), "  Unfurl Callback URL          http://localhost:8080/providers/"+name+"/unfurl\n")
	}
	assert.Contains(t, out.String(), "(hidden) GITHUB_NOTION_CLIENT_SECRET is empty, so development mode generates it into data/dev-secrets.json; --show-secrets prints it\n")
	assert.Contains(t, errb.String(), "note: server.public_url is http://localhost:8080, which Notion cannot reach")
}

func TestPublicURLReachable(t *testing.T) {
	for url, want := range map[string]bool{
		"https://unfurl.example.com": true,
		"http://unfurl.example.com":  false,
		"https://localhost:8443":     false,
		"https://app.localhost":      false,
		"https://127.0.0.1":          false,
		"https://[::1]:8443":         false,
		"https://10.0.0.1":           false,
		"https://203.0.113.7":        true,
	} {
		assert.Equal(t, want, publicURLReachable(url), url)
	}
}

// copyFixture copies the fixture into a temporary directory, so that
// --show-secrets, which may write dev-secrets.json beside the data file,
// writes there.
func copyFixture(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(settingsFixture)
	require.NoError(t, err)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	text := strings.Replace(string(data), "path: ./data/unfurld.db", "path: "+filepath.Join(dir, "data", "unfurld.db"), 1)
	require.NoError(t, os.WriteFile(cfg, []byte(text), 0o600))
	return cfg
}

func decodeSettings(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var doc struct {
		Providers []map[string]any `json:"providers"`
	}
	require.NoError(t, json.Unmarshal(b, &doc), string(b))
	return doc.Providers
}
