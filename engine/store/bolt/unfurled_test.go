package bolt

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// The index of unfurl times (subs_by_unfurled) is kept only from the first
// expiry on (schedule.go, keyUnfurledIndex). These tests cover its three
// states: never kept, built by the first ExpireSubscriptions, and left
// unkept by a version that always kept it.

// unfurledSub is a subscription of connection "c" last unfurled at at.
func unfurledSub(provider, uri string, at time.Time) store.Subscription {
	return store.Subscription{
		SubscriptionKey: store.SubscriptionKey{Provider: provider, ConnectionID: "c", URI: uri},
		AttrHash:        "h", CreatedAt: at, UpdatedAt: at, UnfurledAt: at,
	}
}

// unfurledState reads keyUnfurledIndex and the entries of subs_by_unfurled.
func unfurledState(t *testing.T, s *Store) (string, []string) {
	t.Helper()
	var state string
	var keys []string
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		state = string(tx.Bucket(bucketMeta).Get(keyUnfurledIndex))
		return tx.Bucket(bucketSubsByUnfurled).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	}))
	return state, keys
}

// recordsUnfurled is what subs_by_unfurled holds when it matches the
// stored records exactly: one entry per subscription, at its unfurl time.
func recordsUnfurled(t *testing.T, s *Store) []string {
	t.Helper()
	var keys []string
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSubs).ForEach(func(k, v []byte) error {
			parts, err := splitKey(k, 3)
			if err != nil {
				return err
			}
			var rec subRecord
			if err := decode("subscription", v, &rec); err != nil {
				return err
			}
			sk := store.SubscriptionKey{Provider: parts[0], ConnectionID: parts[1], URI: parts[2]}
			keys = append(keys, string(timedKey(sk, fromSubRecord(sk, rec).UnfurledAtOrUpdated())))
			return nil
		})
	}))
	slices.Sort(keys)
	return keys
}

func putAll(t *testing.T, s *Store, subs ...store.Subscription) {
	t.Helper()
	_, err := s.PutSubscriptions(t.Context(), subs)
	require.NoError(t, err)
}

// TestUnfurledIndexKeptFromFirstExpiry: a new file keeps no unfurl-time
// entries, so a new subscription dirties one bucket fewer; the first
// ExpireSubscriptions builds the index from the records before it walks
// it, and from then on every put and delete keeps it.
func TestUnfurledIndexKeptFromFirstExpiry(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	at := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c", Provider: "p", Status: store.StatusActive}))
	putAll(t, s, unfurledSub("p", "https://a/1", at), unfurledSub("p", "https://a/2", at.Add(72*time.Hour)),
		unfurledSub("q", "https://a/3", at))

	state, keys := unfurledState(t, s)
	assert.Empty(t, state)
	assert.Empty(t, keys, "no expiry yet: no write keeps the index")

	gone, err := s.ExpireSubscriptions(ctx, "p", at.Add(time.Hour), 10)
	require.NoError(t, err)
	assert.Equal(t, []store.SubscriptionKey{{Provider: "p", ConnectionID: "c", URI: "https://a/1"}}, gone)
	state, keys = unfurledState(t, s)
	assert.Equal(t, unfurledBuilt, state)
	assert.Equal(t, recordsUnfurled(t, s), keys)
	assert.Len(t, keys, 2)

	// Kept from now on: a new link, a link unfurled again, a deletion.
	putAll(t, s, unfurledSub("p", "https://a/4", at), unfurledSub("p", "https://a/2", at.Add(96*time.Hour)))
	require.NoError(t, s.DeleteSubscription(ctx, store.SubscriptionKey{Provider: "q", ConnectionID: "c", URI: "https://a/3"}))
	_, keys = unfurledState(t, s)
	assert.Equal(t, recordsUnfurled(t, s), keys)
	assert.Len(t, keys, 2)
}

// TestExpiryFinishesAHalfBuiltIndex: a build cut short (here after one
// batch of two, then a restart) is finished before any expiry walks the
// index, so a link the build had not reached yet is expired on time, and
// links unfurled again while the build was under way are kept.
func TestExpiryFinishesAHalfBuiltIndex(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	old := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	recent := old.Add(30 * 24 * time.Hour)
	require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c", Provider: "p", Status: store.StatusActive}))
	uris := []string{"https://a/1", "https://a/2", "https://a/3", "https://a/4", "https://a/5"}
	for _, u := range uris {
		putAll(t, s, unfurledSub("p", u, old))
	}
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error { return buildUnfurledBatch(tx, 2) }))
	state, keys := unfurledState(t, s)
	require.Equal(t, unfurledBuilding, state)
	require.Len(t, keys, 2, "one batch of two indexed")

	// Writes while the build is under way: one link indexed already and
	// one not reached yet are unfurled again, and a new link arrives.
	putAll(t, s, unfurledSub("p", uris[0], recent), unfurledSub("p", uris[3], recent), unfurledSub("p", "https://a/6", old))
	require.NoError(t, s.Close())
	s, err := Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	gone, err := s.ExpireSubscriptions(ctx, "p", old.Add(time.Hour), 10)
	require.NoError(t, err)
	want := []store.SubscriptionKey{}
	for _, u := range []string{"https://a/2", "https://a/3", "https://a/5", "https://a/6"} {
		want = append(want, store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: u})
	}
	assert.ElementsMatch(t, want, gone, "every link last unfurled before the time, whether the first batch reached it or not")
	state, keys = unfurledState(t, s)
	assert.Equal(t, unfurledBuilt, state)
	assert.Equal(t, recordsUnfurled(t, s), keys)
	assert.Len(t, keys, 2)
}

// TestOpenEmptiesUnkeptUnfurledIndex: a file whose index was kept by a
// version that always kept it has no state; it is emptied once at Open,
// so that an entry no write keeps any more can never expire a link that
// was unfurled since. The next Open changes nothing.
func TestOpenEmptiesUnkeptUnfurledIndex(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	old := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	recent := old.Add(30 * 24 * time.Hour)
	require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c", Provider: "p", Status: store.StatusActive}))
	sub := unfurledSub("p", "https://a/1", recent)
	putAll(t, s, sub)
	// The previous version's index, with an entry from before the link
	// was unfurled again (as this version, not keeping it, would leave).
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSubsByUnfurled).Put(timedKey(sub.SubscriptionKey, old), nil)
	}))
	require.NoError(t, s.Close())

	s, err := Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	state, keys := unfurledState(t, s)
	assert.Empty(t, state)
	assert.Empty(t, keys)
	before := s.txID()
	require.NoError(t, s.Close())
	s, err = Open(path, Options{})
	require.NoError(t, err)
	assert.Equal(t, before, s.txID(), "an emptied index is not emptied again")

	gone, err := s.ExpireSubscriptions(ctx, "p", old.Add(time.Hour), 10)
	require.NoError(t, err)
	assert.Empty(t, gone, "the link was unfurled since")
	_, keys = unfurledState(t, s)
	assert.Equal(t, recordsUnfurled(t, s), keys)
}
