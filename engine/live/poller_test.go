package live_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// newPoller builds a Poller over e with one worker, so that the order of
// fetches is the schedule's; edit adjusts the options.
func (e *liveEnv) newPoller(rnd func() float64, edit ...func(*live.PollerOptions)) *live.Poller {
	e.t.Helper()
	sched, ok := e.st.(live.PollSchedule)
	require.True(e.t, ok, "the store keeps a schedule")
	opts := live.PollerOptions{
		Refresher: e.r, Store: sched, Registry: e.reg, Clock: e.clock, Rand: rnd,
		MaxWorkers: 1, BaseBackoff: time.Second, MaxBackoff: time.Minute,
	}
	for _, f := range edit {
		f(&opts)
	}
	p, err := live.NewPoller(opts)
	require.NoError(e.t, err)
	return p
}

// pollUntil runs PollDue and moves the clock to each next due time, until
// the clock would pass t0+horizon.
func (e *liveEnv) pollUntil(p *live.Poller, horizon time.Duration) {
	e.t.Helper()
	for range 10000 {
		next, err := p.PollDue(e.t.Context())
		require.NoError(e.t, err)
		if next.IsZero() || next.After(t0.Add(horizon)) {
			return
		}
		e.clock.Set(next)
	}
	e.t.Fatal("polling did not reach the horizon")
}

// subscribeItems makes items 1..n exist upstream and unfurled by c1; the
// unfurls' fetches are the first n upstream calls.
func (e *liveEnv) subscribeItems(n int) []store.SubscriptionKey {
	e.t.Helper()
	e.connect("c1", "tracker")
	var keys []store.SubscriptionKey
	for i := 1; i <= n; i++ {
		e.up.Set(itemPath(i), upstreamtest.Response{Body: item("Item "+strconv.Itoa(i), "open")})
		keys = append(keys, e.unfurled("c1", i))
	}
	return keys
}

// pollTimes returns when each poll fetched, relative to t0, after the
// first skip fetches (the unfurls').
func (e *liveEnv) pollTimes(skip int) []time.Duration {
	return upstreamTimes(e.up)[skip:]
}

// TestPollSpreadWithJitter: first polls fall at random points of the
// interval, one per subscription (the injected Rand), so a restart does
// not fetch everything at once; then each subscription is polled once
// per interval, keeping its place.
func TestPollSpreadWithJitter(t *testing.T) {
	e := newLiveEnv(t, 3600)
	e.subscribeItems(4)
	p := e.newPoller(seqRand(0.5, 0.1, 0.35, 0.6, 0.85))
	e.pollUntil(p, 20*time.Minute)

	m := time.Minute
	assert.Equal(t, []time.Duration{
		m, 3*m + 30*time.Second, 6 * m, 8*m + 30*time.Second,
		11 * m, 13*m + 30*time.Second, 16 * m, 18*m + 30*time.Second,
	}, e.pollTimes(4))
	paths := []string{}
	for _, c := range e.up.Requests()[4:] {
		paths = append(paths, c.Path)
	}
	assert.Equal(t, []string{"/items/1", "/items/2", "/items/3", "/items/4", "/items/1", "/items/2", "/items/3", "/items/4"}, paths)

	st := p.Stats()["tracker"]
	assert.Equal(t, 4, st.Subscriptions)
	assert.Equal(t, 8, st.Polls)
	assert.Equal(t, 10*time.Minute, st.Interval)
	assert.Equal(t, t0.Add(18*m+30*time.Second), st.LastPollAt)
	assert.Zero(t, st.Failures)
}

