package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// ScheduleStore is a store with its live-update schedule. Once
// store.Store embeds store.Schedule it is the same as store.Store.
type ScheduleStore interface {
	store.Store
	store.Schedule
}

// RunSchedule runs the conformance suite of store.Schedule (issue 11):
// the poll schedule and its leases, the pending marks and theirs, and
// the expiry of links nobody unfurls. Like Run, newStore returns a new,
// empty store for each subtest, which RunSchedule closes when it ends.
func RunSchedule(t *testing.T, newStore func(t *testing.T) ScheduleStore) {
	t.Helper()
	runCases(t, newStore, parallel, []suiteCase[ScheduleStore]{
		{"NewSubscriptionIsDue", testNewSubscriptionIsDue},
		{"ClaimOrderAndLimit", testClaimOrderAndLimit},
		{"ClaimLeases", testClaimLeases},
		{"ClaimConcurrent", testClaimConcurrent},
		{"SchedulePolls", testSchedulePolls},
		{"SchedulePollsWritesNoRecord", testSchedulePollsWritesNoRecord},
		{"PutKeepsNextPoll", testPutKeepsNextPoll},
		{"NextPollDue", testNextPollDue},
		{"DeletesLeaveNoSchedule_TH40", testDeletesLeaveNoSchedule},
		{"ClaimPending_F1", testClaimPending},
		{"PendingLeaseReleasedByRefresh", testPendingLeaseReleasedByRefresh},
		{"ClaimPendingConcurrent", testClaimPendingConcurrent},
		{"UnfurledAtIsCoarse", testUnfurledAtIsCoarse},
		{"ExpireSubscriptions", testExpireSubscriptions},
		{"ScheduleCounts", testScheduleCounts},
		{"ScheduleCancelledContext", testScheduleCancelledContext},
	})
}

// seedSubs creates connection c1 of provider and n subscriptions of it,
// uri-000 ... in key order, and returns their keys.
func seedSubs(t *testing.T, s store.Store, provider string, n int) []store.SubscriptionKey {
	t.Helper()
	ctx := t.Context()
	conn := "c1-" + provider
	if _, err := s.GetConnection(ctx, conn); err != nil {
		require.NoError(t, s.CreateConnection(ctx, newConn(conn, provider)))
	}
	subs := make([]store.Subscription, n)
	keys := make([]store.SubscriptionKey, n)
	for i := range subs {
		subs[i] = newSub(provider, conn, fmt.Sprintf("https://example.com/%s/uri-%03d", provider, i))
		keys[i] = subs[i].SubscriptionKey
	}
	written, err := s.PutSubscriptions(ctx, subs)
	require.NoError(t, err)
	require.Equal(t, n, written)
	return keys
}

func keysOf(subs []store.Subscription) []store.SubscriptionKey {
	keys := make([]store.SubscriptionKey, len(subs))
	for i, s := range subs {
		keys[i] = s.SubscriptionKey
	}
	return keys
}

// schedule sets the next polls of keys, at[i] for keys[i], as owner.
func schedule(t *testing.T, s store.Schedule, owner string, keys []store.SubscriptionKey, at ...time.Time) {
	t.Helper()
	slots := make([]store.PollSlot, len(keys))
	for i, k := range keys {
		slots[i] = store.PollSlot{SubscriptionKey: k, Next: at[i]}
	}
	n, err := s.SchedulePolls(t.Context(), owner, slots)
	require.NoError(t, err)
	require.Equal(t, len(keys), n)
}

// testNewSubscriptionIsDue: a subscription never scheduled (a new one, or
// one from a store of an older version) is due at once, whatever now is,
// and comes back with a zero NextPollAt.
func testNewSubscriptionIsDue(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	keys := seedSubs(t, s, "github", 2)
	got, err := s.ClaimDuePolls(ctx, "github", "r1", baseTime().Add(-100*24*time.Hour), time.Minute, 10)
	require.NoError(t, err)
	assert.Equal(t, keys, keysOf(got))
	for _, sub := range got {
		assert.True(t, sub.NextPollAt.IsZero())
		assert.Equal(t, "hash-1", sub.AttrHash, "claims return the stored record")
	}
	got, err = s.ClaimDuePolls(ctx, "linear", "r1", baseTime(), time.Minute, 10)
	require.NoError(t, err)
	assert.Empty(t, got, "another provider's schedule")
}

