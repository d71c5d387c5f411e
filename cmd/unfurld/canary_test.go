package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/canary"
	"github.com/unfurld/unfurld/engine/status"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// canaryVars are the credentials of the canary tests' config; no output
// may hold them.
var canaryVars = map[string]string{
	"THINGS_TOKEN": "things-token-31c9aa",
	"KEYED_CANARY": "keyed-canary-77b0e1",
}

// newCanaryAPI is the upstream of the canary tests' providers, serving
// two items and a keyed doc; a test edits the answers with Set.
func newCanaryAPI(t *testing.T) *upstreamtest.Server {
	t.Helper()
	api := upstreamtest.New(t)
	api.Set("/items/1", upstreamtest.Response{Body: `{"title":"One","author":"ann"}`})
	api.Set("/items/2", upstreamtest.Response{Body: `{"title":"Two","author":"bob"}`})
	api.Set("/keyed/docs/1", upstreamtest.Response{Body: `{"title":"Doc"}`})
	return api
}

// writeCanaryConfig writes a config whose canary.baseline is "baseline"
// (relative to the file) when given. max_requests_per_hour is high so
// the pacing between samples stays in milliseconds.
func writeCanaryConfig(t *testing.T, api, baseline string) string {
	t.Helper()
	dir := t.TempDir()
	canaryKey := ""
	if baseline != "" {
		canaryKey = "canary: {baseline: " + baseline + "}\n"
	}
	cfg := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`server: {mode: development}
`+canaryKey+`providers:
  - name: things
    upstream:
      base_url: `+api+`
      allow_private_networks: true
      auth: {token: "${THINGS_TOKEN}"}
    live: {max_requests_per_hour: 360000}
    patterns:
      - name: item
        regex: '^https://things\.example\.com/items/(?<id>\d{1,10})$'
        samples: [https://things.example.com/items/1, https://things.example.com/items/2]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: title}
          - {id: author, kind: plain_text, section: secondary, path: author}
  - name: keyed
    upstream:
      base_url: `+api+`/keyed
      allow_private_networks: true
      auth:
        type: api_key
        identity: {url: /user, key: 'string(identity.id)', name: identity.login}
    live: {max_requests_per_hour: 360000}
    canary: {credential: "${KEYED_CANARY}"}
    patterns:
      - name: doc
        regex: '^https://keyed\.example\.com/docs/(?<id>\d{1,10})$'
        samples: [https://keyed.example.com/docs/1]
        requests: [{name: doc, url: "/docs/{id}"}]
        attributes: [{id: title, kind: title, path: title}]
  - name: nocred
    upstream:
      base_url: `+api+`/nocred
      allow_private_networks: true
      auth:
        type: api_key
        identity: {url: /user, key: 'string(identity.id)', name: identity.login}
    patterns:
      - name: doc
        regex: '^https://nocred\.example\.com/docs/(?<id>\d{1,10})$'
        samples: [https://nocred.example.com/docs/1]
        requests: [{name: doc, url: "/docs/{id}"}]
        attributes: [{id: title, kind: title, path: title}]
`), 0o600))
	return cfg
}

// runCanary runs `unfurld canary` and checks that no credential reached
// its output (TH-49).
func runCanary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	e, out, errb := testEnv(canaryVars)
	code := run(t.Context(), append([]string{"canary"}, args...), e)
	for _, v := range []string{canaryVars["THINGS_TOKEN"], canaryVars["KEYED_CANARY"]} {
		require.NotContains(t, out.String(), v)
		require.NotContains(t, errb.String(), v)
	}
	return code, out.String(), errb.String()
}

