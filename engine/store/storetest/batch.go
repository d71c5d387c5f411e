package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// testPutSubscriptions runs the batch subtests on one store; they use
// separate providers and connections, so they do not see each other.
func testPutSubscriptions(t *testing.T, s store.Store) {
	t.Run("Semantics", func(t *testing.T) { testPutSubscriptionsSemantics(t, s) })
	t.Run("Large", func(t *testing.T) { testPutSubscriptionsLarge(t, s) })
}

// testPutSubscriptionsSemantics: the batch form of PutSubscription writes
// exactly what PutSubscription would (new or changed records, CreatedAt kept),
// applies records in order, skips records of connections that do not
// exist (TH-40: a batch queued before DeleteConnection must not bring
// them back), and with a cancelled context writes nothing.
func testPutSubscriptionsSemantics(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"c1", "c2"} {
		require.NoError(t, s.CreateConnection(ctx, newConn(id, "github")))
	}
	a := newSub("github", "c1", "https://github.com/a")
	b := newSub("github", "c2", "https://github.com/b")
	orphan := newSub("github", "gone", "https://github.com/c")

	n, err := s.PutSubscriptions(ctx, nil)
	require.NoError(t, err)
	assert.Zero(t, n, "empty batch")

	n, err = s.PutSubscriptions(ctx, []store.Subscription{a, orphan, b})
	require.NoError(t, err)
	assert.Equal(t, 2, n, "two new records; the orphan is skipped")
	assertSub(t, s, a)
	assertSub(t, s, b)
	_, err = s.GetSubscription(ctx, orphan.SubscriptionKey)
	require.ErrorIs(t, err, store.ErrNotFound, "a subscription of an unknown connection")

	n, err = s.PutSubscriptions(ctx, []store.Subscription{a, b})
	require.NoError(t, err)
	assert.Zero(t, n, "identical records are not written again")

	later := baseTime().Add(time.Hour)
	changed := a
	changed.AttrHash = "hash-2"
	changed.CreatedAt, changed.UpdatedAt = later, later // CreatedAt must be ignored
	fresh := newSub("github", "c1", "https://github.com/d")
	n, err = s.PutSubscriptions(ctx, []store.Subscription{b, changed, fresh})
	require.NoError(t, err)
	assert.Equal(t, 2, n, "one changed and one new record")
	want := changed
	want.CreatedAt = a.CreatedAt
	assertSub(t, s, want)
	assertSub(t, s, b)
	assertSub(t, s, fresh)

	// In order: the second of two identical records is a repeat, and the
	// last of two different ones wins.
	third := want
	third.AttrHash = "hash-3"
	n, err = s.PutSubscriptions(ctx, []store.Subscription{third, third})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "a repeat within the batch")
	fourth := third
	fourth.AttrHash = "hash-4"
	n, err = s.PutSubscriptions(ctx, []store.Subscription{third, fourth})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "third is stored already; fourth changes it")
	assertSub(t, s, fourth)

	// After DeleteConnection, a late batch for that connection is dropped.
	require.NoError(t, s.DeleteConnection(ctx, "c2"))
	late := b
	late.AttrHash = "hash-late"
	n, err = s.PutSubscriptions(ctx, []store.Subscription{late})
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = s.GetSubscription(ctx, b.SubscriptionKey)
	require.ErrorIs(t, err, store.ErrNotFound)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	gone := fourth
	gone.AttrHash = "hash-cancelled"
	_, err = s.PutSubscriptions(cancelled, []store.Subscription{gone, newSub("github", "c1", "https://github.com/e")})
	require.ErrorIs(t, err, context.Canceled)
	assertSub(t, s, fourth)
	assert.Len(t, listSubs(t, s, "github"), 2, "nothing written under a cancelled context")
}

// testPutSubscriptionsLarge: a batch larger than any internal page or
// listing size is written whole.
func testPutSubscriptionsLarge(t *testing.T, s store.Store) {
	ctx := t.Context()
	require.NoError(t, s.CreateConnection(ctx, newConn("c9", "linear")))
	const n = 600
	subs := make([]store.Subscription, n)
	for i := range subs {
		subs[i] = newSub("linear", "c9", fmt.Sprintf("https://linear.app/a/issue/A-%04d", i))
	}
	written, err := s.PutSubscriptions(ctx, subs)
	require.NoError(t, err)
	assert.Equal(t, n, written)
	assert.Len(t, listSubs(t, s, "linear"), n)
	assertSub(t, s, subs[n-1])
}
