package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/cached"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

// crossReplicaBound is how soon every replica must refuse what one
// replica revoked (issue 11 item 2). A notice takes milliseconds; the
// bound is the requirement, not a tight timing.
const crossReplicaBound = time.Second

// replicas are two cached stores on one database, as two unfurld
// processes hold them, and a plain connection that writes behind both
// (as a notice lost in a gap would leave it).
type replicas struct {
	a, b *cached.Store
	raw  *pgx.Conn
}

func newReplicas(t *testing.T) replicas {
	t.Helper()
	dsn := cluster.Database(t)
	open := func() *cached.Store {
		st, err := postgres.Open(t.Context(), dsn)
		require.NoError(t, err)
		c := cached.New(st, cached.Options{Changes: st})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	raw, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close(context.Background()) })
	return replicas{a: open(), b: open(), raw: raw}
}

// at is the clock reading every lookup passes: fixed, so bearerTTL never
// runs out during a test and only an invalidation can change an answer.
var at = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// seed stores connection c1 with access token d1 of grant g1, and a
// code of the same grant already consumed (for a replay).
func (r replicas) seed(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, r.a.CreateConnection(ctx, store.Connection{ID: "c1", Provider: "tracker", AccountKey: "k", Status: store.StatusActive}))
	require.NoError(t, r.a.CreateToken(ctx, store.Token{Digest: "d1", Kind: store.KindAccess, Provider: "tracker",
		ConnectionID: "c1", GrantID: "g1", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}))
	require.NoError(t, r.a.CreateToken(ctx, store.Token{Digest: "code", Kind: store.KindCode, Provider: "tracker",
		ConnectionID: "c1", GrantID: "g1", ConsumedAt: at.Add(-time.Hour)}))
}

// waitCaching waits until st's change feed is live: until then st
// caches nothing, and a test of invalidation would pass without one. A
// token deleted behind st's back (no notice) and still answered proves
// that st answers from its cache.
func waitCaching(t *testing.T, st *cached.Store, raw *pgx.Conn) {
	t.Helper()
	ctx := t.Context()
	require.Eventually(t, func() bool {
		_, err := raw.Exec(ctx, `INSERT INTO tokens (digest, kind, provider, connection_id, grant_id, redirect_uri)
			VALUES ('probe', 'access', 'tracker', '', '', '') ON CONFLICT DO NOTHING`)
		require.NoError(t, err)
		if _, err := st.LookupBearer(ctx, "probe", at); err != nil {
			return false
		}
		_, err = raw.Exec(ctx, `DELETE FROM tokens WHERE digest = 'probe'`)
		require.NoError(t, err)
		_, err = st.LookupBearer(ctx, "probe", at)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "the change feed never came up")
}

// TestRevocationReachesEveryReplica_TH26: a token revoked, a connection
// deleted or marked reconnect_required through replica A is refused by
// replica B, which had it cached, within a second: B learns it from the
// notice A's transaction sent, not from its cache's TTL (the lookups'
// clock stands still).
func TestRevocationReachesEveryReplica_TH26(t *testing.T) {
	tests := []struct {
		name  string
		write func(ctx context.Context, a *cached.Store) error
		// refused says whether B's answer shows the write.
		refused func(b cached.Bearer, err error) bool
	}{
		{"DeleteToken", func(ctx context.Context, a *cached.Store) error { return a.DeleteToken(ctx, "d1") }, gone},
		{"DeleteConnection", func(ctx context.Context, a *cached.Store) error { return a.DeleteConnection(ctx, "c1") }, gone},
		{"RevokeGrant", func(ctx context.Context, a *cached.Store) error { _, err := a.RevokeGrant(ctx, "g1"); return err }, gone},
		{"ConsumeToken replay", func(ctx context.Context, a *cached.Store) error {
			_, _, err := a.ConsumeToken(ctx, store.Consume{Kind: store.KindCode, Digest: "code", Provider: "tracker", Now: at})
			if errors.Is(err, store.ErrReplayed) {
				return nil
			}
			return err
		}, gone},
		{"UpdateConnection reconnect_required", func(ctx context.Context, a *cached.Store) error {
			return a.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
				c.Status = store.StatusReconnect
				return c, nil
			})
		}, func(b cached.Bearer, err error) bool { return err == nil && b.Conn.Status == store.StatusReconnect }},
		{"Sweep", func(ctx context.Context, a *cached.Store) error {
			_, err := a.Sweep(ctx, at.Add(2*time.Hour), time.Hour)
			return err
		}, gone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newReplicas(t)
			ctx := t.Context()
			r.seed(t)
			waitCaching(t, r.b, r.raw)
			_, err := r.b.LookupBearer(ctx, "d1", at)
			require.NoError(t, err, "B caches d1")

			start := time.Now()
			require.NoError(t, tc.write(ctx, r.a))
			require.Eventually(t, func() bool { return tc.refused(r.b.LookupBearer(ctx, "d1", at)) },
				crossReplicaBound, 5*time.Millisecond, "replica B still accepts what A revoked")
			t.Logf("seen by the other replica after %s", time.Since(start))
		})
	}
}

// gone says the lookup refused the token.
func gone(_ cached.Bearer, err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, cached.ErrConnectionGone)
}

// TestListenerGapDropsTheCache_TH26: the listening connection is cut,
// and a token is deleted while no notice can reach B. When B's listener
// is back, B has dropped its cache, so it refuses the token.
func TestListenerGapDropsTheCache_TH26(t *testing.T) {
	r := newReplicas(t)
	ctx := t.Context()
	r.seed(t)
	waitCaching(t, r.b, r.raw)
	_, err := r.b.LookupBearer(ctx, "d1", at)
	require.NoError(t, err)

	var cut int
	require.NoError(t, r.raw.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'unfurld listen' AND datname = current_database()`).Scan(&cut))
	require.Equal(t, 2, cut, "both replicas listen")
	_, err = r.raw.Exec(ctx, `DELETE FROM tokens WHERE digest = 'd1'`) // no notice: the write of the gap
	require.NoError(t, err)

	require.Eventually(t, func() bool { return gone(r.b.LookupBearer(ctx, "d1", at)) },
		10*time.Second, 20*time.Millisecond, "B kept a token deleted during the gap")
	waitCaching(t, r.b, r.raw) // and it caches again once the feed is back
}

// TestSubscriptionDeleteReachesEveryReplica_TH39: B remembers that it
// wrote a subscription's hash; A deletes the subscription (Notion
// deleted the preview); B's next unfurl of it records it again instead
// of trusting its memory for a minute.
func TestSubscriptionDeleteReachesEveryReplica_TH39(t *testing.T) {
	r := newReplicas(t)
	ctx := t.Context()
	r.seed(t)
	waitCaching(t, r.b, r.raw)
	sub := store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: "tracker", ConnectionID: "c1", URI: "https://t.example/1"}, AttrHash: "h1"}
	require.NoError(t, r.b.RecordSubscription(ctx, sub))
	_, err := r.a.DeleteSubscriptionsByURI(ctx, "tracker", sub.URI)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		require.NoError(t, r.b.RecordSubscription(ctx, sub))
		_, err := r.a.GetSubscription(ctx, sub.SubscriptionKey)
		return err == nil
	}, crossReplicaBound, 5*time.Millisecond, "B trusted its memory of a subscription A deleted")
	got, err := r.a.GetSubscription(ctx, sub.SubscriptionKey)
	require.NoError(t, err)
	assert.Equal(t, "h1", got.AttrHash)
}