// testClaimOrderAndLimit: earliest NextPollAt first, never-scheduled
// before all, then key order; only what is due at now; at most limit.
func testClaimOrderAndLimit(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	keys := seedSubs(t, s, "github", 5)
	at := baseTime()
	// keys[4] stays never scheduled; keys[3] is not due until later.
	schedule(t, s, "r0", keys[:4], at.Add(2*time.Minute), at.Add(time.Minute), at.Add(time.Minute), at.Add(time.Hour))
	got, err := s.ClaimDuePolls(ctx, "github", "r1", at.Add(2*time.Minute), time.Minute, 3)
	require.NoError(t, err)
	assert.Equal(t, []store.SubscriptionKey{keys[4], keys[1], keys[2]}, keysOf(got))
	assert.True(t, got[1].NextPollAt.Equal(at.Add(time.Minute)), "NextPollAt comes back: %v", got[1].NextPollAt)
	got, err = s.ClaimDuePolls(ctx, "github", "r1", at.Add(2*time.Minute), time.Minute, 3)
	require.NoError(t, err)
	assert.Equal(t, []store.SubscriptionKey{keys[0]}, keysOf(got), "due exactly at now; keys[3] is not due")
	got, err = s.ClaimDuePolls(ctx, "github", "r1", at.Add(2*time.Minute), time.Minute, 0)
	require.NoError(t, err)
	assert.Empty(t, got, "limit 0")
}

