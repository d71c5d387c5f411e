package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/store/postgres"
	"github.com/unfurld/unfurld/engine/store/postgres/pgtest"
)

const migrateRedirect = "https://www.notion.so/externalIntegrationAuthCallback"

// fillStore writes every record kind into st the way the server does:
// a connection with sealed credentials, a code redeemed for an expiring
// pair and that refresh token rotated (a consumed marker with its sealed
// successor), a pending flow sealed under its ID, subscriptions with
// validators and a refresh story, and queued PATCHes, one of them
// retried. It returns the spent refresh token and the pair it was
// rotated into.
func fillStore(t *testing.T, st store.Store, kr *sealing.Keyring, now time.Time) (spent string, pair issuer.TokenResponse) {
	t.Helper()
	ctx := t.Context()
	conn := store.Connection{
		ID: "conn-1", Provider: "acme", AccountKey: "acct-42", AccountName: "Ada", WorkspaceID: "ws-1",
		WorkspaceName: "Docs", BotID: "bot-1", Owner: "user:u-1", Status: store.StatusActive,
		UpstreamExpiry: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now,
	}
	var err error
	conn.NotionToken, err = sealing.SealConnectionField(kr, conn, sealing.FieldNotionToken, []byte("notion-secret"))
	require.NoError(t, err)
	conn.UpstreamCredential, err = sealing.SealConnectionField(kr, conn, sealing.FieldUpstreamCredential, []byte(`{"access_token":"up"}`))
	require.NoError(t, err)
	_, _, err = st.UpsertConnection(ctx, conn)
	require.NoError(t, err)
	second := conn
	second.ID, second.Owner, second.Status = "conn-2", "user:u-2", store.StatusReconnect
	require.NoError(t, st.CreateConnection(ctx, second))

	clock := func() time.Time { return now }
	iss := &issuer.Issuer{Store: st, Keyring: kr, Now: clock}
	client := issuer.Client{Provider: "acme", AccessTokenTTL: time.Hour, RefreshGrace: time.Minute}
	code, err := iss.MintCode(ctx, "acme", conn.ID, migrateRedirect)
	require.NoError(t, err)
	first, err := iss.RedeemCode(ctx, client, code, migrateRedirect)
	require.NoError(t, err)
	pair, err = iss.Refresh(ctx, client, first.RefreshToken)
	require.NoError(t, err)
	_, err = iss.MintCode(ctx, "acme", conn.ID, migrateRedirect) // a live code, not redeemed
	require.NoError(t, err)

	data, err := sealing.SealFlow(kr, "flow-1", []byte(`{"state":"s"}`))
	require.NoError(t, err)
	require.NoError(t, st.CreateFlow(ctx, store.Flow{ID: "flow-1", Provider: "acme", Data: data, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}, 10))

	for i, uri := range []string{"https://acme.example/items/1", "https://acme.example/items/2", "https://acme.example/items/3"} {
		k := store.SubscriptionKey{Provider: "acme", ConnectionID: conn.ID, URI: uri}
		_, err := st.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, AttrHash: "h" + uri, CreatedAt: now, UpdatedAt: now, UnfurledAt: now})
		require.NoError(t, err)
		switch i {
		case 0: // polled: its next poll is the schedule's
			n, err := st.SchedulePolls(ctx, "replica", []store.PollSlot{{SubscriptionKey: k, Next: now.Add(10 * time.Minute)}})
			require.NoError(t, err)
			require.Equal(t, 1, n)
		case 2: // a webhook's refresh still pending
			_, err := st.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, UpdatedAt: now,
				Refresh: store.RefreshRecord{At: now, Trigger: "webhook", Outcome: store.RefreshPending}})
			require.NoError(t, err)
		}
		if i == 0 {
			// A live refresh's put: validators and its story.
			_, err := st.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, ETag: `"v7"`, LastModified: "Mon, 07 Dec 2026 01:00:00 GMT",
				UpdatedAt: now.Add(time.Second), Refresh: store.RefreshRecord{At: now, Trigger: "poll", Outcome: "changed", Status: 200}})
			require.NoError(t, err)
		}
		if i < 2 {
			seq, err := st.Enqueue(ctx, store.OutboxItem{SubscriptionKey: k, Body: []byte(`{"uri":"` + uri + `"}`), AttrHash: "next", EnqueuedAt: now, NextAt: now})
			require.NoError(t, err)
			if i == 1 {
				n, err := st.RescheduleOutbox(ctx, []store.OutboxUpdate{{SubscriptionKey: k, Seq: seq, NextAt: now.Add(time.Minute), Attempts: 2, LastError: "notion answered 503"}})
				require.NoError(t, err)
				require.Equal(t, 1, n)
			}
		}
	}
	return first.RefreshToken, pair
}

