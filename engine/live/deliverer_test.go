package live_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/notion/notiontest"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/store/memory"
)

const uriA = "https://github.com/golang/go/issues/1"

// TestChangeYieldsOnePatch: a change yields exactly one PATCH, with the
// full attribute set and the connection's Notion token (protocol 7.1,
// 7.2), and the subscription then records what Notion has; the same state
// again yields none (issue 4 item 3).
func TestChangeYieldsOnePatch(t *testing.T) {
	e := newEnv(t)
	e.connect("c1", "github")
	k := e.subscribe("github", "c1", uriA)

	queued, err := e.d.Push(t.Context(), k, body(uriA, "Closed"), "hash-unfurled")
	require.NoError(t, err)
	assert.False(t, queued, "Notion has this state already")

	e.push(k, "Closed")
	assert.True(t, e.deliver().IsZero(), "nothing left")
	calls := e.calls("")
	require.Len(t, calls, 1)
	assert.Equal(t, http.MethodPatch, calls[0].Method)
	assert.Equal(t, e.tokens["c1"], calls[0].Token)
	assert.Equal(t, notion.DefaultObjectVersion, calls[0].Header.Get("Notion-Version"))
	assert.JSONEq(t, string(body(uriA, "Closed")), string(calls[0].Raw))
	assert.Equal(t, http.StatusOK, calls[0].Status)

	sub, err := e.st.GetSubscription(t.Context(), k)
	require.NoError(t, err)
	assert.Equal(t, "hash-Closed", sub.AttrHash)
	assert.Equal(t, t0, sub.UpdatedAt.UTC())
	_, err = e.st.GetOutboxItem(t.Context(), k)
	require.ErrorIs(t, err, store.ErrNotFound)

	queued, err = e.d.Push(t.Context(), k, body(uriA, "Closed"), "hash-Closed")
	require.NoError(t, err)
	assert.False(t, queued, "no change, no PATCH")
	e.deliver()
	assert.Len(t, e.calls(""), 1)

	stats := e.d.Stats()["github"]
	assert.Equal(t, live.ResultDelivered, stats.LastResult)
	assert.Equal(t, 1, stats.Delivered)
	assert.Equal(t, t0, stats.LastDeliveredAt)
}

// TestErrorOperationAndRecovery: an error operation is queued and sent like
// any state (protocol 7.2), and the recovery after it is a normal update
// without an error operation, which clears it.
func TestErrorOperationAndRecovery(t *testing.T) {
	e := newEnv(t)
	e.connect("c1", "github")
	k := e.subscribe("github", "c1", uriA)
	gone := fmt.Appendf(nil, `{"uri":%q,"operations":[{"path":["error"],"set":{"status":404,"message":"Content not found"}}]}`, uriA)
	queued, err := e.d.Push(t.Context(), k, gone, "hash-gone")
	require.NoError(t, err)
	require.True(t, queued)
	e.drain()
	e.push(k, "Back")
	e.drain()

	calls := e.calls("")
	require.Len(t, calls, 2)
	assert.JSONEq(t, string(gone), string(calls[0].Raw))
	assert.JSONEq(t, string(body(uriA, "Back")), string(calls[1].Raw))
}

// TestPushWithoutSubscription: nothing is queued for a URI that was never
// unfurled or was deleted (TH-52: no PATCH after a deletion).
func TestPushWithoutSubscription(t *testing.T) {
	e := newEnv(t)
	e.connect("c1", "github")
	k := store.SubscriptionKey{Provider: "github", ConnectionID: "c1", URI: uriA}
	queued, err := e.d.Push(t.Context(), k, body(uriA, "x"), "hash-x")
	require.NoError(t, err)
	assert.False(t, queued)
	depth, err := e.st.OutboxDepth(t.Context())
	require.NoError(t, err)
	assert.Empty(t, depth)
}

