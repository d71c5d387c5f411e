package live_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/clock/clocktest"
	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
	"github.com/unfurld/unfurld/engine/upstream"
)

// timedRefresher answers every refresh as an upstream fetch that took
// latency and sent reqs requests, announcing rateLimit; it counts the
// refreshes. With waves set, it also moves the fake clock to latency
// after the wave's claim, as refreshes running at once would, and calls
// overrun past subs refreshes: a sweep longer than the interval would
// start over and poll for ever.
type timedRefresher struct {
	latency   time.Duration
	reqs      int
	rateLimit upstream.RateLimit
	waves     *costlyStore
	subs      int
	overrun   context.CancelFunc
	mu        sync.Mutex
	calls     int
}

func (f *timedRefresher) Refresh(context.Context, store.SubscriptionKey, string) (live.Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.waves != nil {
		f.waves.clock.Set(f.waves.claimedAt().Add(f.latency))
		if f.calls > f.subs {
			f.overrun()
		}
	}
	return live.Outcome{
		Elapsed:  f.latency,
		Upstream: provider.UpstreamInfo{Status: 200, Requests: f.reqs, RateLimit: f.rateLimit},
	}, nil
}

// dueStore is a memory store holding n subscriptions of the tracker by
// connection c1, all due at t0.
func dueStore(t *testing.T, n int) *memory.Store {
	t.Helper()
	st := memory.New()
	require.NoError(t, st.CreateConnection(t.Context(), store.Connection{ID: "c1", Provider: "tracker", Status: store.StatusActive, CreatedAt: t0}))
	subs := make([]store.Subscription, n)
	for i := range subs {
		subs[i] = store.Subscription{
			SubscriptionKey: store.SubscriptionKey{Provider: "tracker", ConnectionID: "c1", URI: trackerURI(i)},
			CreatedAt:       t0, UpdatedAt: t0, NextPollAt: t0,
		}
	}
	written, err := st.PutSubscriptions(t.Context(), subs)
	require.NoError(t, err)
	require.Equal(t, n, written)
	return st
}

// costlyStore is a memory store whose claims and schedule writes take
// claim and schedule on the fake clock, like a database's round trips.
type costlyStore struct {
	*memory.Store
	clock           *clocktest.Fake
	claim, schedule time.Duration
	mu              sync.Mutex
	claimed         time.Time
}

func (c *costlyStore) ClaimDuePolls(ctx context.Context, provider, owner string, now time.Time, lease time.Duration, limit int) ([]store.Subscription, error) {
	c.clock.Advance(c.claim)
	c.mu.Lock()
	c.claimed = c.clock.Now()
	c.mu.Unlock()
	return c.Store.ClaimDuePolls(ctx, provider, owner, now, lease, limit)
}

func (c *costlyStore) SchedulePolls(ctx context.Context, owner string, next []store.PollSlot) (int, error) {
	c.clock.Advance(c.schedule)
	return c.Store.SchedulePolls(ctx, owner, next)
}

// claimedAt is when the last claim returned.
func (c *costlyStore) claimedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.claimed
}

