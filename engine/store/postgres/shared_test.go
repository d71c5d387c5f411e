package postgres_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// sharedFixture is a store with connection c1, subscriptions u1 and u2
// and a pending item for each, due at t0.
func sharedFixture(t *testing.T) (st sharedStore, t0 time.Time, keys []store.SubscriptionKey) {
	t.Helper()
	s := open(t)
	ctx := t.Context()
	t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c1", Provider: "tracker", Status: store.StatusActive}))
	for _, u := range []string{"u1", "u2"} {
		k := store.SubscriptionKey{Provider: "tracker", ConnectionID: "c1", URI: u}
		_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, AttrHash: "old"})
		require.NoError(t, err)
		_, err = s.Enqueue(ctx, store.OutboxItem{SubscriptionKey: k, Body: []byte(`{}`), AttrHash: "h-" + u, EnqueuedAt: t0, NextAt: t0})
		require.NoError(t, err)
		keys = append(keys, k)
	}
	return s, t0, keys
}

// sharedStore is the postgres store as the shared tests use it.
type sharedStore interface {
	store.Store
	store.SharedOutbox
}

// TestClaimLeases_F1: a claimed item is not claimed again while its lease
// runs, DueOutbox reports it due when the lease ends, and after that
// another process claims it (a killed replica's items).
func TestClaimLeases_F1(t *testing.T) {
	st, t0, keys := sharedFixture(t)
	ctx := t.Context()
	const lease = time.Minute
	got, err := st.ClaimOutbox(ctx, t0, lease, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, keys[0], got[0].SubscriptionKey, "DueOutbox's order")
	assert.True(t, got[0].Slot.IsZero())

	got, err = st.ClaimOutbox(ctx, t0, lease, 10)
	require.NoError(t, err)
	require.Len(t, got, 1, "the leased item is skipped")
	assert.Equal(t, keys[1], got[0].SubscriptionKey)

	due, err := st.DueOutbox(ctx, t0.Add(lease-time.Nanosecond), 10)
	require.NoError(t, err)
	assert.Empty(t, due, "nothing due while the leases run")
	due, err = st.DueOutbox(ctx, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 10)
	require.NoError(t, err)
	require.Len(t, due, 2)
	assert.Equal(t, t0.Add(lease), due[0].NextAt, "due when its lease ends")

	got, err = st.ClaimOutbox(ctx, t0.Add(lease), lease, 10)
	require.NoError(t, err)
	assert.Len(t, got, 2, "a lease that ran out is taken over")
}

// TestSettlingEndsTheLease: whatever settles the leased state (ack,
// reschedule, defer, delete) ends the lease, so a newer state queued
// meanwhile is due at once instead of waiting for the lease; DeferOutbox
// notes the slot, which the next claim returns, and RescheduleOutbox
// clears it.
func TestSettlingEndsTheLease(t *testing.T) {
	later := func(at time.Time) func(st sharedStore, it store.OutboxItem) error {
		return func(st sharedStore, it store.OutboxItem) error {
			_, err := st.RescheduleOutbox(t.Context(), []store.OutboxUpdate{{SubscriptionKey: it.SubscriptionKey, Seq: it.Seq, NextAt: at}})
			return err
		}
	}
	tests := []struct {
		name   string
		settle func(st sharedStore, it store.OutboxItem) error
	}{
		{"ack", func(st sharedStore, it store.OutboxItem) error { return st.AckOutbox(t.Context(), it, time.Now()) }},
		{"delete", func(st sharedStore, it store.OutboxItem) error {
			_, err := st.DeleteOutboxItem(t.Context(), it.SubscriptionKey, it.Seq)
			return err
		}},
		{"reschedule", later(time.Time{})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, t0, keys := sharedFixture(t)
			ctx := t.Context()
			got, err := st.ClaimOutbox(ctx, t0, time.Hour, 1)
			require.NoError(t, err)
			require.Len(t, got, 1)
			_, err = st.Enqueue(ctx, store.OutboxItem{SubscriptionKey: keys[0], Body: []byte(`{}`), AttrHash: "newer", EnqueuedAt: t0, NextAt: t0})
			require.NoError(t, err)
			require.NoError(t, tc.settle(st, got[0].OutboxItem))
			again, err := st.ClaimOutbox(ctx, t0, time.Hour, 10)
			require.NoError(t, err)
			var hashes []string
			for _, c := range again {
				hashes = append(hashes, c.AttrHash)
			}
			assert.Contains(t, hashes, "newer", "the newer state goes without waiting for the lease")
		})
	}

	t.Run("defer notes the slot", func(t *testing.T) {
		st, t0, keys := sharedFixture(t)
		ctx := t.Context()
		got, err := st.ClaimOutbox(ctx, t0, time.Hour, 1)
		require.NoError(t, err)
		slot := t0.Add(2 * time.Second)
		n, err := st.DeferOutbox(ctx, []store.OutboxUpdate{{SubscriptionKey: keys[0], Seq: got[0].Seq, NextAt: slot}})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		got, err = st.ClaimOutbox(ctx, slot, time.Hour, 10) // u2, never deferred, comes first
		require.NoError(t, err)
		require.Len(t, got, 2)
		assert.True(t, got[0].Slot.IsZero(), "u2 has no slot")
		require.Equal(t, keys[0], got[1].SubscriptionKey)
		assert.Equal(t, slot, got[1].Slot, "claimed at its slot, with the slot")
		require.NoError(t, later(slot)(st, got[1].OutboxItem))
		got, err = st.ClaimOutbox(ctx, slot, time.Hour, 10)
		require.NoError(t, err)
		require.Len(t, got, 1, "u2 is leased")
		assert.True(t, got[0].Slot.IsZero(), "a reschedule is no slot")
	})
}

// TestUpdatePaceSerializes_F10: replicas reserving slots of one
// connection at once each read the state the previous one wrote.
func TestUpdatePaceSerializes_F10(t *testing.T) {
	st := open(t)
	base := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			assert.NoError(t, st.UpdatePace(t.Context(), "c1", func(p store.Pace) store.Pace {
				if p.TAT.IsZero() {
					p.TAT = base
				}
				p.TAT = p.TAT.Add(time.Second)
				return p
			}))
		})
	}
	wg.Wait()
	require.NoError(t, st.UpdatePace(t.Context(), "c1", func(p store.Pace) store.Pace {
		assert.Equal(t, base.Add(n*time.Second), p.TAT, "no update lost")
		return p
	}))
}
