package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/status"
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
    upstream: {base_url: `+api.URL+`, allow_private_networks: true}
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
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	se, _, serr := testEnv(nil)
	ready := make(chan string, 1)
	se.ready = func(addr string) { ready <- addr }
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		run(ctx, []string{"serve", "--config", cfg}, se)
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+listen+"/providers/acme/unfurl", strings.NewReader(`{"uri":"https://acme.example/items/7"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)

	e, out, errb = testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"status", "--config", cfg, "--format", "json"}, e), errb.String())
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

	cancel()
	wg.Wait()
	_ = serr

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