// normSnapshot makes two exports comparable: times as UTC instants,
// empty byte slices as nil.
func normSnapshot(s store.Snapshot) store.Snapshot {
	nb := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	for i := range s.Connections {
		c := &s.Connections[i]
		c.NotionToken, c.UpstreamCredential = nb(c.NotionToken), nb(c.UpstreamCredential)
		c.UpstreamExpiry, c.CreatedAt, c.UpdatedAt = c.UpstreamExpiry.UTC(), c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	}
	for i := range s.Tokens {
		tk := &s.Tokens[i]
		tk.Successor = nb(tk.Successor)
		tk.CreatedAt, tk.ExpiresAt, tk.ConsumedAt = tk.CreatedAt.UTC(), tk.ExpiresAt.UTC(), tk.ConsumedAt.UTC()
	}
	for i := range s.Flows {
		f := &s.Flows[i]
		f.Data, f.CreatedAt, f.ExpiresAt = nb(f.Data), f.CreatedAt.UTC(), f.ExpiresAt.UTC()
	}
	for i := range s.Subscriptions {
		sub := &s.Subscriptions[i]
		sub.CreatedAt, sub.UpdatedAt, sub.Refresh.At = sub.CreatedAt.UTC(), sub.UpdatedAt.UTC(), sub.Refresh.At.UTC()
		sub.NextPollAt, sub.UnfurledAt = sub.NextPollAt.UTC(), sub.UnfurledAt.UTC()
	}
	for i := range s.Outbox {
		it := &s.Outbox[i]
		it.Body, it.EnqueuedAt, it.NextAt = nb(it.Body), it.EnqueuedAt.UTC(), it.NextAt.UTC()
	}
	return s
}