// testClaimLeases: a claimed subscription is nobody's to claim again
// while its lease runs, the owner's included; once it runs out another
// replica claims it (a killed replica's work is picked up within one
// lease period).
func testClaimLeases(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	keys := seedSubs(t, s, "github", 1)
	now := baseTime()
	got, err := s.ClaimDuePolls(ctx, "github", "r1", now, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	for _, owner := range []string{"r1", "r2"} {
		got, err = s.ClaimDuePolls(ctx, "github", owner, now.Add(59*time.Second), time.Minute, 10)
		require.NoError(t, err)
		assert.Empty(t, got, "%s while r1's lease runs", owner)
	}
	got, err = s.ClaimDuePolls(ctx, "github", "r2", now.Add(time.Minute), time.Minute, 10)
	require.NoError(t, err)
	assert.Equal(t, keys, keysOf(got), "the lease ran out")

	// r1 comes back late: its schedule is not applied over r2's lease.
	n, err := s.SchedulePolls(ctx, "r1", []store.PollSlot{{SubscriptionKey: keys[0], Next: now.Add(time.Hour)}})
	require.NoError(t, err)
	assert.Zero(t, n)
	got, err = s.ClaimDuePolls(ctx, "github", "r3", now.Add(time.Minute+time.Second), time.Minute, 10)
	require.NoError(t, err)
	assert.Empty(t, got, "r2's lease still holds")
	schedule(t, s, "r2", keys, now.Add(10*time.Minute))
	sub, err := s.GetSubscription(ctx, keys[0])
	require.NoError(t, err)
	assert.True(t, sub.NextPollAt.Equal(now.Add(10*time.Minute)), "r2's schedule: %v", sub.NextPollAt)
}

// testClaimConcurrent: replicas claiming at once never get the same
// subscription, and between them get every due one.
func testClaimConcurrent(t *testing.T, s ScheduleStore) {
	keys := seedSubs(t, s, "github", 60)
	claimedOnce(t, keys, func(owner string) ([]store.Subscription, error) {
		return s.ClaimDuePolls(t.Context(), "github", owner, baseTime(), time.Minute, 7)
	})
}

// claimedOnce runs claim from four replicas at once, each until it gets
// nothing, and requires that between them they got every key of keys,
// each exactly once.
func claimedOnce(t *testing.T, keys []store.SubscriptionKey, claim func(owner string) ([]store.Subscription, error)) {
	t.Helper()
	const replicas = 4
	got := make([][]store.SubscriptionKey, replicas)
	var wg sync.WaitGroup
	for r := range replicas {
		wg.Go(func() {
			for {
				subs, err := claim(fmt.Sprintf("r%d", r))
				if !assert.NoError(t, err) || len(subs) == 0 {
					return
				}
				got[r] = append(got[r], keysOf(subs)...)
			}
		})
	}
	wg.Wait()
	seen := map[store.SubscriptionKey]int{}
	for r := range got {
		for _, k := range got[r] {
			seen[k]++
		}
	}
	assert.Len(t, seen, len(keys))
	for k, n := range seen {
		assert.Equal(t, 1, n, "claimed %d times: %v", n, k)
	}
}

// testSchedulePolls: the slots are applied and the leases released;
// gone subscriptions are skipped; a zero Next makes a subscription due.
func testSchedulePolls(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	keys := seedSubs(t, s, "github", 3)
	now := baseTime()
	got, err := s.ClaimDuePolls(ctx, "github", "r1", now, time.Hour, 10)
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.NoError(t, s.DeleteSubscription(ctx, keys[2]))
	n, err := s.SchedulePolls(ctx, "r1", []store.PollSlot{
		{SubscriptionKey: keys[0], Next: now.Add(10 * time.Minute)},
		{SubscriptionKey: keys[1], Next: time.Time{}},
		{SubscriptionKey: keys[2], Next: now},
		{SubscriptionKey: store.SubscriptionKey{Provider: "github", ConnectionID: "nobody", URI: "x"}, Next: now},
	})
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	_, err = s.GetSubscription(ctx, keys[2])
	require.ErrorIs(t, err, store.ErrNotFound, "a schedule does not bring a subscription back") // TH-40

	got, err = s.ClaimDuePolls(ctx, "github", "r2", now, time.Hour, 10)
	require.NoError(t, err)
	assert.Equal(t, keys[1:2], keysOf(got), "released and due again; keys[0] waits")
	got, err = s.ClaimDuePolls(ctx, "github", "r2", now.Add(10*time.Minute), time.Minute, 10)
	require.NoError(t, err)
	assert.Equal(t, keys[:1], keysOf(got))
}

// testSchedulePollsWritesNoRecord: scheduling changes NextPollAt and
// nothing else of the record, and ListSubscriptions shows it too.
func testSchedulePollsWritesNoRecord(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	keys := seedSubs(t, s, "github", 1)
	want, err := s.GetSubscription(ctx, keys[0])
	require.NoError(t, err)
	next := baseTime().Add(7 * time.Minute)
	schedule(t, s, "r1", keys, next)
	want.NextPollAt = next
	assertSub(t, s, want)
	var listed []store.Subscription
	require.NoError(t, s.ListSubscriptions(ctx, "github", func(sub store.Subscription) error {
		listed = append(listed, sub)
		return nil
	}))
	require.Len(t, listed, 1)
	assert.Equal(t, normSub(want), normSub(listed[0]))
}

// testPutKeepsNextPoll: unfurls, refreshes and marks keep the schedule;
// a put that creates a record takes NextPollAt as given (migrate-store).
func testPutKeepsNextPoll(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	require.NoError(t, s.CreateConnection(ctx, newConn("c1", "github")))
	at := baseTime()
	created := newSub("github", "c1", "https://example.com/a")
	created.NextPollAt = at.Add(3 * time.Minute)
	_, err := s.PutSubscription(ctx, created)
	require.NoError(t, err)
	assertSub(t, s, created)

	next := at.Add(time.Hour)
	schedule(t, s, "r1", []store.SubscriptionKey{created.SubscriptionKey}, next)
	unfurl := created
	unfurl.AttrHash, unfurl.NextPollAt = "hash-2", time.Time{}
	refresh := store.Subscription{SubscriptionKey: created.SubscriptionKey, ETag: `"e2"`, Refresh: newRefresh(1), UpdatedAt: at}
	mark := store.Subscription{
		SubscriptionKey: created.SubscriptionKey, UpdatedAt: at,
		Refresh: store.RefreshRecord{At: at.Add(time.Hour), Trigger: "webhook", Outcome: store.RefreshPending},
	}
	for _, put := range []store.Subscription{unfurl, refresh, mark} {
		wrote, err := s.PutSubscription(ctx, put)
		require.NoError(t, err)
		require.True(t, wrote)
		got, err := s.GetSubscription(ctx, created.SubscriptionKey)
		require.NoError(t, err)
		assert.True(t, got.NextPollAt.Equal(next), "after %+v: %v", put.Refresh, got.NextPollAt)
	}
}

// testNextPollDue: the earliest unleased next poll, or a lease's end
// when it comes first; nothing for a provider without subscriptions.
func testNextPollDue(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	now := baseTime()
	_, ok, err := s.NextPollDue(ctx, "github", now)
	require.NoError(t, err)
	assert.False(t, ok)

	keys := seedSubs(t, s, "github", 3)
	next, ok, err := s.NextPollDue(ctx, "github", now)
	require.NoError(t, err)
	require.True(t, ok)
	assert.True(t, next.IsZero(), "never scheduled: at once, got %v", next)

	schedule(t, s, "r1", keys, now.Add(5*time.Minute), now.Add(20*time.Minute), now.Add(30*time.Minute))
	next, _, err = s.NextPollDue(ctx, "github", now)
	require.NoError(t, err)
	assert.True(t, next.Equal(now.Add(5*time.Minute)), "got %v", next)

	// keys[0] claimed when due, under a 20-minute lease: the next is
	// keys[1] at 20 minutes (not the lease's end at 25).
	_, err = s.ClaimDuePolls(ctx, "github", "r1", now.Add(5*time.Minute), 20*time.Minute, 1)
	require.NoError(t, err)
	next, _, err = s.NextPollDue(ctx, "github", now.Add(5*time.Minute))
	require.NoError(t, err)
	assert.True(t, next.Equal(now.Add(20*time.Minute)), "got %v", next)
	// With a lease that ends before keys[1] is due, the lease's end.
	schedule(t, s, "r1", keys[:1], now)
	_, err = s.ClaimDuePolls(ctx, "github", "r1", now.Add(5*time.Minute), 10*time.Minute, 1)
	require.NoError(t, err)
	next, _, err = s.NextPollDue(ctx, "github", now.Add(5*time.Minute))
	require.NoError(t, err)
	assert.True(t, next.Equal(now.Add(15*time.Minute)), "got %v", next)
	// A lease that ran out is as good as none.
	next, _, err = s.NextPollDue(ctx, "github", now.Add(16*time.Minute))
	require.NoError(t, err)
	assert.True(t, next.Equal(now), "got %v", next)
}

// testDeletesLeaveNoSchedule: whatever removes subscriptions removes
// them from the schedule and the pending marks too (TH-40).
func testDeletesLeaveNoSchedule(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	keys := seedSubs(t, s, "github", 3)
	require.NoError(t, s.CreateConnection(ctx, newConn("c2", "github")))
	other := newSub("github", "c2", keys[1].URI)
	_, err := s.PutSubscription(ctx, other)
	require.NoError(t, err)
	now := baseTime()
	var marks []store.Subscription
	for _, k := range append(keys, other.SubscriptionKey) {
		marks = append(marks, store.Subscription{
			SubscriptionKey: k, UpdatedAt: now,
			Refresh: store.RefreshRecord{At: now, Trigger: "webhook", Outcome: store.RefreshPending},
		})
	}
	_, err = s.PutSubscriptions(ctx, marks)
	require.NoError(t, err)

	require.NoError(t, s.DeleteSubscription(ctx, keys[0]))
	n, err := s.DeleteSubscriptionsByURI(ctx, "github", keys[1].URI)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.NoError(t, s.DeleteConnection(ctx, "c1-github"))

	for _, what := range []string{"polls", "pending"} {
		var got []store.Subscription
		if what == "polls" {
			got, err = s.ClaimDuePolls(ctx, "github", "r1", now.Add(time.Hour), time.Minute, 10)
		} else {
			got, err = s.ClaimPending(ctx, "r1", now.Add(time.Hour), time.Minute, 10)
		}
		require.NoError(t, err)
		assert.Empty(t, got, what)
	}
	_, ok, err := s.NextPollDue(ctx, "github", now)
	require.NoError(t, err)
	assert.False(t, ok)
	c, err := s.ScheduleCounts(ctx, "github", now)
	require.NoError(t, err)
	assert.Equal(t, store.ScheduleCounts{}, c)
}

// markPending marks keys pending at at, as a webhook does.
func markPending(t *testing.T, s store.Store, at time.Time, keys ...store.SubscriptionKey) {
	t.Helper()
	marks := make([]store.Subscription, len(keys))
	for i, k := range keys {
		marks[i] = store.Subscription{
			SubscriptionKey: k, UpdatedAt: at,
			Refresh: store.RefreshRecord{At: at, Trigger: "webhook", Outcome: store.RefreshPending},
		}
	}
	_, err := s.PutSubscriptions(t.Context(), marks)
	require.NoError(t, err)
}

// testClaimPending: marks are claimed oldest first across providers,
// under a lease; a refresh that began after the mark clears it, one
// that began before leaves it (store.MergeSubscription). A mark is
// durable work a 202 acknowledged (security.md F1): it stays claimable
// until a refresh clears it.
func testClaimPending(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	gh := seedSubs(t, s, "github", 3)
	ln := seedSubs(t, s, "linear", 1)
	now := baseTime()
	markPending(t, s, now.Add(2*time.Second), gh[0])
	markPending(t, s, now.Add(time.Second), ln[0], gh[2])

	got, err := s.ClaimPending(ctx, "r1", now.Add(time.Minute), time.Minute, 2)
	require.NoError(t, err)
	assert.Equal(t, []store.SubscriptionKey{gh[2], ln[0]}, keysOf(got), "oldest mark first, then key order")
	assert.Equal(t, store.RefreshPending, got[0].Refresh.Outcome)
	got, err = s.ClaimPending(ctx, "r2", now.Add(time.Minute), time.Minute, 10)
	require.NoError(t, err)
	assert.Equal(t, gh[:1], keysOf(got), "the others are leased")

	// gh[0]: a refresh that began before its mark leaves it; after, clears.
	before := store.Subscription{SubscriptionKey: gh[0], Refresh: newRefresh(0), UpdatedAt: now}
	before.Refresh.At = now
	_, err = s.PutSubscriptions(ctx, []store.Subscription{before})
	require.NoError(t, err)
	got, err = s.ClaimPending(ctx, "r3", now.Add(time.Minute), time.Minute, 10)
	require.NoError(t, err)
	assert.Equal(t, gh[:1], keysOf(got), "the mark outlives a refresh that began before it; its lease is released")
	after := before
	after.Refresh.At = now.Add(3 * time.Second)
	_, err = s.PutSubscriptions(ctx, []store.Subscription{after})
	require.NoError(t, err)
	got, err = s.ClaimPending(ctx, "r3", now.Add(time.Hour), time.Minute, 10)
	require.NoError(t, err)
	assert.Equal(t, []store.SubscriptionKey{gh[2], ln[0]}, keysOf(got), "gh[0] cleared; r1's leases ran out")
}

// testPendingLeaseReleasedByRefresh: a new mark on a leased subscription
// keeps the lease; the refresh's record releases it.
func testPendingLeaseReleasedByRefresh(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	keys := seedSubs(t, s, "github", 1)
	now := baseTime()
	markPending(t, s, now, keys[0])
	got, err := s.ClaimPending(ctx, "r1", now, time.Hour, 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	markPending(t, s, now.Add(time.Second), keys[0])
	got, err = s.ClaimPending(ctx, "r2", now.Add(time.Minute), time.Hour, 10)
	require.NoError(t, err)
	assert.Empty(t, got, "the new mark keeps r1's lease")

	rec := store.Subscription{SubscriptionKey: keys[0], Refresh: newRefresh(0), UpdatedAt: now}
	rec.Refresh.At = now // began before the second mark
	_, err = s.PutSubscription(ctx, rec)
	require.NoError(t, err)
	got, err = s.ClaimPending(ctx, "r2", now.Add(time.Minute), time.Hour, 10)
	require.NoError(t, err)
	require.Equal(t, keys, keysOf(got))
	assert.True(t, got[0].Refresh.At.Equal(now.Add(time.Second)), "the second mark: %v", got[0].Refresh.At)
}

// testClaimPendingConcurrent: replicas claiming marks at once never get
// the same one.
func testClaimPendingConcurrent(t *testing.T, s ScheduleStore) {
	keys := seedSubs(t, s, "github", 40)
	markPending(t, s, baseTime(), keys...)
	claimedOnce(t, keys, func(owner string) ([]store.Subscription, error) {
		return s.ClaimPending(t.Context(), owner, baseTime(), time.Minute, 3)
	})
}

// testUnfurledAtIsCoarse: an unfurl with the stored hash writes only
// when UnfurledAt moves a day or more; a changed hash writes it anyway.
func testUnfurledAtIsCoarse(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	require.NoError(t, s.CreateConnection(ctx, newConn("c1", "github")))
	at := baseTime()
	sub := newSub("github", "c1", "https://example.com/a")
	sub.UnfurledAt = at
	_, err := s.PutSubscription(ctx, sub)
	require.NoError(t, err)
	assertSub(t, s, sub)

	tests := []struct {
		name  string
		hash  string
		at    time.Time
		wrote bool
		want  time.Time
	}{
		{"same hash, an hour later", "hash-1", at.Add(time.Hour), false, at},
		{"same hash, a day later", "hash-1", at.Add(store.UnfurledGranularity), true, at.Add(store.UnfurledGranularity)},
		{"new hash, an hour later", "hash-2", at.Add(store.UnfurledGranularity + time.Hour), true, at.Add(store.UnfurledGranularity + time.Hour)},
		{"no time", "hash-2", time.Time{}, false, at.Add(store.UnfurledGranularity + time.Hour)},
		{"earlier", "hash-3", at, true, at.Add(store.UnfurledGranularity + time.Hour)},
	}
	for _, tc := range tests {
		put := sub
		put.AttrHash, put.UnfurledAt = tc.hash, tc.at
		wrote, err := s.PutSubscription(ctx, put)
		require.NoError(t, err)
		assert.Equal(t, tc.wrote, wrote, tc.name)
		got, err := s.GetSubscription(ctx, sub.SubscriptionKey)
		require.NoError(t, err)
		assert.True(t, got.UnfurledAt.Equal(tc.want), "%s: %v", tc.name, got.UnfurledAt)
	}
}

// testExpireSubscriptions: links last unfurled before the time go,
// oldest first, in pages of limit, with their schedule; records without
// UnfurledAt go by UpdatedAt, which a webhook's pending mark does not
// move (store.MergeSubscription: a webhook is no unfurl); other
// providers are left alone.
func testExpireSubscriptions(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	require.NoError(t, s.CreateConnection(ctx, newConn("c1", "github")))
	require.NoError(t, s.CreateConnection(ctx, newConn("c2", "linear")))
	at := baseTime()
	var subs []store.Subscription
	for i, days := range []int{5, 1, 30, 10} {
		sub := newSub("github", "c1", fmt.Sprintf("https://example.com/%d", i))
		sub.UnfurledAt = at.Add(-time.Duration(days) * 24 * time.Hour)
		subs = append(subs, sub)
	}
	legacy := newSub("github", "c1", "https://example.com/legacy")
	legacy.UpdatedAt = at.Add(-20 * 24 * time.Hour)
	oldLinear := newSub("linear", "c2", "https://linear.app/x")
	oldLinear.UnfurledAt = at.Add(-100 * 24 * time.Hour)
	subs = append(subs, legacy, oldLinear)
	_, err := s.PutSubscriptions(ctx, subs)
	require.NoError(t, err)
	markPending(t, s, at, subs[2].SubscriptionKey, legacy.SubscriptionKey)

	before := at.Add(-2 * 24 * time.Hour)
	got, err := s.ExpireSubscriptions(ctx, "github", before, 2)
	require.NoError(t, err)
	assert.Equal(t, []store.SubscriptionKey{subs[2].SubscriptionKey, legacy.SubscriptionKey}, got)
	got, err = s.ExpireSubscriptions(ctx, "github", before, 2)
	require.NoError(t, err)
	assert.Equal(t, []store.SubscriptionKey{subs[3].SubscriptionKey, subs[0].SubscriptionKey}, got)
	got, err = s.ExpireSubscriptions(ctx, "github", before, 2)
	require.NoError(t, err)
	assert.Empty(t, got)

	assert.Equal(t, []store.SubscriptionKey{subs[1].SubscriptionKey}, listSubs(t, s, "github"))
	assert.Equal(t, []store.SubscriptionKey{oldLinear.SubscriptionKey}, listSubs(t, s, "linear"))
	pending, err := s.ClaimPending(ctx, "r1", at, time.Minute, 10)
	require.NoError(t, err)
	assert.Empty(t, pending, "the expired marks went with their subscriptions")
	due, err := s.ClaimDuePolls(ctx, "github", "r1", at, time.Minute, 10)
	require.NoError(t, err)
	assert.Equal(t, []store.SubscriptionKey{subs[1].SubscriptionKey}, keysOf(due))
}

// testScheduleCounts: subscriptions, due, leased and pending, per
// provider.
func testScheduleCounts(t *testing.T, s ScheduleStore) {
	ctx := t.Context()
	keys := seedSubs(t, s, "github", 5)
	seedSubs(t, s, "linear", 2)
	now := baseTime()
	schedule(t, s, "r1", keys[:2], now.Add(time.Hour), now.Add(-time.Hour))
	_, err := s.ClaimDuePolls(ctx, "github", "r1", now, time.Minute, 2) // keys[2], keys[3]
	require.NoError(t, err)
	markPending(t, s, now, keys[0], keys[4])
	c, err := s.ScheduleCounts(ctx, "github", now)
	require.NoError(t, err)
	assert.Equal(t, store.ScheduleCounts{Subscriptions: 5, Due: 2, Leased: 2, Pending: 2}, c)
	c, err = s.ScheduleCounts(ctx, "github", now.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, store.ScheduleCounts{Subscriptions: 5, Due: 5, Pending: 2}, c, "leases ran out, keys[0] due")
	c, err = s.ScheduleCounts(ctx, "linear", now)
	require.NoError(t, err)
	assert.Equal(t, store.ScheduleCounts{Subscriptions: 2, Due: 2}, c)
}

// testScheduleCancelledContext: every method honours a cancelled
// context.
func testScheduleCancelledContext(t *testing.T, s ScheduleStore) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	now := baseTime()
	_, err := s.ClaimDuePolls(ctx, "github", "r1", now, time.Minute, 1)
	require.ErrorIs(t, err, context.Canceled)
	_, _, err = s.NextPollDue(ctx, "github", now)
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.SchedulePolls(ctx, "r1", []store.PollSlot{{Next: now}})
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.ClaimPending(ctx, "r1", now, time.Minute, 1)
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.ExpireSubscriptions(ctx, "github", now, 1)
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.ScheduleCounts(ctx, "github", now)
	require.ErrorIs(t, err, context.Canceled)
}
