package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/status"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
)

// writeKeysConfig writes a development config whose sealing keys come
// from $KEYS, and returns it with its store path.
func writeKeysConfig(t *testing.T, listen string) (cfg, db string) {
	t.Helper()
	dir := t.TempDir()
	db = filepath.Join(dir, "data", "unfurld.db")
	cfg = filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`server: {mode: development, listen: "`+listen+`", admin_url: "http://`+listen+`", secret_keys: "${KEYS}", shutdown_timeout: 2s, log: {level: warn}}
storage: {path: `+db+`}
providers:
  - name: acme
    upstream: {base_url: https://api.acme.example}
    live: {poll_interval: 0s}
    patterns:
      - name: item
        regex: '^https://acme\.example/items/(?<id>\d+)$'
        samples: [https://acme.example/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: name}
`), 0o600))
	return cfg, db
}

// storeSealed puts a connection whose Notion token is sealed with spec's
// primary key into the store at db, as a run with that key leaves it.
func storeSealed(t *testing.T, db, spec, id string) {
	t.Helper()
	kr, err := sealing.ParseKeyring(spec)
	require.NoError(t, err)
	st, err := bolt.Open(db, bolt.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	c := store.Connection{ID: id, Provider: "acme", AccountKey: "acct-" + id, Status: store.StatusActive}
	c.NotionToken, err = sealing.SealConnectionField(kr, c, sealing.FieldNotionToken, []byte("notion-secret"))
	require.NoError(t, err)
	require.NoError(t, st.CreateConnection(t.Context(), c))
}

// keysOf runs `unfurld status --format json` and returns the per-key
// counts, nil if the command failed. It does not fail the test itself,
// so that it can run inside require.Eventually.
func keysOf(ctx context.Context, vars map[string]string, cfg string) map[string]sealing.KeyUsage {
	e, out, _ := testEnv(vars)
	var r status.Report
	if run(ctx, []string{"status", "--config", cfg, "--format", "json"}, e) != exitOK || json.Unmarshal(out.Bytes(), &r) != nil {
		return nil
	}
	m := map[string]sealing.KeyUsage{}
	for _, k := range r.SealingKeys {
		m[k.ID] = k
	}
	return m
}

// TestKeyRotationCommands_F14_TH42 drives the rotation through the
// commands: with K2 alone, serve and validate refuse while K1 seals a
// record, naming the count; with K2 first and K1 kept, serve re-seals
// in the background and status (asked of the running server, then read
// from the store) shows the record move to K2; then K2 alone passes. A
// lost key is given up with --drop-key.
func TestKeyRotationCommands_F14_TH42(t *testing.T) {
	listen := freePort(t)
	cfg, db := writeKeysConfig(t, listen)
	k1, k2 := sealing.GenerateKeySpec("k1"), sealing.GenerateKeySpec("k2")
	storeSealed(t, db, k1, "c1")
	only2 := map[string]string{"KEYS": k2}
	both := map[string]string{"KEYS": k2 + "," + k1}

	want := `server.secret_keys: key "k1" was removed but still seals 1 stored record (1 connection); put it back until ` + "`unfurld status`" + ` shows 0 for it, or start once with --drop-key k1 to accept that those users must reconnect`
	e, _, errb := testEnv(only2)
	assert.Equal(t, exitFailure, run(t.Context(), []string{"serve", "--config", cfg}, e))
	assert.Contains(t, errb.String(), "unfurld: "+want)
	e, _, errb = testEnv(only2)
	assert.Equal(t, exitFailure, run(t.Context(), []string{"validate", "--config", cfg}, e))
	assert.Contains(t, errb.String(), cfg+": "+want)

	e, out, errb := testEnv(both)
	require.Equal(t, exitOK, run(t.Context(), []string{"status", "--config", cfg}, e), errb.String())
	assert.Regexp(t, `k2 +primary +0 +0 +0 +0\nk1 +old +1 +0 +0 +0\n`, out.String())

	stop := startServe(t, both, "--config", cfg)
	// The re-seal's first batch runs as serve starts; wait for it
	// without assuming how long a loaded machine takes.
	require.Eventually(t, func() bool {
		k := keysOf(t.Context(), both, cfg)
		return k != nil && k["k1"].Connections == 0 && k["k2"].Connections == 1
	}, 20*time.Second, 50*time.Millisecond, "status from the running server shows the record move")
	e, out, errb = testEnv(both)
	require.Equal(t, exitOK, run(t.Context(), []string{"validate", "--config", cfg}, e), errb.String())
	assert.Contains(t, out.String(), "sealing keys not checked: "+db+" is held by a running unfurld")
	stop()

	e, out, errb = testEnv(both)
	require.Equal(t, exitOK, run(t.Context(), []string{"status", "--config", cfg}, e), errb.String())
	assert.Regexp(t, `k2 +primary +1 +0 +0 +0\nk1 +old +0 +0 +0 +0\n`, out.String())
	assert.Contains(t, out.String(), "key k1 seals nothing any more: it may leave server.secret_keys")

	e, _, errb = testEnv(only2)
	require.Equal(t, exitOK, run(t.Context(), []string{"validate", "--config", cfg}, e), errb.String())
	startServe(t, only2, "--config", cfg)()

	// A key lost for good: refused, then given up once with --drop-key.
	storeSealed(t, db, sealing.GenerateKeySpec("k0"), "c0")
	e, _, errb = testEnv(only2)
	assert.Equal(t, exitFailure, run(t.Context(), []string{"serve", "--config", cfg}, e))
	assert.Contains(t, errb.String(), `key "k0" was removed but still seals 1 stored record`)
	startServe(t, only2, "--config", cfg, "--drop-key", "k0")()
	e, _, errb = testEnv(only2)
	require.Equal(t, exitOK, run(t.Context(), []string{"validate", "--config", cfg}, e), errb.String())
	assert.Equal(t, sealing.KeyUsage{ID: "k0", Connections: 1, ReconnectRequired: 1}, keysOf(t.Context(), only2, cfg)["k0"])
}
