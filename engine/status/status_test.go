package status_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/status"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
)

// TestBuild covers issue 4 item 5 from the store's side: per-provider
// counts, the outcomes of the last refreshes, queue depth, and the story
// of one link with its queued update.
func TestBuild(t *testing.T) {
	ctx := t.Context()
	st := memory.New()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []store.Connection{
		{ID: "c1", Provider: "github", AccountKey: "k1", AccountName: "octo", Status: store.StatusActive, CreatedAt: now},
		{ID: "c2", Provider: "github", AccountKey: "k2", Status: store.StatusReconnect, CreatedAt: now},
		{ID: "c3", Provider: "linear", AccountKey: "k3", Status: store.StatusActive, CreatedAt: now},
	} {
		require.NoError(t, st.CreateConnection(ctx, c))
	}
	sub := func(conn, provider, uri string) store.SubscriptionKey {
		k := store.SubscriptionKey{Provider: provider, ConnectionID: conn, URI: uri}
		_, err := st.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, AttrHash: "h0", CreatedAt: now, UpdatedAt: now})
		require.NoError(t, err)
		return k
	}
	a := sub("c1", "github", "https://github.com/o/r/issues/1")
	b := sub("c2", "github", "https://github.com/o/r/issues/2")
	sub("c3", "linear", "https://linear.app/t/issue/T-1")
	_, err := st.PutSubscriptions(ctx, []store.Subscription{
		{SubscriptionKey: a, Refresh: store.RefreshRecord{At: now.Add(-time.Minute), Trigger: "poll", Outcome: "changed", Status: 200}},
		{SubscriptionKey: b, Refresh: store.RefreshRecord{At: now.Add(-2 * time.Minute), Trigger: "webhook", Outcome: "error", Status: 503, Detail: "upstream 503"}},
	})
	require.NoError(t, err)
	_, err = st.Enqueue(ctx, store.OutboxItem{SubscriptionKey: a, Body: []byte(`{}`), AttrHash: "h1", EnqueuedAt: now, NextAt: now.Add(time.Second), Attempts: 0})
	require.NoError(t, err)

	r, err := status.Build(ctx, st, []status.Provider{{Name: "github", Auth: "oauth2"}, {Name: "linear", Auth: "api_key"}}, status.Query{}, nil, now)
	require.NoError(t, err)
	require.Len(t, r.Providers, 2)
	gh := r.Providers[0]
	assert.Equal(t, "github", gh.Name)
	assert.Equal(t, 2, gh.Connections)
	assert.Equal(t, 1, gh.ReconnectRequired)
	assert.Equal(t, 2, gh.Subscriptions)
	assert.Equal(t, 1, gh.QueueDepth)
	assert.Equal(t, 1, gh.RefreshFailures)
	assert.Equal(t, map[string]int{"changed": 1, "error": 1}, gh.Outcomes)
	assert.Equal(t, now.Add(-time.Minute), gh.LastRefreshAt)
	assert.Nil(t, gh.Delivery, "store-only report has no in-memory statistics")
	assert.Nil(t, r.Story)

	r, err = status.Build(ctx, st, []status.Provider{{Name: "github", Auth: "oauth2"}, {Name: "linear", Auth: "api_key"}}, status.Query{URI: a.URI}, &status.Live{Delivery: map[string]any{"github": "d"}, Canary: map[string]any{"github": "c"}}, now)
	require.NoError(t, err)
	require.NotNil(t, r.Story)
	require.Len(t, r.Story.Subscriptions, 1)
	v := r.Story.Subscriptions[0]
	assert.Equal(t, "changed", v.LastRefresh.Outcome)
	require.NotNil(t, v.Queued)
	assert.Equal(t, now.Add(time.Second), v.Queued.NextAt)
	assert.Equal(t, "d", r.Providers[0].Delivery)
	assert.Equal(t, "c", r.Providers[0].Canary, "the last canary run, per provider")
	assert.Nil(t, r.Providers[1].Canary)

	r, err = status.Build(ctx, st, []status.Provider{{Name: "github", Auth: "oauth2"}, {Name: "linear", Auth: "api_key"}}, status.Query{Provider: "github", Connection: "c2"}, nil, now)
	require.NoError(t, err)
	require.Len(t, r.Providers, 1)
	require.NotNil(t, r.Story.Connection)
	assert.Equal(t, store.StatusReconnect, r.Story.Connection.Status)
	require.Len(t, r.Story.Subscriptions, 1)
	assert.Equal(t, "upstream 503", r.Story.Subscriptions[0].LastRefresh.Detail)
}
