package live_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/store/cached"
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
