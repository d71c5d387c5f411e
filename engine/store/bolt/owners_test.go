package bolt

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// TestLeasesOfAnExitedProcessAreTakenOver_F1: leases left in the file by
// a process that exited (here: the store closed without releasing them,
// as a kill -9 leaves them) are taken over by the next process at once,
// polls and pending marks alike, and the schedule's counts and next due
// time no longer see them; while the store stays open, another owner's
// running lease is respected as before.
func TestLeasesOfAnExitedProcessAreTakenOver_F1(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	k, at := markedSub(t, s)

	claimed, err := s.ClaimPending(ctx, "old", at, time.Hour, 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	due, err := s.ClaimDuePolls(ctx, "p", "old", at, time.Hour, 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	// The same process: another owner waits for the lease.
	claimed, err = s.ClaimPending(ctx, "other", at.Add(time.Minute), time.Hour, 10)
	require.NoError(t, err)
	assert.Empty(t, claimed)
	due, err = s.ClaimDuePolls(ctx, "p", "other", at.Add(time.Minute), time.Hour, 10)
	require.NoError(t, err)
	assert.Empty(t, due)
	counts, err := s.ScheduleCounts(ctx, "p", at.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 1, counts.Leased)

	require.NoError(t, s.Close())
	s, err = Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	now := at.Add(time.Minute) // well within the old leases
	counts, err = s.ScheduleCounts(ctx, "p", now)
	require.NoError(t, err)
	assert.Zero(t, counts.Leased)
	next, ok, err := s.NextPollDue(ctx, "p", now)
	require.NoError(t, err)
	require.True(t, ok)
	assert.False(t, next.After(now), "due now, not when the old lease ends")
	claimed, err = s.ClaimPending(ctx, "new", now, time.Hour, 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	assert.Equal(t, k, claimed[0].SubscriptionKey)
	due, err = s.ClaimDuePolls(ctx, "p", "new", now, time.Hour, 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	n, err := s.SchedulePolls(ctx, "new", []store.PollSlot{{SubscriptionKey: k, Next: now.Add(time.Hour)}})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}
