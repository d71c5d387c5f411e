package app_test

import (
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/postgres"
	"github.com/unfurld/unfurld/engine/store/postgres/pgtest"
)

// cluster is this test binary's throwaway PostgreSQL server.
var cluster pgtest.Cluster

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

// newReplicaEnv is the cast with n replicas on one fresh database, each
// with its own connection pool, behind one public URL.
func newReplicaEnv(t *testing.T, n int) *flowEnv {
	t.Helper()
	dsn := cluster.Database(t)
	stores := make([]store.Store, n)
	for i := range stores {
		st, err := postgres.Open(t.Context(), dsn)
		require.NoError(t, err)
		stores[i] = st
	}
	return buildFlowEnv(t, stores)
}

// TestFlowAcrossReplicas_TH26: with two replicas on one database taking
// requests in turn, a connection flow started on one finishes on the
// other at every step (authorize, callback, consent, Notion's code
// exchange, unfurl), since flows, codes and tokens live in the store.
// Then a grant revoked through one replica is refused by both within a
// second, although the bearer was cached and the clock stands still.
func TestFlowAcrossReplicas_TH26(t *testing.T) {
	e := newReplicaEnv(t, 2)
	ctx := t.Context()
	code := e.connect("nc-replicas", "st-replicas") // six requests, alternating
	status, tok := e.tokenCall(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedirect}})
	require.Equal(t, http.StatusOK, status, tok)
	access := tok["access_token"].(string)
	const uri = "https://tracker.example.com/items/1"
	for range 2 { // once through each replica
		st, out := e.unfurl(access, uri)
		require.Equal(t, http.StatusOK, st, out)
		assert.Contains(t, out, "Fix the flux capacitor")
	}
	assert.GreaterOrEqual(t, e.served.Load(), int64(8), "each step on the other replica")

	conns, err := e.st.ListConnections(ctx, "tracker")
	require.NoError(t, err)
	require.Len(t, conns, 1)
	// Revoke the grant (the connection, which holds an upstream
	// credential, is read on every request anyway, TH-37; the token is
	// what the bearer cache keeps).
	toks, err := e.st.ListConnectionTokens(ctx, conns[0].ID)
	require.NoError(t, err)
	require.NotEmpty(t, toks)
	n, err := e.apps[0].Store.RevokeGrant(ctx, toks[0].GrantID)
	require.NoError(t, err)
	require.Positive(t, n)
	require.Eventually(t, func() bool {
		a, _ := e.unfurl(access, uri)
		b, _ := e.unfurl(access, uri)
		return a == http.StatusUnauthorized && b == http.StatusUnauthorized
	}, time.Second, 10*time.Millisecond, "a replica still accepts a revoked token")
}
