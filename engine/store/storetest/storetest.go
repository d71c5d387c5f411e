// Package storetest is the conformance suite of store.Store: every
// implementation runs it (STYLE.md 8; the model is dex's
// storage/conformance). A behaviour not tested here is not part of the
// contract.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// Run runs the suite; newStore returns a fresh, empty store.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Tokens", testTokens},
		{"TokenKindMismatch", testTokenKindMismatch},
		{"Connections", testConnections},
		{"UpdateConnectionAtomic", testUpdateConnectionAtomic},
		{"UpdateConnectionAbort", testUpdateConnectionAbort},
		{"DeleteConnectionCascades", testDeleteConnectionCascades},
		{"Subscriptions", testSubscriptions},
		{"DeleteSubscriptionsByURI", testDeleteSubscriptionsByURI},
		{"ListSubscriptions", testListSubscriptions},
		{"TimesRoundTrip", testTimesRoundTrip},
		{"BytesAreCopies", testBytesAreCopies},
		{"CancelledContext", testCancelledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func conn(id, provider string) store.Connection {
	return store.Connection{ID: id, Provider: provider, AccountKey: "acct-" + id, AccountName: "Account " + id,
		Status: store.StatusActive, CreatedAt: t0, UpdatedAt: t0}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	tok := store.Token{Digest: "d1", Kind: store.KindAccess, Provider: "github", ConnectionID: "c1", GrantID: "g1",
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	require.NoError(t, s.CreateToken(ctx, tok))
	require.ErrorIs(t, s.CreateToken(ctx, tok), store.ErrAlreadyExists)

	got, err := s.GetToken(ctx, store.KindAccess, "d1")
	require.NoError(t, err)
	assert.Equal(t, tok.Provider, got.Provider)
	assert.Equal(t, tok.ConnectionID, got.ConnectionID)
	assert.Equal(t, tok.GrantID, got.GrantID)
	assert.True(t, tok.ExpiresAt.Equal(got.ExpiresAt))
	assert.True(t, got.Expired(t0.Add(time.Hour)))
	assert.False(t, got.Expired(t0))

	_, err = s.GetToken(ctx, store.KindAccess, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, s.DeleteToken(ctx, "d1"))
	require.ErrorIs(t, s.DeleteToken(ctx, "d1"), store.ErrNotFound)
	_, err = s.GetToken(ctx, store.KindAccess, "d1")
	require.ErrorIs(t, err, store.ErrNotFound)

	// A token without expiry never expires.
	require.NoError(t, s.CreateToken(ctx, store.Token{Digest: "d2", Kind: store.KindAccess, Provider: "github", CreatedAt: t0}))
	got, err = s.GetToken(ctx, store.KindAccess, "d2")
	require.NoError(t, err)
	assert.True(t, got.ExpiresAt.IsZero())
	assert.False(t, got.Expired(t0.Add(100*365*24*time.Hour)))
}

// A code presented as a bearer token, or the reverse, must not match
// (TH-25).
func testTokenKindMismatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	require.NoError(t, s.CreateToken(ctx, store.Token{Digest: "c", Kind: store.KindCode, Provider: "p", CreatedAt: t0}))
	for _, k := range []store.TokenKind{store.KindAccess, store.KindRefresh} {
		_, err := s.GetToken(ctx, k, "c")
		require.ErrorIs(t, err, store.ErrNotFound, k)
	}
	_, err := s.GetToken(ctx, store.KindCode, "c")
	require.NoError(t, err)
}

func testConnections(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := conn("c1", "github")
	c.NotionToken = []byte("sealed-notion")
	c.UpstreamCredential = []byte("sealed-upstream")
	c.UpstreamExpiry = t0.Add(time.Hour)
	c.WorkspaceID, c.WorkspaceName, c.BotID = "w", "Workspace", "b"
	require.NoError(t, s.CreateConnection(ctx, c))
	require.ErrorIs(t, s.CreateConnection(ctx, c), store.ErrAlreadyExists)
	require.NoError(t, s.CreateConnection(ctx, conn("c2", "gitlab")))

	got, err := s.GetConnection(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, c.AccountKey, got.AccountKey)
	assert.Equal(t, c.NotionToken, got.NotionToken)
	assert.Equal(t, c.UpstreamCredential, got.UpstreamCredential)
	assert.True(t, c.UpstreamExpiry.Equal(got.UpstreamExpiry))
	assert.Equal(t, "Workspace", got.WorkspaceName)

	_, err = s.GetConnection(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.UpdateConnection(ctx, "nope", func(c store.Connection) (store.Connection, error) { return c, nil }), store.ErrNotFound)
	require.ErrorIs(t, s.DeleteConnection(ctx, "nope"), store.ErrNotFound)

	all, err := s.ListConnections(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, "c1", all[0].ID)
	gh, err := s.ListConnections(ctx, "github")
	require.NoError(t, err)
	require.Len(t, gh, 1)
	assert.Equal(t, "c1", gh[0].ID)

	require.NoError(t, s.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
		c.Status = store.StatusReconnect
		c.ID = "ignored" // the id is the key; updaters cannot move a record
		return c, nil
	}))
	got, err = s.GetConnection(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, store.StatusReconnect, got.Status)
	_, err = s.GetConnection(ctx, "ignored")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// 100 concurrent read-modify-writes lose nothing: every updater sees a
