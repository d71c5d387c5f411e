package bolt

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// TestLargePutSubscriptionsMatchesSmall: from putAllAtOnce records on,
// PutSubscriptions skips its read pass and merges everything in the write
// transaction. The outcome must be exactly that of the same records put in
// small batches (which take the read pass): new links, unchanged and
// changed hashes, webhook marks, refresh records, a record repeated in the
// batch, and records of a connection that does not exist (skipped, TH-40).
func TestLargePutSubscriptionsMatchesSmall(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	key := func(conn string, i int) store.SubscriptionKey {
		return store.SubscriptionKey{Provider: "p", ConnectionID: conn, URI: fmt.Sprintf("https://x.example/%d", i)}
	}
	seed := func(t *testing.T) *Store {
		s, _ := openTemp(t)
		for _, id := range []string{"c1", "c2"} {
			require.NoError(t, s.CreateConnection(t.Context(), store.Connection{ID: id, Provider: "p", Status: store.StatusActive}))
		}
		var old []store.Subscription
		for i := range 150 {
			old = append(old, store.Subscription{SubscriptionKey: key("c1", i), AttrHash: "h0", CreatedAt: t0, UpdatedAt: t0})
		}
		_, err := s.PutSubscriptions(t.Context(), old[:100])
		require.NoError(t, err)
		_, err = s.PutSubscriptions(t.Context(), old[100:])
		require.NoError(t, err)
		return s
	}
	at := t0.Add(time.Hour)
	var batch []store.Subscription
	for i := range 150 { // stored: a third unchanged, a third a new hash, a third marked pending
		sub := store.Subscription{SubscriptionKey: key("c1", i), AttrHash: "h0", UpdatedAt: at}
		switch i % 3 {
		case 1:
			sub.AttrHash = "h1"
		case 2:
			sub.AttrHash = ""
			sub.Refresh = store.RefreshRecord{At: at, Trigger: "webhook", Outcome: store.RefreshPending}
		}
		batch = append(batch, sub)
	}
	for i := range 100 { // new links of c2, and of a connection that does not exist
		batch = append(batch, store.Subscription{SubscriptionKey: key("c2", i), AttrHash: "n", CreatedAt: at, UpdatedAt: at})
		batch = append(batch, store.Subscription{SubscriptionKey: key("gone", i), AttrHash: "n", CreatedAt: at, UpdatedAt: at})
	}
	batch = append(batch, store.Subscription{SubscriptionKey: key("c2", 3), AttrHash: "n2", CreatedAt: at, UpdatedAt: at.Add(time.Second)})
	require.GreaterOrEqual(t, len(batch), putAllAtOnce)

	large := seed(t)
	nLarge, err := large.PutSubscriptions(t.Context(), batch)
	require.NoError(t, err)

	small := seed(t)
	nSmall := 0
	for start := 0; start < len(batch); start += 50 {
		n, err := small.PutSubscriptions(t.Context(), batch[start:min(start+50, len(batch))])
		require.NoError(t, err)
		nSmall += n
	}
	assert.Equal(t, nSmall, nLarge, "records written")
	list := func(s *Store) []store.Subscription {
		var out []store.Subscription
		require.NoError(t, s.ListSubscriptions(t.Context(), "p", func(sub store.Subscription) error {
			out = append(out, sub)
			return nil
		}))
		return out
	}
	want, got := list(small), list(large)
	assert.Len(t, got, 250)
	assert.Equal(t, want, got)
	counts := func(s *Store) store.ScheduleCounts {
		c, err := s.ScheduleCounts(t.Context(), "p", at)
		require.NoError(t, err)
		return c
	}
	assert.Equal(t, counts(small), counts(large), "schedule indexes")
}
