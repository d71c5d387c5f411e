package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store/bolt"
)

// connectionIDs lists the connections in the stopped server's store.
func connectionIDs(t *testing.T, dbPath string) []string {
	t.Helper()
	st, err := bolt.Open(dbPath, bolt.Options{})
	require.NoError(t, err)
	defer st.Close()
	conns, err := st.ListConnections(t.Context(), "")
	require.NoError(t, err)
	var ids []string
	for _, c := range conns {
		ids = append(ids, c.ID)
	}
	return ids
}

// TestDisconnectAndCompact_TH40_F2: `unfurld disconnect` deletes a
// connection on a stopped server's store and through the admin route of a
// running one; `unfurld compact` rewrites the stopped store and refuses
// one in use.
func TestDisconnectAndCompact_TH40_F2(t *testing.T) {
	api := fakeAPI(t)
	dir := t.TempDir()
	listen := freePort(t)
	dbPath := filepath.Join(dir, "data", "unfurld.db")
	cfg := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`server: {mode: development, listen: "`+listen+`", shutdown_timeout: 2s, log: {level: warn}}
storage: {path: `+dbPath+`}
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
	for range 2 {
		e, _, errb := testEnv(nil)
		require.Equal(t, exitOK, run(t.Context(), []string{"token", "--config", cfg, "--provider", "acme", "--account", "Erin Eraseme"}, e), errb.String())
	}
	ids := connectionIDs(t, dbPath)
	require.Len(t, ids, 2)

	// Stopped server: the command works on the store.
	e, out, errb := testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"disconnect", "--config", cfg, "--connection", ids[0]}, e), errb.String())
	assert.Equal(t, "deleted connection "+ids[0]+"\n", out.String())
	assert.Equal(t, []string{ids[1]}, connectionIDs(t, dbPath))
	e, _, errb = testEnv(nil)
	assert.Equal(t, exitFailure, run(t.Context(), []string{"disconnect", "--config", cfg, "--connection", ids[0]}, e))
	assert.Contains(t, errb.String(), "no connection")
	e, _, errb = testEnv(nil)
	assert.Equal(t, exitUsage, run(t.Context(), []string{"disconnect", "--config", cfg}, e))
	assert.Contains(t, errb.String(), "--connection is required")

	// Compact the stopped store, by config and by path.
	e, out, errb = testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"compact", "--config", cfg}, e), errb.String())
	assert.Contains(t, out.String(), "compacted "+dbPath)
	e, _, errb = testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"compact", dbPath}, e), errb.String())
	assert.Equal(t, []string{ids[1]}, connectionIDs(t, dbPath))

	// Running server: disconnect asks it; compact refuses.
	srv := serveInBackground(t, nil, "--config", cfg)
	e, _, errb = testEnv(nil)
	assert.Equal(t, exitFailure, run(t.Context(), []string{"compact", "--config", cfg}, e))
	assert.Contains(t, errb.String(), "held by a running unfurld")
	e, out, errb = testEnv(nil)
	// The held store: without an address the command does not guess one.
	assert.Equal(t, exitFailure, run(t.Context(), []string{"disconnect", "--config", cfg, "--connection", ids[1]}, e))
	assert.Contains(t, errb.String(), "give its admin API with --server URL")
	e, out, errb = testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"disconnect", "--config", cfg, "--server", "http://" + listen, "--connection", ids[1]}, e), errb.String())
	assert.True(t, strings.HasPrefix(out.String(), "deleted connection "))
	srv.stop()

	assert.Empty(t, connectionIDs(t, dbPath))
	raw, err := os.ReadFile(dbPath)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "Erin Eraseme", "erased from the file")
}
