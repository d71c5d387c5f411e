package bolt

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// markInRecord writes k's pending mark at at the way files written before
// marks.go kept it: in the subscription's record, which took the mark's
// story and UpdatedAt (store.MergeSubscription), with no marks entry. The
// caller adds the pending key if the file is to have its schedule.
func markInRecord(tx *bbolt.Tx, k store.SubscriptionKey, at time.Time) error {
	subs := tx.Bucket(bucketSubs)
	var rec subRecord
	if err := decode("subscription", subs.Get(subKey(k)), &rec); err != nil {
		return err
	}
	rec.Refresh = refreshRecord{At: at, Trigger: "webhook", Outcome: store.RefreshPending}
	rec.UpdatedAt = at
	v, err := encode("subscription", rec)
	if err != nil {
		return err
	}
	return subs.Put(subKey(k), v)
}

// rawBucket returns the keys and values of bucket name.
func rawBucket(t *testing.T, s *Store, name []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(name).ForEach(func(k, v []byte) error {
			m[string(k)] = string(v)
			return nil
		})
	}))
	return m
}

// mark is the pending mark a webhook puts at at.
func mark(k store.SubscriptionKey, at time.Time) store.Subscription {
	return store.Subscription{
		SubscriptionKey: k, UpdatedAt: at,
		Refresh: store.RefreshRecord{At: at, Trigger: "webhook", Outcome: store.RefreshPending},
	}
}

// refreshed is the record of a refresh that began at began.
func refreshed(k store.SubscriptionKey, began time.Time, etag string) store.Subscription {
	return store.Subscription{
		SubscriptionKey: k, ETag: etag, UpdatedAt: began.Add(time.Second),
		Refresh: store.RefreshRecord{At: began, Trigger: "webhook", Outcome: "changed", Status: 200},
	}
}

// TestMarkWritesNoRecord: a webhook's pending mark goes to the marks
// bucket and leaves the subscription's record as it is (issue 11: a
// webhook naming 10,000 links rewrote 10,000 records), yet the store
// shows the mark as MergeSubscription has it. A put that changes the
// record while it is marked keeps the mark; the refresh that clears the
// mark writes its story into the record and drops the marks entry. The
// mark is what a 202 acknowledged (security.md F1): it is durable in the
// same commit.
func TestMarkWritesNoRecord(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c", Provider: "p", Status: store.StatusActive}))
	k := store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: "u"}
	_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, AttrHash: "h", CreatedAt: at, UpdatedAt: at, UnfurledAt: at})
	require.NoError(t, err)
	record := rawBucket(t, s, bucketSubs)

	markAt := at.Add(time.Minute)
	n, err := s.PutSubscriptions(ctx, []store.Subscription{mark(k, markAt)})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "a mark counts as written")
	assert.Equal(t, record, rawBucket(t, s, bucketSubs), "the record is not rewritten")
	assert.Equal(t, map[string]string{
		"p\x00c\x00u": `{"v":1,"refresh":{"at":"2025-03-14T15:10:26Z","trigger":"webhook","outcome":"pending"}}`,
	}, rawBucket(t, s, bucketMarks))
	got, err := s.GetSubscription(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, mark(k, markAt).Refresh, got.Refresh)
	assert.True(t, got.UpdatedAt.Equal(at), "a mark keeps UpdatedAt: %v", got.UpdatedAt)
	assert.Equal(t, "h", got.AttrHash)

	// Durable: a reopened file shows it, and a claim finds it.
	require.NoError(t, s.Close())
	s, err = Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	claimed, err := s.ClaimPending(ctx, "r1", markAt, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	assert.Equal(t, store.RefreshPending, claimed[0].Refresh.Outcome)

	// An unfurl's new hash rewrites the record and keeps the mark.
	_, err = s.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, AttrHash: "h2", UpdatedAt: markAt.Add(time.Second), UnfurledAt: at})
	require.NoError(t, err)
	got, err = s.GetSubscription(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, "h2", got.AttrHash)
	assert.Equal(t, store.RefreshPending, got.Refresh.Outcome)
	assert.True(t, got.UpdatedAt.Equal(markAt.Add(time.Second)), got.UpdatedAt)
	assert.NotContains(t, rawBucket(t, s, bucketSubs)["p\x00c\x00u"], "pending", "the record keeps no mark")

	// A refresh begun after the mark clears it.
	done := refreshed(k, markAt, `"e2"`)
	_, err = s.PutSubscription(ctx, done)
	require.NoError(t, err)
	got, err = s.GetSubscription(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, done.Refresh, got.Refresh)
	assert.Equal(t, `"e2"`, got.ETag)
	assert.Empty(t, rawBucket(t, s, bucketMarks))
	assert.Empty(t, rawBucket(t, s, bucketPending))
}