// TestCoalescing_TH52: three changes of one URI before delivery cost one
// PATCH carrying the latest state.
func TestCoalescing_TH52(t *testing.T) {
	e := newEnv(t)
	e.connect("c1", "github")
	k := e.subscribe("github", "c1", uriA)
	for _, title := range []string{"one", "two", "three"} {
		e.push(k, title)
	}
	depth, err := e.st.OutboxDepth(t.Context())
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"github": 1}, depth, "one item per URI")

	e.drain()
	calls := e.calls("")
	require.Len(t, calls, 1)
	assert.JSONEq(t, string(body(uriA, "three")), string(calls[0].Raw))

	// A state pending behind an older one in Notion is replaced even by
	// the state Notion has: the pending one must not win.
	e.push(k, "four")
	queued, err := e.d.Push(t.Context(), k, body(uriA, "three"), "hash-three")
	require.NoError(t, err)
	require.True(t, queued)
	e.drain()
	calls = e.calls("")
	require.Len(t, calls, 2)
	assert.JSONEq(t, string(body(uriA, "three")), string(calls[1].Raw))
}

// TestRetryAfter_F8: 429 and 529 with Retry-After: 7 hold the next
// attempt until 7 s later on the injected clock, with the full set again
// (protocol 7.4, security.md F8, F9).
func TestRetryAfter_F8(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, notion.StatusServiceOverload} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			e := newEnv(t)
			e.connect("c1", "github")
			k := e.subscribe("github", "c1", uriA)
			e.notion.ScriptPatch(notiontest.Response{Status: status, RetryAfter: "7"})
			e.push(k, "Closed")

			next := e.deliver()
			require.Len(t, e.calls(""), 1)
			assert.Equal(t, t0.Add(7*time.Second), next)
			it, err := e.st.GetOutboxItem(t.Context(), k)
			require.NoError(t, err)
			assert.Equal(t, 1, it.Attempts)
			assert.Contains(t, it.LastError, strconv.Itoa(status))

			e.clock.Set(t0.Add(7*time.Second - time.Nanosecond))
			e.deliver()
			require.Len(t, e.calls(""), 1, "not before Retry-After")

			e.clock.Set(t0.Add(7 * time.Second))
			assert.True(t, e.deliver().IsZero())
			calls := e.calls("")
			require.Len(t, calls, 2)
			assert.Equal(t, []time.Duration{0, 7 * time.Second}, offsets(calls))
			assert.JSONEq(t, string(body(uriA, "Closed")), string(calls[1].Raw))
			assert.Equal(t, 1, e.d.Stats()["github"].Retries)
		})
	}
}

// TestRetryAfterHoldsConnection_F8: while a connection waits out a
// Retry-After, none of its items goes, another connection's do, and a
// new state of the waiting URI does not jump the wait. F8's sequence:
// 429 (2 s) twice, then 200: three PATCHes 2 s apart, each the full set.
func TestRetryAfterHoldsConnection_F8(t *testing.T) {
	e := newEnv(t, func(o *live.Options) { o.Workers = 1 })
	e.connect("c1", "github")
	e.connect("c2", "github")
	a := e.subscribe("github", "c1", uriA)
	b := e.subscribe("github", "c1", uriA+"0")
	e.notion.ScriptPatch(notiontest.Response{Status: http.StatusTooManyRequests, RetryAfter: "2"})
	e.push(a, "one")
	e.deliver()
	e.push(b, "x")
	e.push(a, "two") // replaces the waiting state, keeps its wait
	e.push(e.subscribe("github", "c2", uriA), "c2")
	e.deliver()
	require.Len(t, e.calls("c1"), 1, "c1 holds")
	assert.Equal(t, []time.Duration{0}, offsets(e.calls("c2")), "c2 is not held")
	require.Equal(t, http.StatusOK, e.calls("c2")[0].Status)

	e.notion.ScriptPatch(notiontest.Response{Status: http.StatusTooManyRequests, RetryAfter: "2"})

	e.drain()
	calls := e.calls("c1")
	require.Len(t, calls, 4)
	assert.Equal(t, []time.Duration{0, 2 * time.Second, 4 * time.Second, 4*time.Second + time.Second/3}, offsets(calls),
		"after each hold one request, then the pace")
	assert.JSONEq(t, string(body(uriA, "one")), string(calls[0].Raw))
	assert.JSONEq(t, string(body(uriA, "two")), string(calls[1].Raw))
	assert.JSONEq(t, string(body(uriA, "two")), string(calls[2].Raw))
	assert.JSONEq(t, string(body(uriA+"0", "x")), string(calls[3].Raw))
}