// TestPollRetryAfterPauses: a 429 with Retry-After: 120 pauses the whole
// provider for exactly 120 s on the injected clock; the limited link goes
// first when the pause ends, and nothing is pushed meanwhile.
func TestPollRetryAfterPauses(t *testing.T) {
	e := newLiveEnv(t, 3600)
	e.subscribeItems(2)
	e.up.Script(itemPath(1), upstreamtest.Response{Status: 429, Header: map[string]string{"Retry-After": "120"}})
	p := e.newPoller(seqRand(0.5, 0, 0))

	next, err := p.PollDue(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{0}, e.pollTimes(2), "the 429, and nothing more")
	assert.Equal(t, t0.Add(time.Minute), next, "awake for the next sync only")
	st := p.Stats()["tracker"]
	assert.Equal(t, t0.Add(2*time.Minute), st.PausedUntil)
	assert.Equal(t, 1, st.Failures)
	assert.Equal(t, "upstream status 429, retry after 2m0s", st.LastError)

	e.pollUntil(p, 5*time.Minute)
	calls := e.up.Requests()[2:]
	require.Len(t, calls, 3)
	assert.Equal(t, []time.Duration{0, 2 * time.Minute, 2 * time.Minute}, e.pollTimes(2))
	assert.Equal(t, "/items/1", calls[1].Path, "the limited link first")
	assert.Equal(t, "/items/2", calls[2].Path)
	assert.Zero(t, p.Stats()["tracker"].ConsecutiveFailures)
	e.drain()
	assert.Empty(t, e.calls(""))
}

// TestPoll5xxBacksOff: a run of 5xx pauses the provider 1 s, 2 s, 4 s...
// (exponential, capped, jitter fixed at its middle); each failed link
// waits for its next round, and the first success ends the run.
func TestPoll5xxBacksOff(t *testing.T) {
	e := newLiveEnv(t, 3600)
	e.subscribeItems(4)
	for i := 1; i <= 4; i++ {
		e.up.Script(itemPath(i), upstreamtest.Response{Status: 500 + i%3})
	}
	p := e.newPoller(seqRand(0.5, 0, 0, 0, 0))
	e.pollUntil(p, 5*time.Minute)
	assert.Equal(t, []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}, e.pollTimes(4))
	st := p.Stats()["tracker"]
	assert.Equal(t, 4, st.Failures)
	assert.Equal(t, 4, st.ConsecutiveFailures)
	assert.Equal(t, t0.Add(15*time.Second), st.PausedUntil)

	e.pollUntil(p, 11*time.Minute)
	m := 10 * time.Minute
	assert.Equal(t, []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, m, m, m, m},
		e.pollTimes(4), "each failed link at its next slot, all succeeding")
	st = p.Stats()["tracker"]
	assert.Zero(t, st.ConsecutiveFailures)
	assert.Equal(t, 8, st.Polls)
}

// TestPollBackoffCapped: the pause stops growing at MaxBackoff.
func TestPollBackoffCapped(t *testing.T) {
	e := newLiveEnv(t, 3600)
	e.subscribeItems(9)
	for i := 1; i <= 9; i++ {
		e.up.Set(itemPath(i), upstreamtest.Response{Status: 502})
	}
	p := e.newPoller(seqRand(0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0), func(o *live.PollerOptions) { o.MaxBackoff = 10 * time.Second })
	e.pollUntil(p, 5*time.Minute)
	s := time.Second
	assert.Equal(t, []time.Duration{0, s, 3 * s, 7 * s, 15 * s, 25 * s, 35 * s, 45 * s, 55 * s}, e.pollTimes(9))
}

// TestPollBudgetDefers: with max_requests_per_hour 60 the provider gets
// one request a minute: polls due together are deferred, not dropped.
func TestPollBudgetDefers(t *testing.T) {
	e := newLiveEnv(t, 60)
	e.subscribeItems(3)
	p := e.newPoller(seqRand(0.5, 0, 0, 0))
	next, err := p.PollDue(t.Context())
	require.NoError(t, err)
	assert.Equal(t, t0.Add(time.Minute), next)
	e.pollUntil(p, 5*time.Minute)
	assert.Equal(t, []time.Duration{0, time.Minute, 2 * time.Minute}, e.pollTimes(3))
	assert.Positive(t, p.Stats()["tracker"].Deferred)
}

