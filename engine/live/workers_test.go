package live_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
	"github.com/unfurld/unfurld/engine/upstream"
)

// timedRefresher answers every refresh as an upstream fetch that took
// latency and sent reqs requests, announcing rateLimit; it counts the
// refreshes.
type timedRefresher struct {
	latency   time.Duration
	reqs      int
	rateLimit upstream.RateLimit
	mu        sync.Mutex
	calls     int
}

func (f *timedRefresher) Refresh(context.Context, store.SubscriptionKey, string) (live.Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
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

// TestPollWorkersAdapt: the refreshes a provider runs at once follow the
// subscriptions, the interval (10m), the measured latency, the request
// budget, the upstream's announced rate limit and the maximum, so that a
// sweep ends within its interval when the budget allows. Every
// subscription is due at once and one PollDue polls them as far as the
// budget lets; the last wave's size is in the stats.
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
		max       int
		want      int
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newLiveEnv(t, tc.budget)
			ref := &timedRefresher{latency: tc.latency, reqs: tc.reqs, rateLimit: tc.rateLimit}
			p, err := live.NewPoller(live.PollerOptions{
				Refresher: ref, Store: dueStore(t, tc.subs), Registry: e.reg, Clock: e.clock, MaxWorkers: tc.max,
			})
			require.NoError(t, err)
			_, err = p.PollDue(t.Context())
			require.NoError(t, err)
			st := p.Stats()["tracker"]
			assert.Equal(t, tc.want, st.Workers)
			assert.Equal(t, tc.latency, st.Latency)
			assert.Positive(t, ref.calls)
			if tc.inTime {
				sweep := time.Duration((tc.subs+st.Workers-1)/st.Workers) * tc.latency
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