// TestBackoff5xx_F9: 500 three times then 200: the waits double (1 s,
// 2 s, 4 s with jitter at its middle). Endless 500: the state is dropped
// after MaxAttempts, with an error recorded.
func TestBackoff5xx_F9(t *testing.T) {
	t.Run("Recovers", func(t *testing.T) {
		e := newEnv(t)
		e.connect("c1", "github")
		k := e.subscribe("github", "c1", uriA)
		fail := notiontest.Response{Status: http.StatusInternalServerError}
		e.notion.ScriptPatch(fail, fail, fail)
		e.push(k, "Closed")
		e.drain()
		calls := e.calls("")
		assert.Equal(t, []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}, offsets(calls))
		for _, c := range calls {
			assert.JSONEq(t, string(body(uriA, "Closed")), string(c.Raw))
		}
		sub, err := e.st.GetSubscription(t.Context(), k)
		require.NoError(t, err)
		assert.Equal(t, "hash-Closed", sub.AttrHash)
	})
	t.Run("GivesUp", func(t *testing.T) {
		e := newEnv(t, func(o *live.Options) { o.MaxAttempts = 5 })
		e.connect("c1", "github")
		k := e.subscribe("github", "c1", uriA)
		for range 10 {
			e.notion.ScriptPatch(notiontest.Response{Status: http.StatusBadGateway})
		}
		e.push(k, "Closed")
		e.drain()
		assert.Equal(t, []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second}, offsets(e.calls("")))
		_, err := e.st.GetOutboxItem(t.Context(), k)
		require.ErrorIs(t, err, store.ErrNotFound, "dropped")
		stats := e.d.Stats()["github"]
		assert.Equal(t, 1, stats.Failures)
		assert.Equal(t, 4, stats.Retries)
		assert.Equal(t, live.ResultFailed, stats.LastResult)
		assert.Contains(t, stats.LastFailure, "gave up after 5 attempts")
		assert.Contains(t, stats.LastFailure, "502")
		sub, err := e.st.GetSubscription(t.Context(), k)
		require.NoError(t, err)
		assert.Equal(t, "hash-unfurled", sub.AttrHash, "Notion still has the old state")
	})
	t.Run("MaxAge", func(t *testing.T) {
		e := newEnv(t, func(o *live.Options) { o.MaxAge = 5 * time.Second })
		e.connect("c1", "github")
		k := e.subscribe("github", "c1", uriA)
		for range 10 {
			e.notion.ScriptPatch(notiontest.Response{Status: http.StatusServiceUnavailable})
		}
		e.push(k, "Closed")
		e.drain()
		// The fourth attempt would come 7 s after the enqueue.
		assert.Equal(t, []time.Duration{0, time.Second, 3 * time.Second}, offsets(e.calls("")))
		assert.Contains(t, e.d.Stats()["github"].LastFailure, "gave up after 3 attempts")
	})
}

// TestNetworkErrorBacksOff: a Notion that cannot be reached is retried
// with backoff like a 5xx (TH-52).
func TestNetworkErrorBacksOff(t *testing.T) {
	stub := &stubNotion{results: []func(context.Context) error{
		func(context.Context) error {
			return fmt.Errorf("notion update object: %w: connection refused", notion.ErrUnavailable)
		},
	}}
	e := newEnv(t, func(o *live.Options) { o.Notion = stub })
	e.connect("c1", "github")
	k := e.subscribe("github", "c1", uriA)
	e.push(k, "Closed")
	assert.Equal(t, t0.Add(time.Second), e.deliver())
	assert.Equal(t, 1, stub.count())
	e.clock.Set(t0.Add(time.Second))
	assert.True(t, e.deliver().IsZero())
	assert.Equal(t, 2, stub.count())
}