// TestMarkInRecordStillWorks: a file written before marks.go keeps pending
// marks in the records. They are read as they are, without a migration:
// shown, claimed, replaced by a newer mark (which keeps the lease),
// outlived by a refresh begun before it, and cleared by one begun after;
// deleting a subscription so marked leaves no pending key. What such a
// file's 202s acknowledged is refreshed after the upgrade (security.md
// F1).
func TestMarkInRecordStillWorks(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c", Provider: "p", Status: store.StatusActive}))
	k := store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: "u"}
	gone := store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: "v"}
	for _, key := range []store.SubscriptionKey{k, gone} {
		_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: key, AttrHash: "h", CreatedAt: at, UpdatedAt: at, UnfurledAt: at})
		require.NoError(t, err)
	}
	// As the previous version wrote a mark: the record and its pending key.
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		for _, key := range []store.SubscriptionKey{k, gone} {
			if err := markInRecord(tx, key, at); err != nil {
				return err
			}
			if err := tx.Bucket(bucketPending).Put(pendingKey(key, at), nil); err != nil {
				return err
			}
		}
		return nil
	}))
	require.Equal(t, `{"v":1,"attr_hash":"h","created_at":"2025-03-14T15:09:26Z","updated_at":"2025-03-14T15:09:26Z",`+
		`"refresh":{"at":"2025-03-14T15:09:26Z","trigger":"webhook","outcome":"pending"},"unfurled_at":"2025-03-14T15:09:26Z"}`,
		rawBucket(t, s, bucketSubs)["p\x00c\x00u"], "the previous version's record of a mark")
	require.NoError(t, s.Close())
	s, err := Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	got, err := s.GetSubscription(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, mark(k, at).Refresh, got.Refresh)
	claimed, err := s.ClaimPending(ctx, "r1", at, time.Hour, 10)
	require.NoError(t, err)
	assert.Equal(t, []store.SubscriptionKey{k, gone}, keysOfSubs(claimed))
	assert.Equal(t, store.RefreshPending, claimed[0].Refresh.Outcome)

	require.NoError(t, s.DeleteSubscription(ctx, gone))
	c, err := s.ScheduleCounts(ctx, "p", at)
	require.NoError(t, err)
	assert.Equal(t, 1, c.Pending, "the deleted subscription's mark is gone")

	// A newer mark lies over the old one and keeps r1's lease.
	second := at.Add(time.Minute)
	_, err = s.PutSubscriptions(ctx, []store.Subscription{mark(k, second)})
	require.NoError(t, err)
	claimed, err = s.ClaimPending(ctx, "r2", second, time.Hour, 10)
	require.NoError(t, err)
	assert.Empty(t, claimed, "r1's lease holds")
	assert.Len(t, rawBucket(t, s, bucketPending), 1, "one pending key, the newer mark's")

	// A refresh begun before the newer mark leaves it and releases the lease.
	_, err = s.PutSubscription(ctx, refreshed(k, at.Add(time.Second), `"e1"`))
	require.NoError(t, err)
	claimed, err = s.ClaimPending(ctx, "r2", second, time.Hour, 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	assert.True(t, claimed[0].Refresh.At.Equal(second), claimed[0].Refresh.At)
	assert.Equal(t, `"e1"`, claimed[0].ETag)

	// One begun after clears it: the record takes its story.
	done := refreshed(k, second, `"e2"`)
	_, err = s.PutSubscription(ctx, done)
	require.NoError(t, err)
	got, err = s.GetSubscription(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, done.Refresh, got.Refresh)
	assert.NotContains(t, rawBucket(t, s, bucketSubs)["p\x00c\x00u"], "pending")
	assert.Empty(t, rawBucket(t, s, bucketMarks))
	assert.Empty(t, rawBucket(t, s, bucketPending))
}

func keysOfSubs(subs []store.Subscription) []store.SubscriptionKey {
	keys := make([]store.SubscriptionKey, len(subs))
	for i, s := range subs {
		keys[i] = s.SubscriptionKey
	}
	return keys
}