// distinct previous value and the final count is 100 (dex's
// RunConcurrencyTests).
func testUpdateConnectionAtomic(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := conn("c1", "github")
	c.WorkspaceName = "0"
	require.NoError(t, s.CreateConnection(ctx, c))
	const n = 100
	seen := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
				v, err := strconv.Atoi(c.WorkspaceName)
				if err != nil {
					return c, err
				}
				seen <- v
				c.WorkspaceName = strconv.Itoa(v + 1)
				return c, nil
			})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	close(seen)
	distinct := map[int]bool{}
	for v := range seen {
		distinct[v] = true
	}
	assert.Len(t, distinct, n, "every updater saw a distinct previous value")
	got, err := s.GetConnection(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(n), got.WorkspaceName)
}

func testUpdateConnectionAbort(t *testing.T, s store.Store) {
	ctx := t.Context()
	require.NoError(t, s.CreateConnection(ctx, conn("c1", "github")))
	boom := errors.New("boom")
	err := s.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
		c.AccountName = "changed"
		return c, boom
	})
	require.ErrorIs(t, err, boom)
	got, err := s.GetConnection(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "Account c1", got.AccountName, "an aborted update changes nothing")
}

// Deleting a connection erases its tokens and subscriptions and nothing
// else, in one step (TH-40).
func testDeleteConnectionCascades(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"c1", "c2"} {
		require.NoError(t, s.CreateConnection(ctx, conn(id, "github")))
		for _, k := range []store.TokenKind{store.KindAccess, store.KindRefresh} {
			require.NoError(t, s.CreateToken(ctx, store.Token{Digest: id + string(k), Kind: k, Provider: "github", ConnectionID: id, CreatedAt: t0}))
		}
		for _, uri := range []string{"https://x/1", "https://x/2"} {
			_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: "github", ConnectionID: id, URI: uri}, AttrHash: "h", CreatedAt: t0})
			require.NoError(t, err)
		}
	}
	require.NoError(t, s.DeleteConnection(ctx, "c1"))

	_, err := s.GetConnection(ctx, "c1")
	require.ErrorIs(t, err, store.ErrNotFound)
	for _, k := range []store.TokenKind{store.KindAccess, store.KindRefresh} {
		_, err := s.GetToken(ctx, k, "c1"+string(k))
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.GetToken(ctx, k, "c2"+string(k))
		require.NoError(t, err, "other connections keep their tokens")
	}
	var left []store.SubscriptionKey
	require.NoError(t, s.ListSubscriptions(ctx, "", func(sub store.Subscription) error {
		left = append(left, sub.SubscriptionKey)
		return nil
	}))
	assert.Equal(t, []store.SubscriptionKey{
		{Provider: "github", ConnectionID: "c2", URI: "https://x/1"},
		{Provider: "github", ConnectionID: "c2", URI: "https://x/2"},
	}, left)
	// The by-URI index forgot c1 too.
	n, err := s.DeleteSubscriptionsByURI(ctx, "github", "https://x/1")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}

