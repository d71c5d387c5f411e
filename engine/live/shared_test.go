package live_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/notion/notiontest"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

// sharedEnv is two replicas, each with its own connection pool and
// Deliverer, draining one outbox in one database, with one fake Notion
// and one fake clock.
type sharedEnv struct {
	*testEnv
	other *live.Deliverer
	pgB   *postgres.Store
}

func newSharedEnv(t *testing.T) sharedEnv {
	t.Helper()
	dsn := cluster.Database(t)
	open := func() *postgres.Store {
		st, err := postgres.Open(t.Context(), dsn)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	pgA, pgB := open(), open()
	e := newEnvWith(t, pgA, func(o *live.Options) { o.Shared = pgA })
	opts := e.opts
	opts.Store, opts.Shared = pgB, pgB
	other, err := live.New(opts)
	require.NoError(t, err)
	return sharedEnv{testEnv: e, other: other, pgB: pgB}
}

// drainBoth runs both replicas' DeliverDue at once, then moves the clock
// to the earliest next due time, until the outbox is empty.
func (e sharedEnv) drainBoth() {
	e.t.Helper()
	for range 1000 {
		var wg sync.WaitGroup
		nexts := make([]time.Time, 2)
		for i, d := range []*live.Deliverer{e.d, e.other} {
			wg.Go(func() {
				next, err := d.DeliverDue(e.t.Context())
				assert.NoError(e.t, err)
				nexts[i] = next
			})
		}
		wg.Wait()
		var next time.Time
		for _, n := range nexts {
			if !n.IsZero() && (next.IsZero() || n.Before(next)) {
				next = n
			}
		}
		if next.IsZero() {
			return
		}
		e.clock.Set(next)
	}
	e.t.Fatal("outbox did not drain")
}

// TestSharedOutboxSendsOnceAndPacesGlobally_TH52_F10: two replicas drain
// one outbox at the same moments. Every queued PATCH reaches Notion once,
// and each connection's PATCHes, counted over both replicas, keep the
// pace (protocol 7.4): a burst of Burst, then one per interval.
func TestSharedOutboxSendsOnceAndPacesGlobally_TH52_F10(t *testing.T) {
	e := newSharedEnv(t)
	const conns, perConn = 3, 10
	for c := range conns {
		id := fmt.Sprintf("c%d", c)
		e.connect(id, "tracker")
		for i := range perConn {
			e.push(e.subscribe("tracker", id, fmt.Sprintf("https://t.example/%s/%d", id, i)), "v1")
		}
	}
	e.drainBoth()

	interval := time.Second / time.Duration(live.DefaultRate)
	for c := range conns {
		id := fmt.Sprintf("c%d", c)
		calls := e.calls(id)
		var uris []string
		for _, call := range calls {
			uris = append(uris, call.Body.URI)
		}
		slices.Sort(uris)
		assert.Len(t, uris, perConn, "%s: every item sent", id)
		assert.Len(t, slices.Compact(uris), perConn, "%s: no item sent twice", id)
		// GCRA: any n+1 consecutive sends span at least
		// (n - (Burst-1)) intervals, whichever replica sent them.
		at := offsets(calls)
		slices.Sort(at)
		for i := range at {
			for j := i + 1; j < len(at); j++ {
				need := time.Duration(j-i-(live.DefaultBurst-1)) * interval
				assert.GreaterOrEqual(t, at[j]-at[i], need, "%s: sends %d and %d at %v and %v", id, i, j, at[i], at[j])
			}
		}
	}
}

// TestLeaseOfKilledReplicaIsTakenOver_F1: a replica claims an item and
// dies before settling it (kill -9). The other replica sends it once the
// lease has run out, not before, and only once.
func TestLeaseOfKilledReplicaIsTakenOver_F1(t *testing.T) {
	e := newSharedEnv(t)
	e.connect("c1", "tracker")
	k := e.subscribe("tracker", "c1", "https://t.example/1")
	e.push(k, "v1")

	claims, err := e.pgB.ClaimOutbox(t.Context(), e.clock.Now(), live.DefaultLease, 10)
	require.NoError(t, err)
	require.Len(t, claims, 1, "the doomed replica holds the item")

	next := e.deliver()
	assert.Empty(t, e.calls("c1"), "not sent while the lease runs")
	assert.Equal(t, t0.Add(live.DefaultLease), next, "due again when the lease ends")
	e.clock.Set(next)
	e.deliver()
	calls := e.calls("c1")
	require.Len(t, calls, 1)
	assert.Equal(t, t0.Add(live.DefaultLease), calls[0].Time, "taken over within one lease period")
	_, err = e.st.GetOutboxItem(t.Context(), k)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestRetryAfterHoldsEveryReplica_F10: Notion answers one replica 429
// with Retry-After; the other replica sends nothing of that connection
// before the hold ends.
func TestRetryAfterHoldsEveryReplica_F10(t *testing.T) {
	e := newSharedEnv(t)
	e.connect("c1", "tracker")
	first := e.subscribe("tracker", "c1", "https://t.example/1")
	second := e.subscribe("tracker", "c1", "https://t.example/2")
	e.notion.ScriptPatch(notiontest.Response{Status: 429, RetryAfter: "5"})
	e.push(first, "v1")
	e.deliver() // replica A meets the 429
	require.Len(t, e.calls("c1"), 1)

	e.push(second, "v1")
	next, err := e.other.DeliverDue(t.Context())
	require.NoError(t, err)
	assert.Len(t, e.calls("c1"), 1, "replica B waits for the hold A was told about")
	assert.Equal(t, t0.Add(5*time.Second), next)
	e.drainBoth()
	for _, c := range e.calls("c1")[1:] {
		assert.False(t, c.Time.Before(t0.Add(5*time.Second)), "sent at %v, inside the hold", c.Time)
	}
	assert.Len(t, e.calls("c1"), 3)
}