// TestMigrateStoreToPostgres: `unfurld migrate-store` copies a bbolt
// store filled by the real flows into PostgreSQL record for record,
// sealed bytes verbatim (they still open with the same keys, TH-41,
// TH-42), prints the counts per kind, and refuses a destination that is
// not empty. `unfurld migrate` finds the schema it applied current.
func TestMigrateStoreToPostgres(t *testing.T) {
	var cluster pgtest.Cluster
	t.Cleanup(cluster.Stop)
	dsn := cluster.Database(t)

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	spec := "k1:" + base64.RawURLEncoding.EncodeToString(key)
	kr, err := sealing.ParseKeyring(spec)
	require.NoError(t, err)

	dir := t.TempDir()
	boltPath := filepath.Join(dir, "data", "unfurld.db")
	src, err := bolt.Open(boltPath, bolt.Options{})
	require.NoError(t, err)
	now := time.Now().UTC()
	spent, pair := fillStore(t, src, kr, now)
	want, err := src.Export(t.Context())
	require.NoError(t, err)
	require.NoError(t, src.Close())

	// Nothing leaves loopback: serve below would deliver the copied
	// queue to Notion and poll the upstream.
	cfg := filepath.Join(dir, "postgres.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`server: {mode: development, secret_keys: "${KEYS}", log: {level: warn}}
storage: {driver: postgres, dsn: "${DATABASE_URL}", path: `+filepath.Join(dir, "data", "unfurld.db")+`}
notion: {api_base_url: "http://127.0.0.1:9"}
providers:
  - name: acme
    upstream: {base_url: "http://127.0.0.1:9", allow_private_networks: true}
    live: {poll_interval: 0s}
    patterns:
      - name: item
        regex: '^https://acme\.example/items/(?<id>\d+)$'
        samples: [https://acme.example/items/1]
        attributes: [{id: title, kind: title, value: "x"}]
`), 0o600))
	vars := map[string]string{"DATABASE_URL": dsn, "KEYS": spec}

	e, out, errb := testEnv(vars)
	require.Equal(t, exitOK, run(t.Context(), []string{"migrate-store", "--from", boltPath, "--to", cfg}, e), errb.String())
	assert.Regexp(t, `connections +2 +2\ntokens +6 +6\nflows +1 +1\nsubscriptions +3 +3\nscheduled polls +1 +1\npending refreshes +1 +1\noutbox +2 +2\n`, out.String())
	assert.NotContains(t, out.String()+errb.String(), dsn, "the DSN may hold a password")

	dst, err := postgres.Open(t.Context(), dsn)
	require.NoError(t, err)
	defer func() { require.NoError(t, dst.Close()) }()
	got, err := dst.Export(t.Context())
	require.NoError(t, err)
	assert.Equal(t, normSnapshot(want), normSnapshot(got), "record for record")
	// The schedule came along: the mark is claimable, the polled link
	// waits for its slot while the others are due.
	marked, err := dst.ClaimPending(t.Context(), "verify", now, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, marked, 1)
	assert.Equal(t, "https://acme.example/items/3", marked[0].URI)
	due, err := dst.ClaimDuePolls(t.Context(), "acme", "verify", now, time.Minute, 10)
	require.NoError(t, err)
	assert.Len(t, due, 2)
	// Settled as a refresh would, so that serve below does not refresh
	// the link against an upstream that is not there.
	_, err = dst.PutSubscription(t.Context(), store.Subscription{SubscriptionKey: marked[0].SubscriptionKey, UpdatedAt: now,
		Refresh: store.RefreshRecord{At: now.Add(time.Second), Trigger: "webhook", Outcome: "unchanged", Status: 200}})
	require.NoError(t, err)

	// The sealed records open in PostgreSQL: the spent refresh token,
	// presented again within its grace, answers with the pair sealed
	// into its successor.
	iss := &issuer.Issuer{Store: dst, Keyring: kr, Now: func() time.Time { return now.Add(time.Second) }}
	again, err := iss.Refresh(t.Context(), issuer.Client{Provider: "acme", AccessTokenTTL: time.Hour, RefreshGrace: time.Minute}, spent)
	require.NoError(t, err)
	assert.Equal(t, pair, again)
	c, err := dst.GetConnection(t.Context(), "conn-1")
	require.NoError(t, err)
	cred, err := sealing.OpenConnectionField(kr, c, sealing.FieldUpstreamCredential, c.UpstreamCredential)
	require.NoError(t, err)
	assert.Equal(t, `{"access_token":"up"}`, string(cred))
	flows, err := dst.ListFlows(t.Context())
	require.NoError(t, err)
	require.Len(t, flows, 1)
	data, err := sealing.OpenFlow(kr, flows[0])
	require.NoError(t, err)
	assert.Equal(t, `{"state":"s"}`, string(data))
	// A new state of a queued key gets a Seq above every copied one.
	last := want.Outbox[len(want.Outbox)-1]
	seq, err := dst.Enqueue(t.Context(), store.OutboxItem{SubscriptionKey: last.SubscriptionKey, Body: []byte("{}"), EnqueuedAt: now, NextAt: now})
	require.NoError(t, err)
	assert.Greater(t, seq, max(want.Outbox[0].Seq, last.Seq))

	// A second copy would merge: refused.
	e, _, errb = testEnv(vars)
	assert.Equal(t, exitFailure, run(t.Context(), []string{"migrate-store", "--from", boltPath, "--to", cfg}, e))
	assert.Contains(t, errb.String(), "the destination store is not empty")

	// Keys that cannot open the source are refused before anything is
	// copied.
	other := make([]byte, 32)
	_, _ = rand.Read(other)
	otherDSN := cluster.Database(t)
	e, _, errb = testEnv(map[string]string{"DATABASE_URL": otherDSN, "KEYS": "k2:" + base64.RawURLEncoding.EncodeToString(other)})
	assert.Equal(t, exitFailure, run(t.Context(), []string{"migrate-store", "--from", boltPath, "--to", cfg}, e))
	assert.Contains(t, errb.String(), "server.secret_keys cannot open")
	untouched, err := postgres.Open(t.Context(), otherDSN)
	require.NoError(t, err)
	empty, err := untouched.Export(t.Context())
	require.NoError(t, err)
	require.NoError(t, untouched.Close())
	assert.Equal(t, store.Snapshot{}, empty)

	// A missing source file is an error, not an empty copy.
	e, _, errb = testEnv(vars)
	assert.Equal(t, exitFailure, run(t.Context(), []string{"migrate-store", "--from", filepath.Join(dir, "nope.db"), "--to", cfg}, e))
	assert.Contains(t, errb.String(), "no such file")

	e, out, errb = testEnv(vars)
	require.Equal(t, exitOK, run(t.Context(), []string{"migrate", "--config", cfg}, e), errb.String())
	assert.Equal(t, "the schema is up to date\n", out.String())
	e, out, errb = testEnv(map[string]string{"DATABASE_URL": cluster.Database(t), "KEYS": spec})
	require.Equal(t, exitOK, run(t.Context(), []string{"migrate", "--config", cfg}, e), errb.String())
	assert.Equal(t, "applied 0001_init.sql\napplied 0002_connection_story.sql\napplied 0003_schedule.sql\napplied 0004_outbox_leases.sql\napplied 0005_poll_budget.sql\n", out.String())

	// The other commands open the store by driver too: a token, then
	// serve answers an unfurl with it and records the subscription in
	// PostgreSQL before answering.
	e, out, errb = testEnv(vars)
	require.Equal(t, exitOK, run(t.Context(), []string{"token", "--config", cfg, "--provider", "acme"}, e), errb.String())
	token := strings.TrimSpace(out.String())
	require.NotEmpty(t, token)
	sctx, stop := context.WithCancel(t.Context())
	se, _, serr := testEnv(vars)
	ready := make(chan string, 1)
	se.ready = func(addr string) { ready <- addr }
	done := make(chan int, 1)
	go func() { done <- run(sctx, []string{"serve", "--config", cfg, "--listen", "127.0.0.1:0"}, se) }()
	var addr string
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("serve exited with %d: %s", code, serr.String())
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/providers/acme/unfurl", strings.NewReader(`{"uri":"https://acme.example/items/9"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	stop()
	assert.Equal(t, exitOK, <-done, serr.String())
	conns, err := dst.ListConnections(t.Context(), "acme")
	require.NoError(t, err)
	var subs []string
	require.NoError(t, dst.ListSubscriptions(t.Context(), "acme", func(s store.Subscription) error {
		subs = append(subs, s.URI)
		return nil
	}))
	assert.Contains(t, subs, "https://acme.example/items/9")
	assert.Len(t, conns, 3)
	// disconnect deletes in the database (no lock to find); compact is
	// for bbolt files and says what PostgreSQL has instead.
	e, out, errb = testEnv(vars)
	require.Equal(t, exitOK, run(t.Context(), []string{"disconnect", "--config", cfg, "--connection", "conn-2"}, e), errb.String())
	assert.Equal(t, "deleted connection conn-2\n", out.String())
	_, err = dst.GetConnection(t.Context(), "conn-2")
	require.ErrorIs(t, err, store.ErrNotFound)
	e, _, errb = testEnv(vars)
	assert.Equal(t, exitUsage, run(t.Context(), []string{"compact", "--config", cfg}, e))
	assert.Contains(t, errb.String(), "VACUUM FULL")

	e, out, errb = testEnv(vars)
	require.Equal(t, exitOK, run(t.Context(), []string{"status", "--config", cfg}, e), errb.String())
	assert.Regexp(t, `acme +2 +0 +4 `, out.String(), "of two copied connections one deleted, and the token's; three copied subscriptions and the unfurl's")
}
