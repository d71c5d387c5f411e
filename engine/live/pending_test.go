package live_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/store/cached"
	"github.com/unfurld/unfurld/engine/store/memory"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// useStore moves the environment onto st: a new Deliverer and a new
// Refresher over it, as a restarted process builds them. The old
// Refresher's queue is abandoned, as a crash abandons it.
func (e *liveEnv) useStore(st fullStore, edit ...func(*live.RefresherOptions)) {
	e.t.Helper()
	e.setStore(st)
	opts := live.RefresherOptions{
		Store: st, Registry: e.reg, Pusher: e.d, Clock: e.clock,
		Logger:    slog.New(slog.NewTextHandler(e.t.Output(), nil)),
		OnRefresh: func(k store.SubscriptionKey, out live.Outcome) { e.refreshed <- refreshed{k, out} },
	}
	for _, f := range edit {
		f(&opts)
	}
	r, err := live.NewRefresher(opts)
	require.NoError(e.t, err)
	e.r = r
}

// startRefresher runs the Refresher until the returned stop is called;
// stop waits for Run to write its last records.
func (e *liveEnv) startRefresher() (stop func()) {
	ctx, cancel := context.WithCancel(e.t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.r.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// fetches counts the upstream requests for item n.
func (e *liveEnv) fetches(n int) int { return len(e.up.RequestsTo(itemPath(n))) }

// TestWebhookPendingSurvivesRestart_F1: a webhook answered 202 has marked
// its subscription pending in the store before the answer; the process
// dies before the refresh ran (its in-memory queue is lost), and after a
// restart on the same bbolt file the Refresher finds the mark, refreshes
// exactly once, and the change reaches Notion (issue 4 item 4: no
// acknowledged change lost). The mark is then cleared, so no later scan
// refreshes it again.
func TestWebhookPendingSurvivesRestart_F1(t *testing.T) {
	e := newLiveEnv(t, 3600)
	path := filepath.Join(t.TempDir(), "unfurld.db")
	st, err := bolt.Open(path, bolt.Options{})
	require.NoError(t, err)
	e.useStore(st)
	e.connect("c1", "tracker")
	e.up.Set(itemPath(1), upstreamtest.Response{Body: item("One", "open"), ETag: `"v1"`})
	k := e.unfurled("c1", 1)
	_, err = st.PutSubscriptions(t.Context(), []store.Subscription{{SubscriptionKey: k, ETag: `"v1"`,
		Refresh: store.RefreshRecord{At: t0.Add(-time.Hour), Trigger: live.TriggerPoll, Outcome: live.OutcomeUnchanged}}})
	require.NoError(t, err)

	srv := server.New(server.Config{Settings: e.settings, Store: cached.New(st, cached.Options{}), Registry: e.reg, Live: e.r,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Now: e.clock.Now})
	e.up.Set(itemPath(1), upstreamtest.Response{Body: item("One", "closed"), ETag: `"v2"`})
	event := `{"item":{"url":"` + trackerURI(1) + `"}}`
	req := httptest.NewRequest(http.MethodPost, "/providers/tracker/webhook", strings.NewReader(event))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Tracker-Signature", sign(webhookSecret, event))
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"links":1,"refreshes":1}`, rec.Body.String())

	marked := e.sub(k)
	assert.Equal(t, store.RefreshRecord{At: t0, Trigger: live.TriggerWebhook, Outcome: live.OutcomePending}, normRecord(marked.Refresh))
	assert.Equal(t, `"v1"`, marked.ETag, "a mark keeps the validators of the last fetch")

	// The crash: the Refresher never ran. Only the file is left.
	require.NoError(t, st.Close())
	st, err = bolt.Open(path, bolt.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	e.useStore(st)
	e.clock.Advance(time.Second)

	stop := e.startRefresher()
	select {
	case r := <-e.refreshed:
		assert.Equal(t, k, r.key)
		assert.Equal(t, live.TriggerWebhook, r.out.Record.Trigger)
		assert.Equal(t, live.OutcomeChanged, r.out.Record.Outcome)
	case <-time.After(10 * time.Second): // a guard against a hang, not a wait
		t.Fatal("the pending refresh did not run after the restart")
	}
	stop()
	assert.Empty(t, e.refreshed, "refreshed once")
	assert.Equal(t, live.OutcomeChanged, e.sub(k).Refresh.Outcome, "the mark is cleared")
	assert.Equal(t, 2, e.fetches(1), "the unfurl and one refresh")

	e.drain()
	calls := e.calls("c1")
	require.Len(t, calls, 1)
	assert.Contains(t, string(calls[0].Raw), `"closed"`)
}

// TestFullQueueLeavesPending: when the webhook queue is full, the
// subscriptions that did not fit are not dropped (as they were, "left to
// polling", which never comes with polling off): they stay marked pending,
// and Run's scans queue them as room frees, each refreshed once.
func TestFullQueueLeavesPending(t *testing.T) {
	e := newLiveEnv(t, 3600, func(o *live.RefresherOptions) {
		o.WebhookQueue, o.WebhookWorkers, o.PendingInterval = 1, 1, time.Minute
	})
	e.connect("c1", "tracker")
	var keys []store.SubscriptionKey
	var uris []string
	for n := 1; n <= 3; n++ {
		e.up.Set(itemPath(n), upstreamtest.Response{Body: item("T", "open")})
		keys = append(keys, e.unfurled("c1", n))
		uris = append(uris, trackerURI(n))
		e.up.Set(itemPath(n), upstreamtest.Response{Body: item("T", "closed")})
	}

	n, err := e.r.RefreshURIs(t.Context(), "tracker", uris)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "all three will be refreshed")
	for _, k := range keys {
		assert.Equal(t, live.OutcomePending, e.sub(k).Refresh.Outcome, k.URI)
	}

	stop := e.startRefresher()
	got := map[store.SubscriptionKey]int{}
	guard := time.After(10 * time.Second) // a guard against a hang, not a wait
	for len(got) < len(keys) {
		select {
		case r := <-e.refreshed:
			got[r.key]++
			assert.Equal(t, live.OutcomeChanged, r.out.Record.Outcome)
		case <-e.clock.Waiting():
			// Run waits for its next tick: move to the next scan.
			e.clock.Advance(time.Minute)
		case <-guard:
			t.Fatalf("refreshed %d of %d", len(got), len(keys))
		}
	}
	stop()
	for len(e.refreshed) > 0 {
		r := <-e.refreshed
		got[r.key]++
	}
	for _, k := range keys {
		assert.Equal(t, 1, got[k], "refreshed once: %s", k.URI)
		assert.Equal(t, live.OutcomeChanged, e.sub(k).Refresh.Outcome, "the mark is cleared: %s", k.URI)
	}
	e.drain()
	assert.Len(t, e.calls("c1"), 3)
}

// TestWebhookTransientFailureStaysPending: a webhook's refresh that meets
// a passing upstream failure (503) keeps its pending mark, so the next
// scan fetches again and the acknowledged change reaches Notion even with
// polling off.
func TestWebhookTransientFailureStaysPending(t *testing.T) {
	e := newLiveEnv(t, 3600, func(o *live.RefresherOptions) {
		o.PendingInterval = time.Minute
	})
	e.connect("c1", "tracker")
	e.up.Set(itemPath(1), upstreamtest.Response{Body: item("One", "open")})
	k := e.unfurled("c1", 1)
	e.up.Set(itemPath(1), upstreamtest.Response{Body: item("One", "closed")})
	e.up.Script(itemPath(1), upstreamtest.Response{Status: http.StatusServiceUnavailable, Body: `{"message":"down"}`})

	n, err := e.r.RefreshURIs(t.Context(), "tracker", []string{trackerURI(1)})
	require.NoError(t, err)
	require.Equal(t, 1, n)

	stop := e.startRefresher()
	var outcomes []string
	guard := time.After(10 * time.Second) // a guard against a hang, not a wait
	for len(outcomes) < 2 {
		select {
		case r := <-e.refreshed:
			outcomes = append(outcomes, r.out.Record.Outcome)
		case <-e.clock.Waiting():
			e.clock.Advance(time.Minute)
		case <-guard:
			t.Fatalf("refresh outcomes so far: %v", outcomes)
		}
	}
	stop()
	assert.Equal(t, []string{live.OutcomePending, live.OutcomeChanged}, outcomes)
	assert.Equal(t, live.OutcomeChanged, e.sub(k).Refresh.Outcome, "the mark is cleared once fetched")
	e.drain()
	calls := e.calls("c1")
	require.Len(t, calls, 1)
	assert.Contains(t, string(calls[0].Raw), `"closed"`)
}

// recordGate is a store whose hooks let a test stop the Refresher between
// the steps of writing its refresh records: hold makes the next write of
// records (not marks) wait for release, and afterClaim runs once, inside
// the next ClaimPending that returns a mark of key, after the store has
// answered.
type recordGate struct {
	fullStore
	mu         sync.Mutex
	hold       bool
	held       chan struct{}
	release    chan struct{}
	key        store.SubscriptionKey
	afterClaim func()
}

func (g *recordGate) PutSubscriptions(ctx context.Context, subs []store.Subscription) (int, error) {
	g.mu.Lock()
	hold := g.hold && len(subs) > 0 && !subs[0].Pending()
	if hold {
		g.hold = false
	}
	g.mu.Unlock()
	if hold {
		close(g.held)
		<-g.release
	}
	return g.fullStore.PutSubscriptions(ctx, subs)
}

func (g *recordGate) ClaimPending(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.Subscription, error) {
	marked, err := g.fullStore.ClaimPending(ctx, owner, now, lease, limit)
	g.mu.Lock()
	var hook func()
	if g.afterClaim != nil && slices.ContainsFunc(marked, func(s store.Subscription) bool { return s.SubscriptionKey == g.key }) {
		hook, g.afterClaim = g.afterClaim, nil
	}
	g.mu.Unlock()
	if hook != nil {
		hook()
	}
	return marked, err
}

// TestRecordBeingWrittenSettlesMark_F1: a webhook's refresh has run and
// its record is on its way to the store when the mark's lease runs out
// and a claim finds the mark still there. The claim must not refresh the
// link again: the record settles the mark. Two moments are covered:
// the claim reads the store while the record is being written, and the
// record is written between the claim's read and its check of the
// records waiting in memory. (Both happened under load in
// TestFullQueueLeavesPending: one extra fetch, and the record of the
// change overwritten by an "unchanged" one.) A later webhook's link,
// claimed with it, is still refreshed, once.
func TestRecordBeingWrittenSettlesMark_F1(t *testing.T) {
	cases := []struct {
		name string
		// race places the record's write around the claim that finds
		// the expired mark; it returns when the write is under way or
		// arranged.
		race func(t *testing.T, e *liveEnv, g *recordGate, flushed chan<- error)
	}{
		{"claim while the record is written", func(t *testing.T, e *liveEnv, g *recordGate, flushed chan<- error) {
			g.mu.Lock()
			g.hold = true
			g.mu.Unlock()
			go func() { flushed <- e.r.Flush(context.WithoutCancel(t.Context())) }()
			<-g.held
		}},
		{"record written between the claim's read and its check", func(t *testing.T, e *liveEnv, g *recordGate, flushed chan<- error) {
			g.mu.Lock()
			g.afterClaim = func() { flushed <- e.r.Flush(context.WithoutCancel(t.Context())) }
			g.mu.Unlock()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &recordGate{fullStore: memory.New(), held: make(chan struct{}), release: make(chan struct{})}
			e := newLiveEnvWith(t, newEnvWith(t, g), 3600, func(o *live.RefresherOptions) {
				// Only the test writes records and claims (through a
				// webhook's wake-up): no timer does it behind its back.
				o.WebhookWorkers, o.RecordInterval, o.PendingInterval = 1, time.Hour, time.Hour
			})
			e.connect("c1", "tracker")
			var keys []store.SubscriptionKey
			for n := 1; n <= 2; n++ {
				e.up.Set(itemPath(n), upstreamtest.Response{Body: item("T", "open")})
				keys = append(keys, e.unfurled("c1", n))
				e.up.Set(itemPath(n), upstreamtest.Response{Body: item("T", "closed")})
			}
			g.key = keys[0]
			next := func() refreshed {
				t.Helper()
				select {
				case r := <-e.refreshed:
					return r
				case <-time.After(10 * time.Second): // a guard against a hang, not a wait
					t.Fatal("no refresh")
					return refreshed{}
				}
			}

			_, err := e.r.RefreshURIs(t.Context(), "tracker", []string{trackerURI(1)})
			require.NoError(t, err)
			stop := e.startRefresher()
			defer stop()
			first := next()
			require.Equal(t, keys[0], first.key)
			require.Equal(t, live.OutcomeChanged, first.out.Record.Outcome)

			// The mark's lease (DefaultPendingLease) runs out while its
			// record waits; the next webhook wakes the claim, which
			// finds item 1's mark before item 2's, and the one worker
			// takes their jobs in that order.
			flushed := make(chan error, 1)
			e.clock.Advance(time.Minute)
			tc.race(t, e, g, flushed)
			_, err = e.r.RefreshURIs(t.Context(), "tracker", []string{trackerURI(2)})
			require.NoError(t, err)
			second := next()
			close(g.release)
			require.NoError(t, <-flushed)
			stop()

			assert.Equal(t, keys[1], second.key, "item 1 is not refreshed again")
			assert.Equal(t, live.OutcomeChanged, second.out.Record.Outcome)
			assert.Empty(t, e.refreshed)
			assert.Equal(t, 2, e.fetches(1), "item 1: the unfurl and one refresh")
			assert.Equal(t, live.OutcomeChanged, e.sub(keys[0]).Refresh.Outcome, "item 1 keeps the record of its change")
			assert.Equal(t, live.OutcomeChanged, e.sub(keys[1]).Refresh.Outcome)
		})
	}
}
