package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// newRefresh is the story of a live refresh, distinct for each n.
func newRefresh(n int) store.RefreshRecord {
	return store.RefreshRecord{
		At: baseTime().Add(time.Duration(n) * time.Minute), Trigger: "poll", Outcome: "changed",
		Status: 200 + n, Detail: "detail",
	}
}

// testPutSubscriptionOwners: the two kinds of put own different fields
// (store.MergeSubscription). An unfurl's put sets AttrHash and keeps what
// the last refresh recorded; a refresh's put sets the validators and
// Refresh, keeps AttrHash, and never brings back a deleted subscription
// (TH-40); a delivery (AckOutbox) keeps the refresh's fields.
func testPutSubscriptionOwners(t *testing.T, s store.Store) {
	ctx := t.Context()
	require.NoError(t, s.CreateConnection(ctx, newConn("c1", "github")))
	at := baseTime()
	k := store.SubscriptionKey{Provider: "github", ConnectionID: "c1", URI: "https://github.com/a/b/issues/1"}
	unfurled := store.Subscription{SubscriptionKey: k, AttrHash: "hash-1", CreatedAt: at, UpdatedAt: at}

	refreshed := store.Subscription{
		SubscriptionKey: k, AttrHash: "stale", ETag: `"e1"`, LastModified: "Fri, 14 Mar 2025 15:09:26 GMT",
		Refresh: newRefresh(1), CreatedAt: at.Add(time.Hour), UpdatedAt: at.Add(time.Hour),
	}
	wrote, err := s.PutSubscription(ctx, refreshed)
	require.NoError(t, err)
	assert.False(t, wrote, "a refresh does not create a subscription")
	n, err := s.PutSubscriptions(ctx, []store.Subscription{refreshed})
	require.NoError(t, err)
	assert.Zero(t, n, "nor in a batch")
	_, err = s.GetSubscription(ctx, k)
	require.ErrorIs(t, err, store.ErrNotFound)

	wrote, err = s.PutSubscription(ctx, unfurled)
	require.NoError(t, err)
	require.True(t, wrote)

	n, err = s.PutSubscriptions(ctx, []store.Subscription{refreshed})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	want := unfurled
	want.ETag, want.LastModified, want.Refresh, want.UpdatedAt = refreshed.ETag, refreshed.LastModified, refreshed.Refresh, refreshed.UpdatedAt
	assertSub(t, s, want)

	n, err = s.PutSubscriptions(ctx, []store.Subscription{refreshed})
	require.NoError(t, err)
	assert.Zero(t, n, "the same refresh again")

	// An unfurl's put without validators: nothing changed for it.
	again := unfurled
	again.UpdatedAt = at.Add(2 * time.Hour)
	wrote, err = s.PutSubscription(ctx, again)
	require.NoError(t, err)
	assert.False(t, wrote, "same hash: the validators are not the unfurl's to clear")
	assertSub(t, s, want)

	again.AttrHash = "hash-2"
	n, err = s.PutSubscriptions(ctx, []store.Subscription{again})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	want.AttrHash, want.UpdatedAt = "hash-2", again.UpdatedAt
	assertSub(t, s, want)

	// A delivery sets AttrHash and keeps the refresh's fields.
	sent := store.OutboxItem{SubscriptionKey: k, AttrHash: "hash-3"}
	require.NoError(t, s.AckOutbox(ctx, sent, at.Add(3*time.Hour)))
	want.AttrHash, want.UpdatedAt, want.DeliveredAt = "hash-3", at.Add(3*time.Hour), at.Add(3*time.Hour)
	assertSub(t, s, want)

	// Deleted while a refresh ran: its late record is dropped.
	require.NoError(t, s.DeleteSubscription(ctx, k))
	late := refreshed
	late.Refresh = newRefresh(2)
	n, err = s.PutSubscriptions(ctx, []store.Subscription{late})
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = s.GetSubscription(ctx, k)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// testListSubscriptionsByURIPrefix: every connection's subscription of
// every URI that starts with the prefix, in (uri, connection) order, of
// that provider only, at most limit.
func testListSubscriptionsByURIPrefix(t *testing.T, s store.Store) {
	ctx := t.Context()
	const issue = lookupIssue
	keys := lookupKeys()
	for _, i := range []int{4, 0, 7, 6, 2, 5, 1, 3} {
		sub := newSub(keys[i].Provider, keys[i].ConnectionID, keys[i].URI)
		_, err := s.PutSubscription(ctx, sub)
		require.NoError(t, err)
	}
	tests := []struct {
		name     string
		provider string
		prefix   string
		limit    int
		want     []store.SubscriptionKey
	}{
		{"prefix", "github", issue, 100, []store.SubscriptionKey{keys[0], keys[1], keys[7], keys[2], keys[3]}},
		{"limit", "github", issue, 2, keys[:2]},
		{"zero limit", "github", issue, 0, nil},
		{"fragment only", "github", issue + "#", 100, keys[2:3]},
		{"control bytes", "github", issue + "\x00", 100, keys[7:8]},
		{"other provider", "linear", issue, 100, keys[6:7]},
		{"nothing", "github", "https://gitlab.com/", 100, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListSubscriptionsByURIPrefix(ctx, tc.provider, tc.prefix, tc.limit)
			require.NoError(t, err)
			var gotKeys []store.SubscriptionKey
			for _, sub := range got {
				gotKeys = append(gotKeys, sub.SubscriptionKey)
				assert.Equal(t, normSub(newSub(sub.Provider, sub.ConnectionID, sub.URI)), normSub(sub))
			}
			assert.Equal(t, tc.want, gotKeys)
		})
	}
}