// TestShutdownDoesNotCountAttempt: a PATCH cut off by the end of the
// context leaves the item as it was, to be sent after a restart (F15).
func TestShutdownDoesNotCountAttempt(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	stub := &stubNotion{results: []func(context.Context) error{
		func(ctx context.Context) error { cancel(); return ctx.Err() },
	}}
	e := newEnv(t, func(o *live.Options) { o.Notion = stub })
	e.connect("c1", "github")
	k := e.subscribe("github", "c1", uriA)
	e.push(k, "Closed")
	_, err := e.d.DeliverDue(ctx)
	require.ErrorIs(t, err, context.Canceled)
	it, err := e.st.GetOutboxItem(t.Context(), k)
	require.NoError(t, err)
	assert.Zero(t, it.Attempts)
	assert.Equal(t, t0, it.NextAt.UTC())
}

// TestAuthStops_F9: a 401 or 403 costs exactly one attempt: the connection
// is flagged for a reconnect, all its items go, and later changes of it
// are not sent. Other connections carry on (TH-52).
func TestAuthStops_F9(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *testEnv)
	}{
		{"401", func(e *testEnv) { e.notion.RevokeToken(e.tokens["c1"]) }},
		{"403", func(e *testEnv) { e.notion.ScriptPatch(notiontest.Response{Status: http.StatusForbidden}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.connect("c1", "github")
			e.connect("c2", "github")
			a := e.subscribe("github", "c1", uriA)
			b := e.subscribe("github", "c1", uriA+"0")
			tc.setup(e)
			e.push(a, "one")
			e.push(b, "one")
			e.drain()
			require.Len(t, e.calls("c1"), 1, "exactly one attempt")
			conn, err := e.st.GetConnection(t.Context(), "c1")
			require.NoError(t, err)
			assert.Equal(t, store.StatusReconnect, conn.Status)
			assert.Equal(t, t0, conn.UpdatedAt.UTC())
			assert.Equal(t, "notion push", conn.Reconnect.Call)
			assert.Equal(t, tc.name, strconv.Itoa(conn.Reconnect.Status))
			assert.Contains(t, []string{uriA, uriA + "0"}, conn.Reconnect.URI)
			depth, err := e.st.OutboxDepth(t.Context())
			require.NoError(t, err)
			assert.Empty(t, depth, "the connection's items are dropped")
			assert.Contains(t, e.d.Stats()["github"].LastFailure, tc.name)

			e.push(a, "two")
			e.push(e.subscribe("github", "c2", uriA), "c2")
			e.drain()
			assert.Len(t, e.calls("c1"), 1, "no PATCH for a flagged connection")
			assert.Len(t, e.calls("c2"), 1)
		})
	}
}

// TestBadRequestNotRetried_F9: a 400 is not retried; the state is dropped
// and the failure recorded.
func TestBadRequestNotRetried_F9(t *testing.T) {
	e := newEnv(t)
	e.connect("c1", "github")
	k := e.subscribe("github", "c1", uriA)
	e.notion.ScriptPatch(notiontest.Response{Status: http.StatusBadRequest})
	e.push(k, "Closed")
	e.drain()
	e.clock.Advance(time.Hour)
	e.drain()
	assert.Len(t, e.calls(""), 1)
	_, err := e.st.GetOutboxItem(t.Context(), k)
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.Equal(t, 1, e.d.Stats()["github"].Failures)
	conn, err := e.st.GetConnection(t.Context(), "c1")
	require.NoError(t, err)
	assert.Equal(t, store.StatusActive, conn.Status, "a bad body is no reason to flag")
	// The item that showed the error is gone; the connection keeps it.
	require.Len(t, conn.Failures, 1)
	assert.Equal(t, store.ConnectionEvent{At: conn.Failures[0].At, Call: "notion push", URI: uriA, Status: http.StatusBadRequest, Detail: conn.Failures[0].Detail}, conn.Failures[0])
	assert.NotContains(t, conn.Failures[0].Detail, e.tokens["c1"], "no Notion token in the record")
}

