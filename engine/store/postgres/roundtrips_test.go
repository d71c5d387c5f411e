package postgres_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/cached"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

// counted opens a store on a fresh database whose round trips add to n.
func counted(t *testing.T, n *atomic.Int64) *postgres.Store {
	t.Helper()
	s, err := postgres.OpenWith(t.Context(), cluster.Database(t), postgres.Options{RoundTrip: func() { n.Add(1) }})
	require.NoError(t, err)
	return s
}

// TestRoundTripsCounted: each operation counts the exchanges it makes
// with the server: one statement is one, a transaction adds its BEGIN
// and COMMIT, and the first run of a statement with arguments on a
// connection adds its preparation.
func TestRoundTripsCounted(t *testing.T) {
	var n atomic.Int64
	s := counted(t, &n)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ctx := t.Context()
	delta := func(op func()) int64 {
		before := n.Load()
		op()
		return n.Load() - before
	}
	require.Positive(t, n.Load(), "opening applies the migrations")

	tests := []struct {
		name string
		op   func()
		want int64
	}{
		{"a read, first run: prepare and execute", func() {
			_, err := s.GetConnection(ctx, "nope")
			require.ErrorIs(t, err, store.ErrNotFound)
		}, 2},
		{"the same read again: the statement is prepared", func() {
			_, err := s.GetConnection(ctx, "nope")
			require.ErrorIs(t, err, store.ErrNotFound)
		}, 1},
		// Statements without arguments go as simple queries: nothing to prepare.
		{"a transaction: begin, insert, delete, commit", func() { require.NoError(t, s.Probe(ctx)) }, 4},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, delta(tt.op), tt.name)
	}
}

// TestWarmUnfurlCostsNoRoundTrip: what the unfurl handler asks of the
// store on a warm hit (the bearer lookup and the subscription record,
// through the cached store every component shares) reaches the database
// the first time and never again while the cache holds it: the hot path
// reads no database (docs/operations.md, PostgreSQL performance).
func TestWarmUnfurlCostsNoRoundTrip(t *testing.T) {
	var n atomic.Int64
	now := time.Now()
	st := cached.New(counted(t, &n), cached.Options{Now: func() time.Time { return now }})
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	ctx := t.Context()
	require.NoError(t, st.CreateConnection(ctx, store.Connection{ID: "c1", Provider: "p", AccountKey: "k", Status: store.StatusActive, CreatedAt: now}))
	require.NoError(t, st.CreateToken(ctx, store.Token{Digest: "bearer", Kind: store.KindAccess, Provider: "p", ConnectionID: "c1",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	sub := store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: "p", ConnectionID: "c1", URI: "https://x.example/1"},
		AttrHash: "h1", CreatedAt: now, UpdatedAt: now}
	unfurl := func() {
		_, err := st.LookupBearer(ctx, "bearer", now)
		require.NoError(t, err)
		require.NoError(t, st.RecordSubscription(ctx, sub))
	}

	before := n.Load()
	unfurl()
	assert.Positive(t, n.Load()-before, "the first unfurl reads the bearer and writes the subscription")

	before = n.Load()
	for range 10 {
		unfurl()
	}
	assert.Zero(t, n.Load()-before, "warm unfurls")
}