// testSubscriptionKeysByURIs: the keys of the subscriptions of each exact
// URI (not of longer URIs it starts, nor of a control byte after it) and
// of each prefix, of that provider only, at most limit for each entry.
func testSubscriptionKeysByURIs(t *testing.T, s store.Store) {
	ctx := t.Context()
	const issue = lookupIssue
	keys := lookupKeys()
	for _, k := range keys {
		_, err := s.PutSubscription(ctx, newSub(k.Provider, k.ConnectionID, k.URI))
		require.NoError(t, err)
	}
	tests := []struct {
		name           string
		provider       string
		uris, prefixes []string
		limit          int
		want           []store.SubscriptionKey
	}{
		{"exact", "github", []string{issue}, nil, 100, keys[:2]},
		{"exact and prefixes", "github", []string{issue, "https://github.com/a/b/issues/2"}, []string{issue + "#", issue + "0"}, 100,
			[]store.SubscriptionKey{keys[0], keys[1], keys[4], keys[2], keys[3]}},
		{"a key per entry", "github", []string{issue}, []string{issue}, 100,
			[]store.SubscriptionKey{keys[0], keys[1], keys[0], keys[1], keys[7], keys[2], keys[3]}},
		{"limit per entry", "github", []string{issue, "https://github.com/a/b/issues/2"}, []string{issue}, 1,
			[]store.SubscriptionKey{keys[0], keys[4], keys[0]}},
		{"zero limit", "github", []string{issue}, nil, 0, nil},
		{"control bytes", "github", nil, []string{issue + "\x00"}, 100, keys[7:8]},
		{"other provider", "linear", []string{issue}, []string{issue}, 100, []store.SubscriptionKey{keys[6], keys[6]}},
		{"nothing", "github", []string{"https://gitlab.com/"}, []string{"https://gitlab.com/"}, 100, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.SubscriptionKeysByURIs(ctx, tc.provider, tc.uris, tc.prefixes, tc.limit)
			require.NoError(t, err)
			assert.ElementsMatch(t, tc.want, got)
		})
	}
}

// lookupIssue is the URI the two URI lookup tests look for.
const lookupIssue = "https://github.com/a/b/issues/1"

// lookupKeys are the subscriptions the URI lookup tests store: two
// connections of lookupIssue, URIs that start with it (a fragment, a
// longer number, a control byte after it), another issue, and
// lookupIssue under two other providers.
func lookupKeys() []store.SubscriptionKey {
	const issue = lookupIssue
	return []store.SubscriptionKey{
		{Provider: "github", ConnectionID: "c1", URI: issue},
		{Provider: "github", ConnectionID: "c2", URI: issue},
		{Provider: "github", ConnectionID: "c1", URI: issue + "#issuecomment-7"},
		{Provider: "github", ConnectionID: "c1", URI: issue + "0"},
		{Provider: "github", ConnectionID: "c1", URI: "https://github.com/a/b/issues/2"},
		{Provider: "githubx", ConnectionID: "c1", URI: issue},
		{Provider: "linear", ConnectionID: "c1", URI: issue},
		{Provider: "github", ConnectionID: "c3", URI: issue + "\x00\x01"},
	}
}