// TestCanaryCommand walks the operator's story: a first run without a
// baseline, --record, an unchanged run, a regression (exit 1), the
// baseline named in the config, the JSON format and an upstream failure.
func TestCanaryCommand(t *testing.T) {
	api := newCanaryAPI(t)
	cfg := writeCanaryConfig(t, api.URL(), "")
	basePath := filepath.Join(filepath.Dir(cfg), "canary.json")

	code, out, errb := runCanary(t, "--config", cfg)
	require.Equal(t, exitOK, code, errb+out)
	assert.Contains(t, out, "things: 2 ok, 0 changed, 0 failed")
	assert.Contains(t, out, "keyed: 1 ok, 0 changed, 0 failed")
	assert.Contains(t, out, "nocred: skipped: no canary credential")
	assert.Contains(t, out, "author (inline.plain_text), dev (inline.plain_text), title (inline.title)")
	assert.Contains(t, out, "no baseline: 0 samples")

	code, _, errb = runCanary(t, "--config", cfg, "--record", basePath)
	require.Equal(t, exitOK, code, errb)
	assert.Contains(t, errb, "recorded 3 samples in "+basePath)
	data, err := os.ReadFile(basePath)
	require.NoError(t, err)
	assert.NotContains(t, string(data), `"One"`, "no values in a baseline")

	code, out, errb = runCanary(t, "--config", cfg, "--baseline", basePath)
	require.Equal(t, exitOK, code, errb+out)
	assert.Contains(t, out, "0 regressions")

	api.Set("/items/2", upstreamtest.Response{Body: `{"title":"Two"}`})
	api.Set("/items/1", upstreamtest.Response{Status: http.StatusNotFound})
	code, out, _ = runCanary(t, "--config", cfg, "--baseline", basePath)
	assert.Equal(t, exitFailure, code, out)
	assert.Contains(t, out, "things: 0 ok, 2 changed, 0 failed")
	assert.Contains(t, out, "attribute author missing (was inline.plain_text)")
	assert.Contains(t, out, "status 404, was 200")
	assert.Contains(t, out, "2 regressions")

	// canary.baseline in the config, relative to the config file.
	withBase := writeCanaryConfig(t, api.URL(), "canary.json")
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(withBase), "canary.json"), data, 0o600))
	code, out, _ = runCanary(t, "--config", withBase, "--format", "json", "--provider", "things")
	assert.Equal(t, exitFailure, code)
	var rep canary.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.True(t, rep.Baseline)
	require.Len(t, rep.Providers, 1)
	assert.Equal(t, 2, rep.Regressions())

	// An upstream failure fails the run even without a baseline, and is
	// never recorded.
	api.Set("/items/1", upstreamtest.Response{Body: `{"title":"One","author":"ann"}`})
	api.Set("/items/2", upstreamtest.Response{Status: http.StatusInternalServerError, Body: `{"message":"boom"}`})
	code, out, _ = runCanary(t, "--config", cfg)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, out, "failed  item  https://things.example.com/items/2  503  request item: status")
	code, _, errb = runCanary(t, "--config", cfg, "--provider", "things", "--record", basePath)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errb, "left out (the upstream failed; run again to record it): things https://things.example.com/items/2")
	again, err := canary.ReadBaseline(basePath)
	require.NoError(t, err)
	var urls []string
	for _, s := range again.Samples {
		urls = append(urls, s.Provider+" "+s.URL)
	}
	assert.Equal(t, []string{"things https://things.example.com/items/1", "keyed https://keyed.example.com/docs/1"}, urls,
		"re-recording one provider keeps the others")
}

// TestCanaryCommandUsage: bad flags and names exit 2, a broken baseline
// exits 1, each with a message.
func TestCanaryCommandUsage(t *testing.T) {
	api := newCanaryAPI(t)
	cfg := writeCanaryConfig(t, api.URL(), "missing.json")
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad format", []string{"--config", cfg, "--format", "yaml"}, exitUsage, "--format must be text or json"},
		{"unknown provider", []string{"--config", cfg, "--provider", "nope"}, exitUsage, `no provider "nope"`},
		{"configured baseline missing", []string{"--config", cfg}, exitFailure, "read canary baseline"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errb := runCanary(t, tc.args...)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, errb, tc.msg)
		})
	}
}

// TestStatusPrintsCanary: `unfurld status` shows the last canary run the
// server reported.
func TestStatusPrintsCanary(t *testing.T) {
	var out strings.Builder
	printStatus(&out, &status.Report{Providers: []status.ProviderReport{{
		Name: "things", Canary: canary.Summary{OK: 1, Changed: 1, Problems: []string{"changed https://things.example.com/items/2: status 404, was 200"}},
	}}})
	assert.Contains(t, out.String(), `things last canary run: {"at":"0001-01-01T00:00:00Z","ok":1,"changed":1,"failed":0,"problems":["changed https://things.example.com/items/2: status 404, was 200"]`)
}
