package bolt

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// TestOpenBuildsSchedule: a file written before the schedule existed gets
// one once it is open: every subscription due at once, pending marks and
// unfurl times indexed. Opening it again reads no subscription and
// commits nothing.
func TestOpenBuildsSchedule(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c", Provider: "p", Status: store.StatusActive}))
	var keys []store.SubscriptionKey
	for i, uri := range []string{"https://a/1", "https://a/2", "https://a/3"} {
		k := store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: uri}
		keys = append(keys, k)
		_, err := s.PutSubscription(ctx, store.Subscription{
			SubscriptionKey: k, AttrHash: "h", CreatedAt: at, UpdatedAt: at,
			UnfurledAt: at.Add(time.Duration(i) * time.Hour),
		})
		require.NoError(t, err)
	}
	// Back to the layout of the version before the schedule: no index
	// buckets, and keys[1]'s pending mark in its record.
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketPolls, bucketPollsByDue, bucketPending, bucketSubsByUnfurled, bucketMarks} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		if err := markInRecord(tx, keys[1], at); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete(keyScheduleBuilt)
	}))
	require.NoError(t, s.Close())

	s, err := Open(path, Options{})
	require.NoError(t, err)
	s.build.wait()
	due, err := s.ClaimDuePolls(ctx, "p", "r1", at, time.Minute, 10)
	require.NoError(t, err)
	assert.Len(t, due, 3)
	pending, err := s.ClaimPending(ctx, "r1", at, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	assert.Equal(t, keys[1], pending[0].SubscriptionKey)
	gone, err := s.ExpireSubscriptions(ctx, "p", at.Add(90*time.Minute), 10)
	require.NoError(t, err)
	assert.Equal(t, keys[:2], gone)
	require.NoError(t, s.Close())

	s, err = Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	before := s.txID()
	require.NoError(t, s.Close())
	s, err = Open(path, Options{})
	require.NoError(t, err)
	assert.Equal(t, before, s.txID(), "a built schedule is not built again")
}

// TestOpenResumesScheduleBuild: a build cut short resumes after the last
// subscription it indexed, without doubling what it did.
func TestOpenResumesScheduleBuild(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c", Provider: "p", Status: store.StatusActive}))
	var keys []store.SubscriptionKey
	for _, uri := range []string{"https://a/1", "https://a/2", "https://a/3"} {
		k := store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: uri}
		keys = append(keys, k)
		_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, AttrHash: "h"})
		require.NoError(t, err)
	}
	next := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	n, err := s.SchedulePolls(ctx, "r1", []store.PollSlot{{SubscriptionKey: keys[0], Next: next}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	// As if a build had indexed keys[0] and stopped: keys[1] and keys[2]
	// have no schedule yet.
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		sc := scheduleOf(tx)
		for _, k := range keys[1:] {
			sub, _, _, err := readSub(tx, k)
			if err != nil {
				return err
			}
			if err := sc.unindex(subKey(k), k, sub); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyScheduleBuildAt, subKey(keys[0])); err != nil {
			return err
		}
		return meta.Delete(keyScheduleBuilt)
	}))
	require.NoError(t, s.Close())

	s, err = Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	s.build.wait()
	c, err := s.ScheduleCounts(ctx, "p", next.Add(-time.Hour))
	require.NoError(t, err)
	assert.Equal(t, store.ScheduleCounts{Subscriptions: 3, Due: 2}, c, "keys[0] kept its slot")
}

// TestScheduleBuildKeepsLeases: the build may meet a subscription that a
// write indexed in part while it ran (a pending mark put, then claimed):
// it adds what is missing and keeps the lease, so no second refresher
// gets the mark.
func TestScheduleBuildKeepsLeases(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	k, at := markedSub(t, s)
	claimed, err := s.ClaimPending(ctx, "r1", at, time.Hour, 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	// As if the put and the claim had run before the build reached k.
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		sc := scheduleOf(tx)
		if err := sc.due.Delete(timedKey(k, time.Time{})); err != nil {
			return err
		}
		if err := sc.polls.Delete(subKey(k)); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete(keyScheduleBuilt)
	}))

	done, n, err := buildScheduleBatch(s.db)
	require.NoError(t, err)
	assert.True(t, done)
	assert.Equal(t, 1, n)
	claimed, err = s.ClaimPending(ctx, "r2", at.Add(time.Minute), time.Hour, 10)
	require.NoError(t, err)
	assert.Empty(t, claimed, "r1's lease was kept")
	due, err := s.ClaimDuePolls(ctx, "p", "r2", at, time.Minute, 10)
	require.NoError(t, err)
	assert.Len(t, due, 1, "the missing poll entry was added")
}

