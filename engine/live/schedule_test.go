package live_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// claimCounter is a schedule that records the size of every claim.
type claimCounter struct {
	live.PollSchedule
	mu     sync.Mutex
	claims []int
}

func (c *claimCounter) ClaimDuePolls(ctx context.Context, provider, owner string, now time.Time, lease time.Duration, limit int) ([]store.Subscription, error) {
	got, err := c.PollSchedule.ClaimDuePolls(ctx, provider, owner, now, lease, limit)
	c.mu.Lock()
	c.claims = append(c.claims, len(got))
	c.mu.Unlock()
	return got, err
}

// nextPolls reads every tracker subscription's next poll time.
func (e *liveEnv) nextPolls() []time.Time {
	e.t.Helper()
	var out []time.Time
	require.NoError(e.t, e.st.ListSubscriptions(e.t.Context(), "tracker", func(s store.Subscription) error {
		out = append(out, s.NextPollAt)
		return nil
	}))
	return out
}

// TestPollSpreadsNeverScheduledInPages: after an upgrade every stored
// subscription is never scheduled; the poller streams them from the
// store in pages (never more than a page in memory) and gives each a
// first poll at a random point of the interval, fetching none of them
// at once (no thundering herd).
func TestPollSpreadsNeverScheduledInPages(t *testing.T) {
	e := newLiveEnv(t, 3600)
	e.connect("c1", "tracker")
	const n = 2500
	subs := make([]store.Subscription, n)
	for i := range subs {
		subs[i] = store.Subscription{SubscriptionKey: store.SubscriptionKey{Provider: "tracker", ConnectionID: "c1", URI: trackerURI(i)}, CreatedAt: t0}
	}
	_, err := e.st.PutSubscriptions(t.Context(), subs)
	require.NoError(t, err)
	sched := &claimCounter{PollSchedule: e.st.(live.PollSchedule)}
	i := 0
	p := e.newPoller(func() float64 { i++; return float64(i%999+1) / 1000 }, func(o *live.PollerOptions) { o.Store = sched })

	next, err := p.PollDue(t.Context())
	require.NoError(t, err)
	assert.Empty(t, e.up.Requests(), "no fetch at once")
	assert.Equal(t, t0.Add(600*time.Millisecond), next, "the earliest first poll: 0.001 of the interval")
	for _, c := range sched.claims {
		assert.LessOrEqual(t, c, 1000, "a claim is a page")
	}
	polls := e.nextPolls()
	require.Len(t, polls, n)
	for _, at := range polls {
		assert.False(t, at.Before(t0), at)
		assert.True(t, at.Before(t0.Add(10*time.Minute)), at)
	}
	assert.Equal(t, n, p.Stats()["tracker"].Subscriptions)
}

// TestPollUnchangedWritesOnlyTheSchedule: a poll that finds nothing new
// (a 304, or the same attributes) moves the subscription's next poll
// time, which lives in the store's schedule, and leaves its refresh
// record as the last poll that changed something wrote it.
func TestPollUnchangedWritesOnlyTheSchedule(t *testing.T) {
	e := newLiveEnv(t, 3600)
	keys := e.subscribeItems(1)
	e.up.Set(itemPath(1), upstreamtest.Response{Body: item("Item 1", "open"), ETag: `"v1"`})
	p := e.newPoller(seqRand(0.5, 0))
	e.pollUntil(p, 5*time.Minute)
	e.flush()
	first := e.sub(keys[0])
	require.Equal(t, live.OutcomeUnchanged, first.Refresh.Outcome)
	assert.Equal(t, t0.Add(10*time.Minute), first.NextPollAt)

	e.pollUntil(p, 25*time.Minute) // two 304s
	e.flush()
	later := e.sub(keys[0])
	assert.Equal(t, t0.Add(30*time.Minute), later.NextPollAt, "the schedule moves")
	assert.Equal(t, live.OutcomeNotModified, later.Refresh.Outcome)
	notModifiedAt := later.Refresh.At
	assert.Equal(t, t0.Add(20*time.Minute), notModifiedAt, "the last 304 of the batch is recorded")

	e.pollUntil(p, 35*time.Minute) // a third 304, the same story
	e.flush()
	assert.Equal(t, notModifiedAt, e.sub(keys[0]).Refresh.At, "the record is not rewritten for its time alone")
	assert.Equal(t, 4, p.Stats()["tracker"].Polls)
}

// TestPollShorterIntervalTakesEffect: a reload from poll_interval 1h to
// 10m moves the polls the longer interval scheduled beyond the new one
// into it, so the change takes effect at once; without the previous
// interval they would keep their far slots.
func TestPollShorterIntervalTakesEffect(t *testing.T) {
	for _, shortened := range []bool{true, false} {
		t.Run(map[bool]string{true: "Reloaded", false: "Unknown"}[shortened], func(t *testing.T) {
			e := newLiveEnv(t, 3600)
			keys := e.subscribeItems(3)
			sched := e.st.(live.PollSchedule)
			var slots []store.PollSlot
			for i, k := range keys {
				slots = append(slots, store.PollSlot{SubscriptionKey: k, Next: t0.Add(time.Duration(20+15*i) * time.Minute)})
			}
			_, err := sched.SchedulePolls(t.Context(), "old", slots)
			require.NoError(t, err)
			p := e.newPoller(seqRand(0.5), func(o *live.PollerOptions) {
				if shortened {
					o.PreviousIntervals = map[string]time.Duration{"tracker": time.Hour}
				}
			})
			_, err = p.PollDue(t.Context())
			require.NoError(t, err)
			for _, at := range e.nextPolls() {
				if shortened {
					assert.Equal(t, t0.Add(5*time.Minute), at)
				} else {
					assert.True(t, at.After(t0.Add(10*time.Minute)), at)
				}
			}
		})
	}
}

// TestPollLeaseSharesWork: two pollers (two replicas) on one store never
// poll the same subscription in one interval: a claim leases it.
func TestPollLeaseSharesWork(t *testing.T) {
	e := newLiveEnv(t, 3600)
	e.subscribeItems(40)
	a := e.newPoller(seqRand(0.5), func(o *live.PollerOptions) { o.Owner, o.MaxWorkers = "a", 4 })
	b := e.newPoller(seqRand(0.5), func(o *live.PollerOptions) { o.Owner, o.MaxWorkers = "b", 4 })
	_, err := a.PollDue(t.Context()) // spreads every first poll to t0+5m
	require.NoError(t, err)
	e.clock.Set(t0.Add(5 * time.Minute))
	var wg sync.WaitGroup
	for _, p := range []*live.Poller{a, b} {
		wg.Go(func() {
			_, err := p.PollDue(t.Context())
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for _, c := range e.up.Requests()[40:] {
		seen[c.Path]++
	}
	assert.Len(t, seen, 40, "every subscription polled")
	for path, n := range seen {
		assert.Equal(t, 1, n, "polled once: %s", path)
	}
	assert.Equal(t, 40, a.Stats()["tracker"].Polls+b.Stats()["tracker"].Polls)
}
