package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/status"
	"github.com/unfurld/unfurld/engine/store"
)

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestStatus covers issue 4 item 5: `unfurld status` reads the store when
// the server is stopped, and asks the running server's /admin/status
// (with the development admin token) while it holds the store.
func TestStatus(t *testing.T) {
	api := fakeAPI(t)
	dir := t.TempDir()
	listen := freePort(t)
	cfg := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`server: {mode: development, listen: "`+listen+`", shutdown_timeout: 2s, log: {level: warn}}
storage: {path: `+filepath.Join(dir, "data", "unfurld.db")+`}
providers:
  - name: acme
    upstream: {base_url: `+api.URL()+`, allow_private_networks: true}
    live: {poll_interval: 0s}
    patterns:
      - name: item
        regex: '^https://acme\.example/items/(?<id>\d+)$'
        samples: [https://acme.example/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: name}
`), 0o600))

	e, out, errb := testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"token", "--config", cfg, "--provider", "acme"}, e), errb.String())
	token := strings.TrimSpace(out.String())

	// Stopped server: read from the store.
	e, out, errb = testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"status", "--config", cfg}, e), errb.String())
	assert.Regexp(t, `acme +1 +0 +0 +0 +never +0`, out.String())

	// Running server: the command asks it.
	srv := serveInBackground(t, nil, "--config", cfg)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+listen+"/providers/acme/unfurl", strings.NewReader(`{"uri":"https://acme.example/items/7"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Held store, no address given: the command does not guess one
	// from server.listen.
	e, _, errb = testEnv(nil)
	require.Equal(t, exitFailure, run(t.Context(), []string{"status", "--config", cfg}, e))
	assert.Contains(t, errb.String(), "give its admin API with --server URL")

	e, out, errb = testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"status", "--config", cfg, "--server", "http://" + listen, "--format", "json"}, e), errb.String())
	var r status.Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &r))
	require.Len(t, r.Providers, 1)
	assert.Equal(t, 1, r.Providers[0].Connections)

	// Without the token the admin route refuses.
	areq, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+listen+"/admin/status", nil)
	require.NoError(t, err)
	aresp, err := http.DefaultClient.Do(areq)
	require.NoError(t, err)
	require.NoError(t, aresp.Body.Close())
	assert.Equal(t, http.StatusUnauthorized, aresp.StatusCode)

	srv.stop()

	// Stopped again: the story of the unfurled link, from the store.
	e, out, errb = testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"status", "--config", cfg, "--uri", "https://acme.example/items/7"}, e), errb.String())
	assert.Contains(t, out.String(), "https://acme.example/items/7  [acme, connection ")
	assert.Contains(t, out.String(), "not refreshed yet")

	// Bad flags.
	e, _, errb = testEnv(nil)
	assert.Equal(t, exitUsage, run(t.Context(), []string{"status", "--config", cfg, "--provider", "nope"}, e))
	assert.Contains(t, errb.String(), `no provider "nope"`)
}

// recorder is a loopback server that counts what reaches it and whether
// the admin token came with it.
type recorder struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	t.Helper()
	rc := &recorder{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.requests = append(rc.requests, r.Host+" "+r.URL.String()+" "+r.Header.Get("Authorization"))
		rc.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *recorder) seen() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.requests...)
}

// statusConfig writes a development configuration with an admin token.
func statusConfig(t *testing.T, extra string) (cfg, token string) {
	t.Helper()
	dir := t.TempDir()
	token = "admin-token-for-the-test-0123456789abcdef"
	cfg = filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`server: {mode: development, admin_token: "`+token+`"`+extra+`}
storage: {path: `+filepath.Join(dir, "data", "unfurld.db")+`}
providers:
  - name: acme
    upstream: {base_url: "https://api.acme.example"}
    patterns:
      - name: item
        regex: '^https://acme\.example/items/(?<id>\d+)$'
        samples: [https://acme.example/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: name}
`), 0o600))
	return cfg, token
}

// TestStatusAdminTokenNeverInClear_TH53: the admin token goes over plain
// http only to loopback. Every dial is routed to loopback recorders, so a
// refused host would be reached if the check were missing; none is, and
// no redirect carries the token elsewhere (TH-49, TH-53).
func TestStatusAdminTokenNeverInClear_TH53(t *testing.T) {
	report := `{"generated_at":"2026-12-01T12:00:00Z","providers":[{"name":"acme","connections":3,"reconnect_required":1,"subscriptions":2,"queue_depth":0,"refresh_failures":0}]}`
	elsewhere := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(report)) })
	local := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(report)) })
	localAddr := strings.TrimPrefix(local.URL, "http://")
	// Loopback addresses dial the local recorder; every other host dials
	// the "elsewhere" recorder, which is on loopback too.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		target := strings.TrimPrefix(elsewhere.URL, "http://")
		if host, _, _ := net.SplitHostPort(addr); host == "127.0.0.1" || host == "::1" || host == "localhost" {
			target = localAddr
		}
		var d net.Dialer
		return d.DialContext(ctx, network, target)
	}
	cfg, token := statusConfig(t, "")
	tests := []struct {
		name, server string
		code         int
		err          string
	}{
		{name: "loopback", server: local.URL, code: exitOK},
		{name: "remote name", server: "http://unfurl.example.com:8080", code: exitFailure, err: "would send the admin token in clear"},
		{name: "private address", server: "http://10.1.2.3:8080", code: exitFailure, err: "would send the admin token in clear"},
		{name: "every interface", server: "http://0.0.0.0:8080", code: exitFailure, err: "would send the admin token in clear"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, out, errb := testEnv(nil)
			e.dial = dial
			require.Equal(t, tc.code, run(t.Context(), []string{"status", "--config", cfg, "--server", tc.server}, e), errb.String())
			assert.Contains(t, errb.String(), tc.err)
			if tc.code == exitOK {
				assert.Regexp(t, `acme +3 +1 +2 +0 +never +0`, out.String())
			}
		})
	}
	// disconnect follows the same rule.
	e, _, errb := testEnv(nil)
	e.dial = dial
	assert.Equal(t, exitFailure, run(t.Context(), []string{"disconnect", "--config", cfg, "--server", "http://unfurl.example.com:8080", "--connection", "c1"}, e))
	assert.Contains(t, errb.String(), "would send the admin token in clear")

	assert.Empty(t, elsewhere.seen(), "nothing reached a non-loopback host")
	for _, r := range local.seen() {
		assert.Contains(t, r, "Bearer "+token)
	}
	assert.Len(t, local.seen(), 1)

	// A server that redirects: the redirect is not followed.
	redirecting := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://unfurl.example.com/admin/status", http.StatusTemporaryRedirect)
	})
	e, _, errb = testEnv(nil)
	e.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		target := strings.TrimPrefix(elsewhere.URL, "http://")
		if host, _, _ := net.SplitHostPort(addr); host == "127.0.0.1" {
			target = strings.TrimPrefix(redirecting.URL, "http://")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, target)
	}
	assert.Equal(t, exitFailure, run(t.Context(), []string{"status", "--config", cfg, "--server", redirecting.URL}, e))
	assert.Contains(t, errb.String(), "redirects are not followed")
	assert.Len(t, redirecting.seen(), 1)
	assert.Empty(t, elsewhere.seen(), "the redirect did not carry the token away")

	// server.admin_url over plain http to another host is refused when
	// the configuration loads.
	cfg, _ = statusConfig(t, ", admin_url: http://unfurl.example.com:8080")
	e, _, errb = testEnv(nil)
	e.dial = dial
	assert.Equal(t, exitFailure, run(t.Context(), []string{"status", "--config", cfg}, e))
	assert.Contains(t, errb.String(), "server.admin_url: plain http to unfurl.example.com would send the admin token in clear")
	assert.Empty(t, elsewhere.seen())
}

// TestStatusConnectionText: the human view of one connection aligns its
// labels and says when things happened.
func TestStatusConnectionText(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	r := &status.Report{GeneratedAt: now, Providers: []status.ProviderReport{{Name: "github", Connections: 1, ReconnectRequired: 1, LastRefreshAt: now.Add(-90 * time.Second)}}, Story: &status.Story{
		Connection: &status.ConnectionView{
			ID: "c1", Provider: "github", AccountName: "octo", Status: "reconnect_required", CreatedAt: now.Add(-50 * time.Hour),
			Notion:    status.NotionView{PushToken: true, Tokens: []status.TokenView{{Kind: "access", CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute), Expired: true}}},
			Upstream:  status.CredentialView{Kind: "oauth2", Stored: true, ExpiresAt: now.Add(2 * time.Hour), RefreshedAt: now.Add(-3*time.Hour - 5*time.Minute)},
			Reconnect: &status.EventView{At: now.Add(-time.Minute), Call: "upstream request", Status: 401, Detail: "upstream refused the credential"},
			Failures:  []status.EventView{{At: now.Add(-2 * time.Minute), Call: "unfurl", URI: "https://github.com/o/r/issues/1", Status: 503, Detail: "timeout"}},
		},
		Subscriptions: []status.SubscriptionView{
			{
				Provider: "github", ConnectionID: "c1", URI: "https://github.com/o/r/issues/1", AttrHash: "h1",
				CreatedAt: now.Add(-5 * time.Hour), UpdatedAt: now.Add(-time.Hour), DeliveredAt: now.Add(-time.Hour),
				LastRefresh:     store.RefreshRecord{At: now.Add(-10 * time.Minute), Trigger: "poll", Outcome: "changed", Status: 200},
				LastPushFailure: &status.EventView{At: now.Add(-3 * time.Hour), Call: "notion push", Status: 400, Detail: "validation_error"},
			},
			{
				Provider: "github", ConnectionID: "c1", URI: "https://github.com/o/r/issues/2", AttrHash: "h2",
				CreatedAt: now.Add(-5 * time.Hour), UpdatedAt: now.Add(-5 * time.Hour), DeliveredAt: now.Add(-4 * time.Hour),
				LastPushFailure: &status.EventView{At: now.Add(-3 * time.Hour), Call: "notion push", Status: 400, Detail: "validation_error"},
			},
		},
	}}
	var b strings.Builder
	printStatus(&b, r)
	want := `PROVIDER  CONNECTIONS  RECONNECT  SUBSCRIPTIONS  QUEUED  LAST REFRESH  REFRESH FAILURES
github    1            1          0              0       1m ago        0

connection c1 (github)
  status               reconnect_required
  account              "octo"
  connected            2026-11-29 10:00:00 UTC (2d2h ago)
  needs reconnect      2026-12-01 11:59:00 UTC (1m ago): upstream request answered 401: upstream refused the credential
  notion token         stored (updates to previews are pushed)
  our access token     issued 2026-12-01 11:00:00 UTC (1h ago), expired 2026-12-01 11:59:00 UTC (1m ago)
  upstream credential  oauth2, stored sealed
    expires            2026-12-01 14:00:00 UTC (in 2h)
    last refreshed     2026-12-01 08:55:00 UTC (3h5m ago)
  last failures, newest first:
    2m ago  unfurl  503  https://github.com/o/r/issues/1  timeout

https://github.com/o/r/issues/1  [github, connection c1]
  subscribed    2026-12-01 07:00:00 UTC (5h ago)
  last sent     2026-12-01 11:00:00 UTC (1h ago) (attributes h1)
  last refresh  2026-12-01 11:50:00 UTC (10m ago) by poll: changed (status 200)
  last push     accepted by Notion 2026-12-01 11:00:00 UTC (1h ago)
https://github.com/o/r/issues/2  [github, connection c1]
  subscribed    2026-12-01 07:00:00 UTC (5h ago)
  last sent     2026-12-01 07:00:00 UTC (5h ago) (attributes h2)
  last refresh  not refreshed yet
  last push     refused 2026-12-01 09:00:00 UTC (3h ago): notion push answered 400: validation_error
`
	assert.Equal(t, want, b.String())
}
