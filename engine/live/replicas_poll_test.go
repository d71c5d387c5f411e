package live_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

// TestReplicasPollOncePerInterval_F10: three pollers, each with its own
// connection pool as three replicas have, share one PostgreSQL schedule
// (issue 11). Over three poll intervals, driven on the fake clock with
// all three polling at the same moments, every subscription is fetched
// exactly once per interval, by whichever replica claimed it, and the
// work is spread over the replicas; then one replica stops (as if
// killed while it held nothing) and the other two still poll everything
// once per interval. The leases are what keeps two replicas from
// fetching one link at once (F10: the upstream's budget is not spent
// twice).
func TestReplicasPollOncePerInterval_F10(t *testing.T) {
	const (
		subs     = 60
		interval = 10 * time.Minute // trackerConfig's poll_interval
	)
	dsn := cluster.Database(t)
	open := func() *postgres.Store {
		st, err := postgres.Open(t.Context(), dsn)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	e := newLiveEnvWith(t, newEnvWith(t, open()), 1_000_000)
	e.subscribeItems(subs)
	unfurls := len(e.up.Requests())

	owners := []string{"replica-a", "replica-b", "replica-c"}
	pollers := make([]*live.Poller, len(owners))
	for i, owner := range owners {
		sched := open()
		pollers[i] = e.newPoller(seqRand(0.5), func(o *live.PollerOptions) {
			o.Store, o.Owner, o.MaxWorkers = sched, owner, 4
		})
	}
	// runInterval polls with ps until the clock would leave the interval
	// that starts at from, and returns how often each path was fetched.
	seen := unfurls
	runInterval := func(ps []*live.Poller, from time.Time) map[string]int {
		for range 1000 {
			next := pollTogether(t, ps)
			if next.IsZero() || !next.Before(from.Add(interval)) {
				break
			}
			e.clock.Set(next)
		}
		counts := map[string]int{}
		reqs := e.up.Requests()
		for _, r := range reqs[seen:] {
			counts[r.Path]++
		}
		seen = len(reqs)
		return counts
	}

	// The first polls are spread over the first interval (to its middle,
	// with this Rand); then each interval fetches each link once.
	for round := range 3 {
		from := e.clock.Now()
		counts := runInterval(pollers, from)
		require.Len(t, counts, subs, "round %d: every link polled", round)
		for path, n := range counts {
			assert.Equal(t, 1, n, "round %d: %s polled once", round, path)
		}
		e.clock.Set(from.Add(interval))
	}
	byReplica := 0
	for _, p := range pollers {
		if p.Stats()["tracker"].Polls > 0 {
			byReplica++
		}
	}
	assert.Greater(t, byReplica, 1, "the work is shared, not all on one replica")

	// One replica is gone: the other two poll everything, once.
	from := e.clock.Now()
	counts := runInterval(pollers[1:], from)
	require.Len(t, counts, subs, "every link polled by the survivors")
	for path, n := range counts {
		assert.Equal(t, 1, n, "%s polled once", path)
	}
}

// TestReplicasShareTheBudget_F10: three pollers, each with its own
// connection pool as three replicas have, poll one PostgreSQL schedule
// whose provider allows 600 requests an hour (one every 6 seconds, with
// a burst of 10). Over 5 minutes of the fake clock,
// with 200 links all due, the three together send no more than the one
// budget allows, 10 + 300/6 = 60, where three budgets kept apart would
// have allowed 180; and they spend it, not starve. max_requests_per_hour
// holds for the deployment (F10: the upstream's budget is not spent
// three times over).
func TestReplicasShareTheBudget_F10(t *testing.T) {
	const (
		subs    = 200
		perHour = 600
		horizon = 5 * time.Minute
	)
	dsn := cluster.Database(t)
	open := func() *postgres.Store {
		st, err := postgres.Open(t.Context(), dsn)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	e := newLiveEnvWith(t, newEnvWith(t, open()), perHour)
	e.subscribeItems(subs)
	unfurls := len(e.up.Requests())
	start := e.clock.Now()

	var pollers []*live.Poller
	for _, owner := range []string{"replica-a", "replica-b", "replica-c"} {
		st := open()
		// Rand 0: every first poll falls due at once.
		pollers = append(pollers, e.newPoller(seqRand(0), func(o *live.PollerOptions) {
			o.Store, o.Budget, o.Owner, o.MaxWorkers = st, st, owner, 4
		}))
	}
	for range 10000 {
		next := pollTogether(t, pollers)
		if next.IsZero() || next.After(start.Add(horizon)) {
			break
		}
		e.clock.Set(next)
	}
	polls := len(e.up.Requests()) - unfurls
	allowed := perHour/60 + int(horizon.Seconds())*perHour/3600
	assert.LessOrEqual(t, polls, allowed, "the three replicas together within one budget")
	assert.GreaterOrEqual(t, polls, allowed-5, "and the budget spent")
	busy := 0
	for _, p := range pollers {
		if p.Stats()["tracker"].Polls > 0 {
			busy++
		}
	}
	assert.Greater(t, busy, 1, "the polls are shared")
}

// pollTogether runs the given replicas' PollDue at once and reports the
// earliest next due time any of them saw.
func pollTogether(t *testing.T, ps []*live.Poller) time.Time {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var next time.Time
	for _, p := range ps {
		wg.Go(func() {
			n, err := p.PollDue(t.Context())
			assert.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			if !n.IsZero() && (next.IsZero() || n.Before(next)) {
				next = n
			}
		})
	}
	wg.Wait()
	return next
}
