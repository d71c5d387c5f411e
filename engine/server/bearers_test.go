package server

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/cached"
	"github.com/unfurld/unfurld/engine/store/memory"
)

// TestLookupBearerErrors: what the shared store says of a token becomes
// the bearer error the error handler answers 401 with (TH-26): an
// unknown token, and a token whose connection was deleted through the
// shared store, refused at once.
func TestLookupBearerErrors(t *testing.T) {
	ctx := t.Context()
	st := cached.New(memory.New(), cached.Options{})
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	s := New(Config{Store: st, Now: func() time.Time { return now }})
	require.NoError(t, st.CreateConnection(ctx, store.Connection{ID: "plain", Provider: "tracker", AccountKey: "k1"}))
	require.NoError(t, st.CreateToken(ctx, store.Token{Digest: "d-plain", Kind: store.KindAccess, Provider: "tracker", ConnectionID: "plain"}))

	b, err := s.lookupBearer(ctx, "d-plain", now)
	require.NoError(t, err)
	assert.Equal(t, "plain", b.Conn.ID)

	var be *bearerError
	_, err = s.lookupBearer(ctx, "unknown", now)
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "unknown token", be.reason)

	require.NoError(t, st.CreateToken(ctx, store.Token{Digest: "d-orphan", Kind: store.KindAccess, Provider: "tracker", ConnectionID: "gone"}))
	_, err = s.lookupBearer(ctx, "d-orphan", now)
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "token of a deleted connection", be.reason)

	require.NoError(t, st.DeleteConnection(ctx, "plain"))
	_, err = s.lookupBearer(ctx, "d-plain", now)
	require.ErrorAs(t, err, &be, "refused at once, within the cache TTL")
}

func TestNewRequestID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		require.Len(t, id, 32)
		require.NotContains(t, seen, id)
		seen[id] = true
	}
}