// TestNotFoundDropsSubscription: Notion's 404 means the preview is gone:
// the subscription is dropped (protocol 7.3), so nothing more is pushed.
func TestNotFoundDropsSubscription(t *testing.T) {
	e := newEnv(t)
	e.connect("c1", "github")
	k := e.subscribe("github", "c1", uriA)
	e.notion.ScriptPatch(notiontest.Response{Status: http.StatusNotFound})
	e.push(k, "Closed")
	e.drain()
	_, err := e.st.GetSubscription(t.Context(), k)
	require.ErrorIs(t, err, store.ErrNotFound)
	queued, err := e.d.Push(t.Context(), k, body(uriA, "again"), "hash-again")
	require.NoError(t, err)
	assert.False(t, queued)
	assert.Len(t, e.calls(""), 1)
}

// TestNoPatchAfterDeletion_TH52: an update queued before its URI was
// deleted (DELETE on the unfurl URL) or its connection removed is never
// sent, even with its item still queued.
func TestNoPatchAfterDeletion_TH52(t *testing.T) {
	e := newEnv(t)
	e.connect("c1", "github")
	e.connect("c2", "github")
	deletedURI := e.subscribe("github", "c1", uriA)
	kept := e.subscribe("github", "c1", uriA+"0")
	deletedConn := e.subscribe("github", "c2", uriA+"0")
	e.push(deletedURI, "x")
	e.push(kept, "x")
	e.push(deletedConn, "x")
	_, err := e.st.DeleteSubscriptionsByURI(t.Context(), "github", uriA)
	require.NoError(t, err)
	require.NoError(t, e.st.DeleteConnection(t.Context(), "c2"))

	e.drain()
	calls := e.calls("")
	require.Len(t, calls, 1)
	assert.JSONEq(t, string(body(uriA+"0", "x")), string(calls[0].Raw))
	assert.Equal(t, e.tokens["c1"], calls[0].Token)
	depth, err := e.st.OutboxDepth(t.Context())
	require.NoError(t, err)
	assert.Empty(t, depth, "the orphaned items are gone too")
}

// TestPacing_F10: ten updates for one connection leave at the configured
// pace: a burst of three, then one every 1/3 s; another connection's
// update, queued behind them, is not held up by that backlog.
func TestPacing_F10(t *testing.T) {
	e := newEnv(t)
	e.connect("c1", "github")
	e.connect("c2", "github")
	for i := range 10 {
		e.push(e.subscribe("github", "c1", uriA+strconv.Itoa(i)), "x")
	}
	e.push(e.subscribe("github", "c2", uriA), "x")
	e.drain()

	step := time.Second / live.DefaultRate // 333333333 ns, truncated as New does
	want := []time.Duration{0, 0, 0}
	for i := 1; i <= 7; i++ {
		want = append(want, time.Duration(i)*step)
	}
	c1 := e.calls("c1")
	assert.Equal(t, want, offsets(c1))
	assert.Equal(t, []time.Duration{0}, offsets(e.calls("c2")))
	depth, err := e.st.OutboxDepth(t.Context())
	require.NoError(t, err)
	assert.Empty(t, depth)
}

