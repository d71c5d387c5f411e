package main

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServeMetricsAndConfigWarnings: serve logs the configuration's
// warnings through its logger, in its format, and wires the metrics into
// the providers: after one unfurl, /metrics shows it and the upstream
// exchange it made.
func TestServeMetricsAndConfigWarnings(t *testing.T) {
	api := fakeAPI(t)
	cfg, _ := writeLocalConfig(t, api.URL())
	raw, err := os.ReadFile(cfg)
	require.NoError(t, err)
	// Metrics without a token on the public listener: a warning in
	// development mode.
	yml := strings.Replace(string(raw), "log: {level: warn}}", "log: {level: warn, format: json}, metrics: {require_token: false}}", 1)
	require.NoError(t, os.WriteFile(cfg, []byte(yml), 0o600))

	e, out, errb := testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"token", "--config", cfg, "--provider", "acme"}, e), errb.String())
	token := strings.TrimSpace(out.String())

	srv := serveInBackground(t, nil, "--config", cfg, "--listen", "127.0.0.1:0")
	addr := srv.addr

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/providers/acme/unfurl",
		strings.NewReader(`{"uri":"https://acme.example/items/7"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)

	mreq, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/metrics", nil)
	require.NoError(t, err)
	resp, err = http.DefaultClient.Do(mreq)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `unfurld_unfurl_requests_total{outcome="attributes",pattern="item",provider="acme"} 1`)
	assert.Contains(t, string(body), `unfurld_upstream_responses_total{class="2xx",provider="acme"} 1`)
	assert.Contains(t, string(body), `unfurld_store_operation_duration_seconds_count{operation="PutSubscriptions"}`)

	srv.stop()
	logs := srv.errb.String()
	assert.Contains(t, logs, `"level":"WARN","msg":"config"`)
	assert.Contains(t, logs, `"key":"server.metrics.require_token"`)
	assert.NotContains(t, logs, "warning: false publishes", "warnings are log records, not printed lines")
	assert.NotContains(t, logs, token)
}