// TestPollRateLimitRemaining: an answer with X-RateLimit-Remaining: 0,
// or with less than a fifth of X-RateLimit-Limit left (kept for unfurls),
// pauses the provider until X-RateLimit-Reset, before any 429.
func TestPollRateLimitRemaining(t *testing.T) {
	tests := []struct {
		name             string
		remaining, limit string
		pause            bool
	}{
		{"spent", "0", "", true},
		{"reserve", "11", "60", true},
		{"above the reserve", "12", "60", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newLiveEnv(t, 3600)
			e.subscribeItems(2)
			reset := t0.Add(5 * time.Minute)
			e.up.Script(itemPath(1), upstreamtest.Response{Body: item("Item 1", "open"), Header: map[string]string{
				"X-RateLimit-Remaining": tc.remaining, "X-RateLimit-Limit": tc.limit,
				"X-RateLimit-Reset": strconv.FormatInt(reset.Unix(), 10),
			}})
			p := e.newPoller(seqRand(0.5, 0, 0))
			e.pollUntil(p, 6*time.Minute)
			st := p.Stats()["tracker"]
			if tc.pause {
				assert.Equal(t, []time.Duration{0, 5 * time.Minute}, e.pollTimes(2))
				assert.Equal(t, reset, st.PausedUntil.UTC())
			} else {
				assert.Equal(t, []time.Duration{0, 0}, e.pollTimes(2))
			}
			assert.Zero(t, st.Failures, "a spent budget is no failure")
		})
	}
}

// TestPollSync: the subscriptions are read again every SyncInterval: a
// new one is scheduled within the interval, a deleted one dropped.
func TestPollSync(t *testing.T) {
	e := newLiveEnv(t, 3600)
	keys := e.subscribeItems(1)
	p := e.newPoller(seqRand(0.5, 0.9, 0.2))
	_, err := p.PollDue(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, p.Stats()["tracker"].Subscriptions)

	e.up.Set(itemPath(2), upstreamtest.Response{Body: item("Item 2", "open")})
	e.unfurled("c1", 2)
	require.NoError(t, e.st.DeleteSubscription(t.Context(), keys[0]))
	e.clock.Set(t0.Add(time.Minute))
	e.pollUntil(p, 20*time.Minute)
	calls := e.up.Requests()[2:]
	require.Len(t, calls, 2)
	assert.Equal(t, "/items/2", calls[0].Path)
	assert.Equal(t, []time.Duration{3 * time.Minute, 13 * time.Minute}, e.pollTimes(2), "new at sync + 0.2 interval")
	assert.Equal(t, 1, p.Stats()["tracker"].Subscriptions)
}

// TestPollOnlyLiveProviders: live.enabled false or poll_interval 0s
// leaves a provider out.
func TestPollOnlyLiveProviders(t *testing.T) {
	e := newLiveEnv(t, 3600)
	off := false
	pc, _ := e.reg.Get("tracker")
	pc.Config.Live.Enabled = &off
	p := e.newPoller(nil)
	assert.Empty(t, p.Providers())
	next, err := p.PollDue(t.Context())
	require.NoError(t, err)
	assert.True(t, next.IsZero())
}

// TestPollerRun: Run polls on the clock and returns when its context
// ends (TH-54: no goroutine left, checked by TestMain).
func TestPollerRun(t *testing.T) {
	e := newLiveEnv(t, 3600)
	e.subscribeItems(1)
	p := e.newPoller(seqRand(0.5, 0.5))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	<-e.clock.Waiting() // synced, asleep until the first sync or poll
	e.clock.Set(t0.Add(time.Minute))
	<-e.clock.Waiting()
	e.clock.Set(t0.Add(5 * time.Minute))
	<-e.clock.Waiting()
	assert.Equal(t, []time.Duration{5 * time.Minute}, e.pollTimes(1))
	cancel()
	<-done
}

// TestNewPollerValidates: the required dependencies and sane bounds.
func TestNewPollerValidates(t *testing.T) {
	e := newLiveEnv(t, 3600)
	base := live.PollerOptions{Refresher: e.r, Store: e.st.(live.PollSchedule), Registry: e.reg}
	tests := []struct {
		name string
		edit func(*live.PollerOptions)
	}{
		{"NoRefresher", func(o *live.PollerOptions) { o.Refresher = nil }},
		{"NoStore", func(o *live.PollerOptions) { o.Store = nil }},
		{"NoRegistry", func(o *live.PollerOptions) { o.Registry = nil }},
		{"Negative", func(o *live.PollerOptions) { o.MaxWorkers = -1 }},
		{"Jitter", func(o *live.PollerOptions) { o.Jitter = 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := base
			tc.edit(&opts)
			_, err := live.NewPoller(opts)
			require.Error(t, err)
		})
	}
	p, err := live.NewPoller(base)
	require.NoError(t, err)
	assert.Equal(t, []string{"tracker"}, p.Providers())
}