// TestMalformedItemDropped: a queued body whose uri is not the
// subscription's is never sent: a connection's token only updates what
// that connection unfurled (protocol 7.3).
func TestMalformedItemDropped(t *testing.T) {
	e := newEnv(t)
	e.connect("c1", "github")
	k := e.subscribe("github", "c1", uriA)
	_, err := e.st.Enqueue(t.Context(), store.OutboxItem{
		SubscriptionKey: k, Body: body("https://github.com/other", "x"), AttrHash: "h", EnqueuedAt: t0, NextAt: t0,
	})
	require.NoError(t, err)
	e.drain()
	assert.Empty(t, e.calls(""))
	assert.Contains(t, e.d.Stats()["github"].LastFailure, "uri differs")
}

// TestBrokenSealFlagsConnection: a Notion token that cannot be opened (a
// retired key, a tampered record) is treated like a 401 (TH-42).
func TestBrokenSealFlagsConnection(t *testing.T) {
	e := newEnv(t)
	e.connect("c1", "github")
	require.NoError(t, e.st.UpdateConnection(t.Context(), "c1", func(c store.Connection) (store.Connection, error) {
		c.AccountKey = "moved" // the seal is bound to the identity
		return c, nil
	}))
	k := e.subscribe("github", "c1", uriA)
	e.push(k, "x")
	e.drain()
	assert.Empty(t, e.calls(""))
	conn, err := e.st.GetConnection(t.Context(), "c1")
	require.NoError(t, err)
	assert.Equal(t, store.StatusReconnect, conn.Status)
}

// TestRestart_F1: an update acknowledged by Push survives closing the
// bbolt store; after reopening, a new Deliverer sends it exactly once.
func TestRestart_F1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "unfurld.db")
	st, err := bolt.Open(path, bolt.Options{})
	require.NoError(t, err)
	e := newEnvWith(t, st)
	e.connect("c1", "github")
	k := e.subscribe("github", "c1", uriA)
	e.push(k, "one")
	e.push(k, "two")
	require.NoError(t, st.Close())

	st, err = bolt.Open(path, bolt.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	e.setStore(st)
	e.drain()
	e.clock.Advance(time.Hour)
	e.drain()
	calls := e.calls("")
	require.Len(t, calls, 1)
	assert.JSONEq(t, string(body(uriA, "two")), string(calls[0].Raw))
	sub, err := st.GetSubscription(t.Context(), k)
	require.NoError(t, err)
	assert.Equal(t, "hash-two", sub.AttrHash)
}

// TestRun: Run delivers on Kick (Push kicks), sleeps until the next due
// time on the clock, and returns when its context ends.
func TestRun(t *testing.T) {
	e := newEnv(t)
	e.connect("c1", "github")
	k := e.subscribe("github", "c1", uriA)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.d.Run(ctx)
	}()
	<-e.clock.Waiting() // idle on an empty outbox

	e.push(k, "one")
	<-e.clock.Waiting()
	require.Len(t, e.calls(""), 1)

	e.notion.ScriptPatch(notiontest.Response{Status: http.StatusTooManyRequests, RetryAfter: "7"})
	e.push(k, "two")
	<-e.clock.Waiting()
	require.Len(t, e.calls(""), 2)
	e.clock.Advance(7 * time.Second)
	<-e.clock.Waiting()
	calls := e.calls("")
	require.Len(t, calls, 3)
	assert.Equal(t, []time.Duration{0, 0, 7 * time.Second}, offsets(calls))

	cancel()
	<-done
}

// TestNewValidates: the required dependencies and sane bounds.
func TestNewValidates(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		edit func(o *live.Options)
	}{
		{"NoStore", func(o *live.Options) { o.Store = nil }},
		{"NoNotion", func(o *live.Options) { o.Notion = nil }},
		{"NoKeyring", func(o *live.Options) { o.Keyring = nil }},
		{"NegativeRate", func(o *live.Options) { o.Rate = -1 }},
		{"Jitter", func(o *live.Options) { o.Jitter = 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := e.opts
			tc.edit(&opts)
			_, err := live.New(opts)
			require.Error(t, err)
		})
	}
	_, err := live.New(live.Options{Store: memory.New(), Notion: e.client, Keyring: e.keys})
	require.NoError(t, err, "defaults")
}
