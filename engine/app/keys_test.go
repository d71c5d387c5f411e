package app_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/app"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
)

// restart builds a new app over the same store with the keyring spec, as
// a restart with another server.secret_keys would, and serves it.
func (e *flowEnv) restart(spec string) (*app.App, string) {
	e.t.Helper()
	cfg := *e.cfg
	cfg.Server.SecretKeys = config.Secret(spec)
	a, err := app.New(app.Options{Config: &cfg, Registry: e.reg, Store: e.st, Logger: e.logger, Now: e.clock.Now})
	require.NoError(e.t, err)
	srv := httptest.NewServer(a.Server.Handler())
	e.t.Cleanup(srv.Close)
	return a, srv.URL
}

// unfurlAt is unfurl against another server.
func (e *flowEnv) unfurlAt(base, token, uri string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/providers/tracker/unfurl", strings.NewReader(`{"uri":"`+uri+`"}`))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	return resp.StatusCode, body(e.t, resp)
}

// usage returns the per-key counts as status shows them.
func (e *flowEnv) usage(a *app.App) map[string]sealing.KeyUsage {
	e.t.Helper()
	list, err := sealing.CountSealed(e.t.Context(), e.st, a.Keyring, e.clock.Now())
	require.NoError(e.t, err)
	out := map[string]sealing.KeyUsage{}
	for _, u := range list {
		out[u.ID] = u
	}
	return out
}

// TestKeyRotation_F14_TH42 runs the whole rotation through the real
// flows: run with K1 and connect a user (a connection, a refresh
// successor, a pending flow); restart with K2 primary and K1 old: the old
// records open, new ones are sealed with K2, the re-seal job moves the
// rest and the counts follow; a keyring of K2 alone is refused while K1
// still seals records and accepted after the re-seal, and the user's
// link still unfurls.
func TestKeyRotation_F14_TH42(t *testing.T) {
	e := newFlowEnv(t)
	k1 := e.cfg.Server.SecretKeys.Reveal()
	k2 := sealing.GenerateKeySpec("k2")
	ctx := t.Context()

	code := e.connect("nc-rot", "st-rot")
	status, tok := e.tokenCall(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedirect}})
	require.Equal(t, http.StatusOK, status, tok)
	status, tok = e.tokenCall(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	require.Equal(t, http.StatusOK, status, tok)
	access, refresh := tok["access_token"].(string), tok["refresh_token"].(string)
	r := e.get(e.authorizeURL("nc-pending", "st-pending")) // left pending
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.NoError(t, e.app.CheckSealingKeys(ctx, nil))
	assert.Equal(t, sealing.KeyUsage{ID: "k1", Primary: true, InKeyring: true, Connections: 1, Flows: 1, Successors: 1}, e.usage(e.app)["k1"])

	// Restart with K2 first and K1 kept.
	a2, base := e.restart(k2 + "," + k1)
	require.NoError(t, a2.CheckSealingKeys(ctx, nil))
	status, out := e.unfurlAt(base, access, "https://tracker.example.com/items/1")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, out, "Fix the flux capacitor", "a record sealed with K1 opens")
	// A refresh now seals its successor with K2.
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"tracker"}, "client_secret": {notionFacingSecret}}
	resp, err := http.PostForm(base+"/providers/tracker/token", v)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))
	u := e.usage(a2)
	assert.Equal(t, sealing.KeyUsage{ID: "k2", Primary: true, InKeyring: true, Successors: 1}, u["k2"])
	assert.Equal(t, 3, u["k1"].Needed())

	// Dropping K1 now is refused, with the count.
	a3, _ := e.restart(k2)
	err = a3.CheckSealingKeys(ctx, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `server.secret_keys: key "k1" was removed but still seals 3 stored records (1 connection, 1 pending flow, 1 refresh successor)`)

	// The re-seal job, driven step by step.
	done := false
	for i := 0; i < 10 && !done; i++ {
		done, err = a2.Resealer.Step(ctx, 1)
		require.NoError(t, err)
	}
	require.True(t, done)
	u = e.usage(a2)
	assert.Equal(t, sealing.KeyUsage{ID: "k1", InKeyring: true}, u["k1"], "K1 seals nothing any more")
	assert.Equal(t, sealing.KeyUsage{ID: "k2", Primary: true, InKeyring: true, Connections: 1, Flows: 1, Successors: 2}, u["k2"])

	// K2 alone is accepted now, and the user's link still unfurls.
	a4, base4 := e.restart(k2)
	require.NoError(t, a4.CheckSealingKeys(ctx, nil))
	status, out = e.unfurlAt(base4, access, "https://tracker.example.com/items/1")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, out, "Fix the flux capacitor")
	conns, err := e.st.ListConnections(ctx, "tracker")
	require.NoError(t, err)
	require.Len(t, conns, 1)
	assert.Equal(t, store.StatusActive, conns[0].Status)
}