func testSubscriptions(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := store.SubscriptionKey{Provider: "github", ConnectionID: "c1", URI: "https://github.com/a/b/issues/1"}
	sub := store.Subscription{SubscriptionKey: k, AttrHash: "h1", CreatedAt: t0, UpdatedAt: t0}

	wrote, err := s.PutSubscription(ctx, sub)
	require.NoError(t, err)
	assert.True(t, wrote, "first put writes")
	later := sub
	later.CreatedAt, later.UpdatedAt = t0.Add(time.Hour), t0.Add(time.Hour)
	wrote, err = s.PutSubscription(ctx, later)
	require.NoError(t, err)
	assert.False(t, wrote, "identical attributes and validators: no write")

	for _, change := range []func(*store.Subscription){
		func(s *store.Subscription) { s.AttrHash = "h2" },
		func(s *store.Subscription) { s.ETag = `"e1"` },
		func(s *store.Subscription) { s.LastModified = "Mon, 02 Jan 2006 15:04:05 GMT" },
	} {
		change(&later)
		wrote, err = s.PutSubscription(ctx, later)
		require.NoError(t, err)
		assert.True(t, wrote)
	}
	got, err := s.GetSubscription(ctx, k)
	require.NoError(t, err)
	assert.True(t, t0.Equal(got.CreatedAt), "CreatedAt is kept from the first record")
	assert.True(t, later.UpdatedAt.Equal(got.UpdatedAt))
	assert.Equal(t, "h2", got.AttrHash)
	assert.Equal(t, `"e1"`, got.ETag)

	require.NoError(t, s.DeleteSubscription(ctx, k))
	require.ErrorIs(t, s.DeleteSubscription(ctx, k), store.ErrNotFound)
	_, err = s.GetSubscription(ctx, k)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testDeleteSubscriptionsByURI(t *testing.T, s store.Store) {
	ctx := t.Context()
	put := func(p, c, u string) {
		_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: p, ConnectionID: c, URI: u}, AttrHash: "h", CreatedAt: t0})
		require.NoError(t, err)
	}
	put("github", "c1", "https://x/1")
	put("github", "c2", "https://x/1")
	put("github", "c1", "https://x/2")
	put("gitlab", "c3", "https://x/1")
	// A uri that is a prefix of another must not take it along.
	put("github", "c1", "https://x/10")

	n, err := s.DeleteSubscriptionsByURI(ctx, "github", "https://x/1")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	n, err = s.DeleteSubscriptionsByURI(ctx, "github", "https://x/1")
	require.NoError(t, err)
	assert.Equal(t, 0, n)

	var left []string
	require.NoError(t, s.ListSubscriptions(ctx, "", func(sub store.Subscription) error {
		left = append(left, sub.Provider+" "+sub.ConnectionID+" "+sub.URI)
		return nil
	}))
	assert.Equal(t, []string{"github c1 https://x/10", "github c1 https://x/2", "gitlab c3 https://x/1"}, left)
}

func testListSubscriptions(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i, p := range []string{"github", "gitlab", "github", "git"} {
		_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: p, ConnectionID: "c", URI: fmt.Sprintf("u%d", i)}, CreatedAt: t0})
		require.NoError(t, err)
	}
	var gh []string
	require.NoError(t, s.ListSubscriptions(ctx, "github", func(sub store.Subscription) error {
		gh = append(gh, sub.URI)
		return nil
	}))
	assert.Equal(t, []string{"u0", "u2"}, gh, "provider filter is exact, not a prefix")

	stop := errors.New("stop")
	calls := 0
	err := s.ListSubscriptions(ctx, "", func(store.Subscription) error {
		calls++
		return stop
	})
	require.ErrorIs(t, err, stop)
	assert.Equal(t, 1, calls)
}

func testTimesRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	when := time.Date(2026, 3, 1, 8, 30, 15, 123456789, loc)
	require.NoError(t, s.CreateToken(ctx, store.Token{Digest: "d", Kind: store.KindAccess, Provider: "p", CreatedAt: when, ExpiresAt: when.Add(time.Minute)}))
	got, err := s.GetToken(ctx, store.KindAccess, "d")
	require.NoError(t, err)
	assert.True(t, when.Equal(got.CreatedAt), "%v vs %v", when, got.CreatedAt)
	assert.True(t, when.Add(time.Minute).Equal(got.ExpiresAt))
	assert.True(t, got.Expired(when.Add(time.Minute).UTC()))
}

func testBytesAreCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := conn("c1", "github")
	c.NotionToken = []byte("abc")
	require.NoError(t, s.CreateConnection(ctx, c))
	c.NotionToken[0] = 'X' // the caller's slice is not the stored one
	got, err := s.GetConnection(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, []byte("abc"), got.NotionToken)
	got.NotionToken[0] = 'Y' // nor is the returned one
	again, err := s.GetConnection(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, []byte("abc"), again.NotionToken)
}

func testCancelledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, s.CreateToken(ctx, store.Token{Digest: "d", Kind: store.KindAccess}), context.Canceled)
	_, err := s.GetToken(ctx, store.KindAccess, "d")
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, s.CreateConnection(ctx, conn("c", "p")), context.Canceled)
	_, err = s.PutSubscription(ctx, store.Subscription{})
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, s.ListSubscriptions(ctx, "", func(store.Subscription) error { return nil }), context.Canceled)
	// Nothing was written.
	_, err = s.GetConnection(t.Context(), "c")
	require.ErrorIs(t, err, store.ErrNotFound)
}