// TestPollWorkersAdapt: the refreshes a provider runs at once follow the
// subscriptions, the interval (10m), the measured latency, the request
// budget, the upstream's announced rate limit and the maximum, so that a
// sweep ends within its interval when the budget allows; rows with a
// claim or schedule cost time whole waves on the fake clock, where the
// store's round trips cost more than the upstream. Every subscription is
// due at once and one PollDue polls them as far as the budget lets; the
// last wave's size is in the stats.
func TestPollWorkersAdapt(t *testing.T) {
	interval := 10 * time.Minute
	reset := t0.Add(time.Hour)
	tests := []struct {
		name      string
		subs      int
		latency   time.Duration
		reqs      int
		budget    int // requests an hour
		rateLimit upstream.RateLimit
		// claim and schedule are what the store's calls take on the
		// fake clock; zero leaves the clock still.
		claim, schedule time.Duration
		max             int
		want            int
		// inTime: the budget allows a sweep within the interval.
		inTime bool
	}{
		{name: "UnknownLatencyStartsAtFour", subs: 100, latency: 0, reqs: 0, budget: 3600000, want: 4, inTime: true},
		{name: "FewSubscriptionsOneWorker", subs: 100, latency: 100 * time.Millisecond, reqs: 1, budget: 3600000, want: 1, inTime: true},
		{name: "FastUpstream", subs: 600, latency: time.Second, reqs: 1, budget: 3600000, want: 2, inTime: true},
		{name: "SlowUpstream", subs: 600, latency: 10 * time.Second, reqs: 1, budget: 3600000, want: 13, inTime: true},
		{name: "SlowerUpstreamMore", subs: 600, latency: 40 * time.Second, reqs: 1, budget: 3600000, want: 50, inTime: true},
		{name: "CappedAtMax", subs: 600, latency: 40 * time.Second, reqs: 1, budget: 3600000, max: 16, want: 16},
		{name: "DefaultMax", subs: 1200, latency: 40 * time.Second, reqs: 1, budget: 3600000, want: live.DefaultMaxPollWorkers},
		// One request a second keeps 40 fetches of 40s busy.
		{name: "BudgetFeeds", subs: 600, latency: 40 * time.Second, reqs: 1, budget: 3600, want: 40},
		{name: "BudgetPerRequest", subs: 600, latency: 40 * time.Second, reqs: 2, budget: 3600, want: 20},
		{name: "BudgetOfTheDefault", subs: 600, latency: time.Second, reqs: 1, budget: 3600, want: 1},
		{
			name: "RateLimitHeaders", subs: 600, latency: 6 * time.Second, reqs: 1, budget: 3600000,
			// 4000 left, 1000 of them the unfurls' reserve, over an hour:
			// 0.83 a second keep five 6s refreshes busy (not the 8 the
			// sweep wants).
			rateLimit: upstream.RateLimit{Known: true, Limit: 5000, Remaining: 4000, Reset: reset}, want: 5,
		},
		{
			name: "RateLimitPast", subs: 600, latency: 10 * time.Second, reqs: 1, budget: 3600000,
			rateLimit: upstream.RateLimit{Known: true, Limit: 5000, Remaining: 4000, Reset: t0.Add(-time.Second)}, want: 13, inTime: true,
		},
		// A wave of a 100ms upstream costs 1.1s with the store's round
		// trips: one worker would take 660s for 600, two take 330s.
		{name: "StoreRoundTripsDominate", subs: 600, latency: 100 * time.Millisecond, reqs: 1, budget: 3600000, claim: 500 * time.Millisecond, schedule: 500 * time.Millisecond, want: 2, inTime: true},
		// Refreshes that ask no upstream still cost a wave's round trips.
		{name: "OverheadWithoutUpstream", subs: 600, latency: 0, reqs: 0, budget: 3600000, claim: time.Second, schedule: time.Second, want: 3, inTime: true},
		// One request a second keeps 4 workers busy when a wave lasts
		// 3.5s (1s upstream, 2.5s store), not 1.
		{name: "BudgetFeedsWholeWaves", subs: 600, latency: time.Second, reqs: 1, budget: 3600, claim: 1250 * time.Millisecond, schedule: 1250 * time.Millisecond, want: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newLiveEnv(t, tc.budget)
			ref := &timedRefresher{latency: tc.latency, reqs: tc.reqs, rateLimit: tc.rateLimit}
			var sched live.PollSchedule = dueStore(t, tc.subs)
			overhead := tc.claim + tc.schedule
			ctx := t.Context()
			if overhead > 0 {
				ref.waves = &costlyStore{Store: dueStore(t, tc.subs), clock: e.clock, claim: tc.claim, schedule: tc.schedule}
				ctx, ref.overrun = context.WithCancel(ctx)
				ref.subs, sched = tc.subs, ref.waves
			}
			p, err := live.NewPoller(live.PollerOptions{
				Refresher: ref, Store: sched, Registry: e.reg, Clock: e.clock, MaxWorkers: tc.max,
			})
			require.NoError(t, err)
			_, err = p.PollDue(ctx)
			require.NoError(t, err, "the sweep ran past its interval")
			st := p.Stats()["tracker"]
			assert.Equal(t, tc.want, st.Workers)
			assert.Equal(t, tc.latency, st.Latency)
			assert.Equal(t, overhead, st.WaveOverhead)
			assert.Positive(t, ref.calls)
			if tc.inTime {
				sweep := time.Duration((tc.subs+st.Workers-1)/st.Workers) * (tc.latency + overhead)
				assert.LessOrEqual(t, sweep, interval, "a sweep of %d takes %s", tc.subs, sweep)
			}
		})
	}
}

// TestRefreshTimesFetch: a refresh reports how long the upstream took, by
// the clock, which the poller sizes its waves with.
func TestRefreshTimesFetch(t *testing.T) {
	e := newLiveEnv(t, 3600)
	keys := e.subscribeItems(1)
	e.latency.Store(int64(750 * time.Millisecond))
	out := e.refresh(keys[0])
	assert.Equal(t, 750*time.Millisecond, out.Elapsed)
	assert.Equal(t, 1, out.Upstream.Requests, strconv.Itoa(out.Upstream.Status))
}

// TestPollSweepWithinIntervalWhenWavesCost: when a wave's claim and
// schedule write cost more than the upstream (750ms against 1ms, as on a
// database a few round trips away from a fast upstream), 1200
// subscriptions all due are still polled within their 10m interval on
// the fake clock: waves are sized from what a whole wave takes. Sized
// from the upstream's latency alone they were waves of one, 900s.
func TestPollSweepWithinIntervalWhenWavesCost(t *testing.T) {
	const subs = 1200
	e := newLiveEnv(t, 3600000)
	ctx, overrun := context.WithCancel(t.Context())
	ref := &timedRefresher{latency: time.Millisecond, reqs: 1, subs: subs, overrun: overrun}
	ref.waves = &costlyStore{Store: dueStore(t, subs), clock: e.clock, claim: 375 * time.Millisecond, schedule: 375 * time.Millisecond}
	p, err := live.NewPoller(live.PollerOptions{Refresher: ref, Store: ref.waves, Registry: e.reg, Clock: e.clock})
	require.NoError(t, err)

	_, err = p.PollDue(ctx)
	require.NoError(t, err, "the sweep ran past its interval and started over")
	assert.Equal(t, subs, ref.calls, "every subscription polled")
	sweep := e.clock.Now().Sub(t0)
	assert.LessOrEqual(t, sweep, 10*time.Minute, "the sweep took %s", sweep)
	st := p.Stats()["tracker"]
	assert.Equal(t, 2, st.Workers)
	assert.Equal(t, 750*time.Millisecond, st.WaveOverhead)
}
