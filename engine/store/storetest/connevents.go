package storetest

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// testConnectionEvents: the reconnect reason, the last upstream refresh
// and the bounded list of failed unfurls survive a round trip, and
// WithFailure through UpdateConnection keeps only the newest.
func testConnectionEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := baseTime()
	c := newConn("c1", "github")
	c.UpstreamRefreshedAt = at.Add(time.Minute)
	c.Status = store.StatusReconnect
	c.Reconnect = store.ConnectionEvent{At: at.Add(2 * time.Minute), Call: "upstream request", URI: "https://github.com/a/b", Status: 401, Detail: "upstream refused the credential"}
	c.Failures = []store.ConnectionEvent{{At: at, Call: "unfurl", URI: "https://github.com/a/b/issues/1", Status: 404, Detail: "not found"}}
	require.NoError(t, s.CreateConnection(ctx, c))
	assertConn(t, s, c)

	for i := range store.MaxConnectionFailures + 2 {
		err := s.UpdateConnection(ctx, "c1", func(old store.Connection) (store.Connection, error) {
			return old.WithFailure(store.ConnectionEvent{At: at.Add(time.Duration(i+1) * time.Hour), Call: "unfurl", URI: "https://github.com/a/b/issues/" + strconv.Itoa(i+2), Status: 502}), nil
		})
		require.NoError(t, err)
	}
	got, err := s.GetConnection(ctx, "c1")
	require.NoError(t, err)
	require.Len(t, got.Failures, store.MaxConnectionFailures)
	assert.Equal(t, "https://github.com/a/b/issues/4", got.Failures[0].URI, "the oldest went first")
	assert.Equal(t, "https://github.com/a/b/issues/8", got.Failures[store.MaxConnectionFailures-1].URI)
	assert.Equal(t, normConn(c).Reconnect, normConn(got).Reconnect)

	list, err := s.ListConnections(ctx, "github")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, normConn(got), normConn(list[0]))

	// A connection written without them reads with none.
	require.NoError(t, s.CreateConnection(ctx, newConn("c2", "github")))
	plain, err := s.GetConnection(ctx, "c2")
	require.NoError(t, err)
	assert.Empty(t, plain.Failures)
	assert.Zero(t, plain.Reconnect)
	assert.True(t, plain.UpstreamRefreshedAt.IsZero())
}

// testListConnectionTokens: the tokens of one connection, in digest
// order, and none once the connection is deleted.
func testListConnectionTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	require.NoError(t, s.CreateConnection(ctx, newConn("c1", "github")))
	require.NoError(t, s.CreateConnection(ctx, newConn("c2", "github")))
	for _, tok := range []store.Token{
		newToken("d2", store.KindRefresh, "c1"),
		newToken("d1", store.KindAccess, "c1"),
		newToken("d3", store.KindAccess, "c2"),
	} {
		require.NoError(t, s.CreateToken(ctx, tok))
	}
	got, err := s.ListConnectionTokens(ctx, "c1")
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, normToken(newToken("d1", store.KindAccess, "c1")), normToken(got[0]))
	assert.Equal(t, normToken(newToken("d2", store.KindRefresh, "c1")), normToken(got[1]))

	none, err := s.ListConnectionTokens(ctx, "nope")
	require.NoError(t, err)
	assert.Empty(t, none)

	require.NoError(t, s.DeleteConnection(ctx, "c1"))
	gone, err := s.ListConnectionTokens(ctx, "c1")
	require.NoError(t, err)
	assert.Empty(t, gone)
}