// TestNewSubscriptionHasNoPollsEntry: a new subscription, due at once,
// gets its polls_by_due key and no polls entry (one index write fewer
// per cold unfurl); it reads as due at once, is claimed and scheduled
// like any other, and so is one of a file that kept an explicit zero
// entry. A slot for a deleted subscription schedules nothing.
func TestNewSubscriptionHasNoPollsEntry(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c", Provider: "p", Status: store.StatusActive}))
	var keys []store.SubscriptionKey
	var subs []store.Subscription
	for _, uri := range []string{"https://a/1", "https://a/2", "https://a/3"} {
		k := store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: uri}
		keys = append(keys, k)
		subs = append(subs, store.Subscription{SubscriptionKey: k, AttrHash: "h", UnfurledAt: at})
	}
	n, err := s.PutSubscriptions(ctx, subs)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	entries := func(name []byte) int {
		n := 0
		require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
			return tx.Bucket(name).ForEach(func(_, _ []byte) error { n++; return nil })
		}))
		return n
	}
	assert.Equal(t, 0, entries(bucketPolls), "never scheduled: no polls entry")
	assert.Equal(t, 3, entries(bucketPollsByDue))
	got, err := s.GetSubscription(ctx, keys[0])
	require.NoError(t, err)
	assert.True(t, got.NextPollAt.IsZero())

	// keys[2] as a file written before left it: an explicit zero entry.
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketPolls).Put(subKey(keys[2]), make([]byte, 8))
	}))
	due, err := s.ClaimDuePolls(ctx, "p", "r1", at, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, due, 3)
	next := at.Add(time.Hour)
	n, err = s.SchedulePolls(ctx, "r2", []store.PollSlot{{SubscriptionKey: keys[0], Next: next}})
	require.NoError(t, err)
	assert.Equal(t, 0, n, "r1's lease holds")
	require.NoError(t, s.DeleteSubscription(ctx, keys[1]))
	slots := []store.PollSlot{{SubscriptionKey: keys[0], Next: next}, {SubscriptionKey: keys[1], Next: next}, {SubscriptionKey: keys[2], Next: next}}
	n, err = s.SchedulePolls(ctx, "r1", slots)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "the deleted subscription is not scheduled")
	assert.Equal(t, 2, entries(bucketPolls))
	assert.Equal(t, 2, entries(bucketPollsByDue))
	got, err = s.GetSubscription(ctx, keys[0])
	require.NoError(t, err)
	assert.True(t, got.NextPollAt.Equal(next), got.NextPollAt)
	c, err := s.ScheduleCounts(ctx, "p", at)
	require.NoError(t, err)
	assert.Equal(t, store.ScheduleCounts{Subscriptions: 2}, c)
	due, err = s.ClaimDuePolls(ctx, "p", "r3", next, time.Minute, 10)
	require.NoError(t, err)
	assert.Len(t, due, 2)
}

// markedSub stores one subscription (provider p, connection c) carrying a
// webhook's pending mark, and returns its key and the mark's time.
func markedSub(t *testing.T, s *Store) (store.SubscriptionKey, time.Time) {
	t.Helper()
	ctx := t.Context()
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c", Provider: "p", Status: store.StatusActive}))
	k := store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: "https://a/1"}
	_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, AttrHash: "h", UpdatedAt: at})
	require.NoError(t, err)
	_, err = s.PutSubscription(ctx, store.Subscription{
		SubscriptionKey: k, UpdatedAt: at,
		Refresh: store.RefreshRecord{At: at, Trigger: "webhook", Outcome: store.RefreshPending},
	})
	require.NoError(t, err)
	return k, at
}
