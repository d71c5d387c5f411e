package live_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/store"
)

// lookupCounter is a RefreshStore that counts the reads a webhook's
// links cost.
type lookupCounter struct {
	live.RefreshStore
	byURIs, byPrefix atomic.Int64
}

func (c *lookupCounter) SubscriptionKeysByURIs(ctx context.Context, provider string, uris, prefixes []string, limit int) ([]store.SubscriptionKey, error) {
	c.byURIs.Add(1)
	return c.RefreshStore.SubscriptionKeysByURIs(ctx, provider, uris, prefixes, limit)
}

func (c *lookupCounter) ListSubscriptionsByURIPrefix(ctx context.Context, provider, prefix string, limit int) ([]store.Subscription, error) {
	c.byPrefix.Add(1)
	return c.RefreshStore.(store.Store).ListSubscriptionsByURIPrefix(ctx, provider, prefix, limit)
}

// TestWebhookManyLinksOneLookup: a webhook naming many links finds their
// subscriptions in one store read, and marks exactly those of the named
// items however they were pasted (fragment, query, trailing slash, http,
// www), not those of items whose links merely start the same (items/10
// after items/1) nor links the provider does not match (issue 11).
func TestWebhookManyLinksOneLookup(t *testing.T) {
	var counter *lookupCounter
	e := newLiveEnv(t, 3600, func(o *live.RefresherOptions) {
		counter = &lookupCounter{RefreshStore: o.Store}
		o.Store = counter
	})
	ctx := t.Context()
	for _, conn := range []string{"c1", "c2", "c3"} {
		e.connect(conn, "tracker")
	}
	put := func(conn, uri string) store.SubscriptionKey {
		k := store.SubscriptionKey{Provider: "tracker", ConnectionID: conn, URI: uri}
		_, err := e.st.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, CreatedAt: t0, UpdatedAt: t0})
		require.NoError(t, err)
		return k
	}
	const named = 300
	var links []string
	var want []store.SubscriptionKey
	for n := 1; n <= named; n++ {
		links = append(links, trackerURI(n))
		want = append(want, put("c1", trackerURI(n)))
	}
	want = append(want,
		put("c2", trackerURI(1)+"#comment-3"),
		put("c2", trackerURI(2)+"/?tab=activity"),
		put("c3", trackerURI(3)+"?x=1"),
	)
	// Items 1000..1099 share the first links' prefixes but are not named.
	for n := 1000; n < 1100; n++ {
		put("c1", trackerURI(n))
	}
	links = append(links, "https://elsewhere.example/items/1")
	// The marks are newer than the subscriptions' last update.
	e.clock.Advance(time.Minute)

	n, err := e.r.RefreshURIs(ctx, "tracker", links)
	require.NoError(t, err)
	assert.Equal(t, len(want), n)
	assert.Equal(t, int64(1), counter.byURIs.Load(), "one read for the whole webhook")
	assert.Zero(t, counter.byPrefix.Load())

	claimed, err := e.st.ClaimPending(ctx, "test", e.clock.Now().Add(time.Hour), time.Minute, 10*named)
	require.NoError(t, err)
	var got []store.SubscriptionKey
	for _, s := range claimed {
		got = append(got, s.SubscriptionKey)
	}
	assert.ElementsMatch(t, want, got)
}