// TestDropKey_TH42: when an old key is lost for good the operator starts
// once with --drop-key: the user's connection becomes "reconnect
// required" and later starts pass without the flag.
func TestDropKey_TH42(t *testing.T) {
	e := newFlowEnv(t)
	ctx := t.Context()
	code := e.connect("nc-drop", "st-drop")
	status, tok := e.tokenCall(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedirect}})
	require.Equal(t, http.StatusOK, status, tok)

	a, base := e.restart(sealing.GenerateKeySpec("k2"))
	require.ErrorContains(t, a.CheckSealingKeys(ctx, nil), `key "k1" was removed but still seals 1 stored record (1 connection)`)
	require.ErrorContains(t, a.CheckSealingKeys(ctx, []string{"k2"}), `drop key "k2": it is still in the keyring`)
	require.NoError(t, a.CheckSealingKeys(ctx, []string{"k1"}))
	assert.Contains(t, e.logs.String(), "dropped the records of removed sealing keys")
	require.NoError(t, a.CheckSealingKeys(ctx, nil), "the drop is done once")

	status, out := e.unfurlAt(base, tok["access_token"].(string), "https://tracker.example.com/items/1")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, out, `"status":401`, "the user is asked to reconnect")
}

// TestResealInterruptedReopen_F2: a re-seal stopped after one record
// (as a kill would stop it) leaves every record of the bbolt file
// openable with the keyring after reopening it, and a new job finishes.
func TestResealInterruptedReopen_F2(t *testing.T) {
	e := newFlowEnv(t)
	ctx := t.Context()
	k1 := e.cfg.Server.SecretKeys.Reveal()
	code := e.connect("nc-f2", "st-f2")
	status, tok := e.tokenCall(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedirect}})
	require.Equal(t, http.StatusOK, status, tok)
	status, tok = e.tokenCall(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	require.Equal(t, http.StatusOK, status, tok)
	r := e.get(e.authorizeURL("nc-f2-pending", "st-f2-pending"))
	require.Equal(t, http.StatusSeeOther, r.StatusCode)

	kr, err := sealing.ParseKeyring(sealing.GenerateKeySpec("k2") + "," + k1)
	require.NoError(t, err)
	done, err := sealing.NewResealer(sealing.ResealerOptions{Store: e.st, Keyring: kr, Now: e.clock.Now}).Step(ctx, 1)
	require.NoError(t, err)
	require.False(t, done)
	require.NoError(t, e.st.Close())

	st, err := bolt.Open(e.dbPath, bolt.Options{LockTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	conns, err := st.ListConnections(ctx, "")
	require.NoError(t, err)
	require.Len(t, conns, 1)
	for _, f := range []struct {
		name  string
		value []byte
	}{{sealing.FieldNotionToken, conns[0].NotionToken}, {sealing.FieldUpstreamCredential, conns[0].UpstreamCredential}} {
		_, err := sealing.OpenConnectionField(kr, conns[0], f.name, f.value)
		require.NoError(t, err, f.name)
	}
	flows, err := st.ListFlows(ctx)
	require.NoError(t, err)
	require.Len(t, flows, 1)
	_, err = sealing.OpenFlow(kr, flows[0])
	require.NoError(t, err)
	list, err := sealing.CountSealed(ctx, st, kr, e.clock.Now())
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, 1, list[0].Needed(), "k2 seals the record moved before the stop")
	assert.Equal(t, 2, list[1].Needed(), "k1 still seals the others, and they open")

	res := sealing.NewResealer(sealing.ResealerOptions{Store: st, Keyring: kr, Now: e.clock.Now})
	for i := 0; i < 10 && !done; i++ {
		done, err = res.Step(ctx, 10)
		require.NoError(t, err)
	}
	require.True(t, done)
	list, err = sealing.CountSealed(ctx, st, kr, e.clock.Now())
	require.NoError(t, err)
	assert.Equal(t, 0, list[1].Needed())
	assert.Equal(t, 3, list[0].Needed())
}
