package live_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// TestRefreshChangeYieldsOnePatch: an upstream change yields exactly one
// PATCH carrying the full new attribute set (protocol 7.2), and a refresh
// that finds nothing new yields none (issue 4 item 3).
func TestRefreshChangeYieldsOnePatch(t *testing.T) {
	e := newLiveEnv(t, 3600)
	e.connect("c1", "tracker")
	e.up.Set(itemPath(1), upstreamtest.Response{Body: item("Fix the flux capacitor", "open")})
	k := e.unfurled("c1", 1)

	out := e.refresh(k)
	assert.Equal(t, live.OutcomeUnchanged, out.Record.Outcome)
	assert.False(t, out.Queued)
	e.drain()
	assert.Empty(t, e.calls(""), "nothing changed, nothing sent")

	e.up.Set(itemPath(1), upstreamtest.Response{Body: item("Fix the flux capacitor", "closed")})
	out = e.refresh(k)
	assert.Equal(t, live.OutcomeChanged, out.Record.Outcome)
	assert.True(t, out.Queued)
	e.drain()
	calls := e.calls("c1")
	require.Len(t, calls, 1)
	want := e.p.Unfurl(t.Context(), k.URI, provider.Credential{}, provider.UnfurlOptions{NoCache: true})
	assert.JSONEq(t, string(want.Body), string(calls[0].Raw), "the full set, title and dev included")
	assert.Equal(t, want.Hash, e.sub(k).AttrHash, "the subscription records what Notion has")

	for range 2 {
		out = e.refresh(k)
		assert.Equal(t, live.OutcomeUnchanged, out.Record.Outcome)
	}
	e.drain()
	assert.Len(t, e.calls(""), 1, "no change, no PATCH")
}

// TestRefreshConditional: the validators of the last fetch go back as
// If-None-Match or If-Modified-Since; a 304 costs no PATCH, keeps them,
// and is recorded as not_modified; a change after it is found.
func TestRefreshConditional(t *testing.T) {
	tests := []struct {
		name   string
		object func(state string) upstreamtest.Response
		header func(upstreamtest.Request) string
		want   string
	}{
		{"ETag", func(s string) upstreamtest.Response {
			return upstreamtest.Response{Body: item("T", s), ETag: `W/"` + s + `"`}
		}, func(c upstreamtest.Request) string { return c.Header.Get("If-None-Match") }, `W/"open"`},
		{"LastModified", func(s string) upstreamtest.Response {
			return upstreamtest.Response{Body: item("T", s), LastModified: map[string]string{"open": "Fri, 14 Mar 2025 15:00:00 GMT", "closed": "Sat, 15 Mar 2025 15:00:00 GMT"}[s]}
		}, func(c upstreamtest.Request) string { return c.Header.Get("If-Modified-Since") }, "Fri, 14 Mar 2025 15:00:00 GMT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newLiveEnv(t, 3600)
			e.connect("c1", "tracker")
			e.up.Set(itemPath(1), tc.object("open"))
			k := e.unfurled("c1", 1)

			e.refresh(k)
			e.flush()
			sub := e.sub(k)
			assert.Equal(t, tc.want, sub.ETag+sub.LastModified, "validators recorded")

			out := e.refresh(k)
			assert.Equal(t, live.OutcomeNotModified, out.Record.Outcome)
			assert.Equal(t, http.StatusNotModified, out.Record.Status)
			calls := e.up.Requests()
			require.Len(t, calls, 3)
			assert.Equal(t, tc.want, tc.header(calls[2]))
			assert.Equal(t, http.StatusNotModified, calls[2].Status)
			assert.Empty(t, tc.header(calls[0]), "the unfurl is not conditional")
			e.flush()
			sub = e.sub(k)
			assert.Equal(t, tc.want, sub.ETag+sub.LastModified, "a 304 keeps the validators")
			assert.Equal(t, store.RefreshRecord{At: t0, Trigger: live.TriggerPoll, Outcome: live.OutcomeNotModified, Status: 304}, normRecord(sub.Refresh))
			e.drain()
			assert.Empty(t, e.calls(""))

			e.up.Set(itemPath(1), tc.object("closed"))
			out = e.refresh(k)
			assert.Equal(t, live.OutcomeChanged, out.Record.Outcome)
			e.drain()
			require.Len(t, e.calls(""), 1)
		})
	}
}

// normRecord puts the record's time in UTC, as t0 is.
func normRecord(r store.RefreshRecord) store.RefreshRecord {
	r.At = r.At.UTC()
	return r
}

// TestRefreshGoneAndBack: an upstream 404 or 410 (gone), or 401/403
// (forbidden), pushes the error operation the unfurl route would answer;
// when the object comes back a normal update, without an error
// operation, clears it (protocol 7.2).
func TestRefreshGoneAndBack(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusGone, http.StatusForbidden, http.StatusUnauthorized} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newLiveEnv(t, 3600)
			e.connect("c1", "tracker")
			e.up.Set(itemPath(1), upstreamtest.Response{Body: item("T", "open")})
			k := e.unfurled("c1", 1)

			e.up.Set(itemPath(1), upstreamtest.Response{Status: status})
			out := e.refresh(k)
			assert.Equal(t, live.OutcomeGone, out.Record.Outcome)
			assert.Equal(t, status, out.Record.Status)
			assert.True(t, out.Queued)
			assert.False(t, out.Transient)
			e.drain()
			calls := e.calls("")
			require.Len(t, calls, 1)
			ops := patchOps(t, calls[0].Raw)
			require.Contains(t, ops, "error")
			assert.NotContains(t, ops, "attributes")
			var set struct{ Status int }
			require.NoError(t, json.Unmarshal(ops["error"], &set))
			assert.Equal(t, map[int]int{404: 404, 410: 404, 403: 403, 401: 401}[status], set.Status)

			e.refresh(k)
			e.drain()
			assert.Len(t, e.calls(""), 1, "still gone: no second PATCH")

			e.up.Set(itemPath(1), upstreamtest.Response{Body: item("T", "reopened")})
			out = e.refresh(k)
			assert.Equal(t, live.OutcomeChanged, out.Record.Outcome)
			e.drain()
			calls = e.calls("")
			require.Len(t, calls, 2)
			ops = patchOps(t, calls[1].Raw)
			assert.Contains(t, ops, "attributes")
			assert.NotContains(t, ops, "error", "the update clears the error")
		})
	}
}

// TestRefreshTransient: 429, 5xx and a spent rate limit (GitHub's 403
// with X-RateLimit-Remaining: 0) push nothing, keep the validators, and
// are marked transient with the upstream's Retry-After and limits, for
// the poller's backoff.
func TestRefreshTransient(t *testing.T) {
	tests := []struct {
		name string
		a    upstreamtest.Response
	}{
		{"429", upstreamtest.Response{Status: 429, Header: map[string]string{"Retry-After": "30"}}},
		{"500", upstreamtest.Response{Status: 500}},
		{"503", upstreamtest.Response{Status: 503}},
		{"403 rate limited", upstreamtest.Response{Status: 403, Header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1741965566"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newLiveEnv(t, 3600)
			e.connect("c1", "tracker")
			e.up.Set(itemPath(1), upstreamtest.Response{Body: item("T", "open"), ETag: `"v1"`})
			k := e.unfurled("c1", 1)
			e.refresh(k)
			e.flush()

			e.up.Set(itemPath(1), tc.a)
			out := e.refresh(k)
			assert.True(t, out.Transient)
			assert.Equal(t, live.OutcomeError, out.Record.Outcome)
			assert.Equal(t, tc.a.Status, out.Record.Status)
			assert.False(t, out.Queued)
			if tc.a.Status == 429 {
				assert.Equal(t, "30s", out.Upstream.RetryAfter.String())
			}
			e.drain()
			assert.Empty(t, e.calls(""))
			e.flush()
			assert.Equal(t, `"v1"`, e.sub(k).ETag)
		})
	}
}

// TestRefreshConnectionGone: a subscription whose connection no longer
// exists is deleted, not fetched (TH-40).
func TestRefreshConnectionGone(t *testing.T) {
	e := newLiveEnv(t, 3600)
	e.up.Set(itemPath(1), upstreamtest.Response{Body: item("T", "open")})
	k := e.unfurled("nobody", 1)
	out := e.refresh(k)
	assert.True(t, out.Deleted)
	_, err := e.st.GetSubscription(t.Context(), k)
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.Len(t, e.up.Requests(), 1, "only the unfurl fetched")

	out = e.refresh(k)
	assert.True(t, out.Deleted, "and a deleted subscription is not brought back")
	e.flush()
	_, err = e.st.GetSubscription(t.Context(), k)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestRefreshReconnectSkips: a connection flagged for a reconnect is not
// fetched for and gets no PATCH.
func TestRefreshReconnectSkips(t *testing.T) {
	e := newLiveEnv(t, 3600)
	e.connect("c1", "tracker")
	e.up.Set(itemPath(1), upstreamtest.Response{Body: item("T", "open")})
	k := e.unfurled("c1", 1)
	require.NoError(t, e.st.UpdateConnection(t.Context(), "c1", func(c store.Connection) (store.Connection, error) {
		c.Status = store.StatusReconnect
		return c, nil
	}))
	e.up.Set(itemPath(1), upstreamtest.Response{Body: item("T", "closed")})
	out := e.refresh(k)
	assert.Equal(t, live.OutcomeSkipped, out.Record.Outcome)
	assert.Len(t, e.up.Requests(), 1)
	e.drain()
	assert.Empty(t, e.calls(""))
}

// countingStore counts the commits of refresh records.
type countingStore struct {
	live.RefreshStore
	puts int
}

func (s *countingStore) PutSubscriptions(ctx context.Context, subs []store.Subscription) (int, error) {
	s.puts++
	return s.RefreshStore.PutSubscriptions(ctx, subs)
}

// TestRefreshRecordsBatched: the records of many refreshes cost one
// PutSubscriptions (one fsync'd commit with bbolt), and each tells its
// story: trigger, outcome, status.
func TestRefreshRecordsBatched(t *testing.T) {
	var cs *countingStore
	e := newLiveEnv(t, 3600, func(o *live.RefresherOptions) {
		cs = &countingStore{RefreshStore: o.Store}
		o.Store = cs
	})
	e.connect("c1", "tracker")
	var keys []store.SubscriptionKey
	for n := 1; n <= 5; n++ {
		e.up.Set(itemPath(n), upstreamtest.Response{Body: item("T", "open")})
		keys = append(keys, e.unfurled("c1", n))
	}
	e.up.Set(itemPath(5), upstreamtest.Response{Status: 404})
	for _, k := range keys {
		e.refresh(k)
	}
	assert.Zero(t, cs.puts, "nothing written per refresh")
	e.flush()
	assert.Equal(t, 1, cs.puts)
	for _, k := range keys[:4] {
		assert.Equal(t, store.RefreshRecord{At: t0, Trigger: live.TriggerPoll, Outcome: live.OutcomeUnchanged, Status: 200}, normRecord(e.sub(k).Refresh))
	}
	assert.Equal(t, store.RefreshRecord{At: t0, Trigger: live.TriggerPoll, Outcome: live.OutcomeGone, Status: 404, Detail: "error operation 404"},
		normRecord(e.sub(keys[4]).Refresh))
	e.flush()
	assert.Equal(t, 1, cs.puts, "an empty batch writes nothing")
}

// TestNewRefresherValidates: the required dependencies.
func TestNewRefresherValidates(t *testing.T) {
	e := newLiveEnv(t, 3600)
	base := live.RefresherOptions{Store: e.st, Registry: e.reg, Pusher: e.d}
	tests := []struct {
		name string
		edit func(*live.RefresherOptions)
	}{
		{"NoStore", func(o *live.RefresherOptions) { o.Store = nil }},
		{"NoRegistry", func(o *live.RefresherOptions) { o.Registry = nil }},
		{"NoPusher", func(o *live.RefresherOptions) { o.Pusher = nil }},
		{"Negative", func(o *live.RefresherOptions) { o.WebhookWorkers = -1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := base
			tc.edit(&opts)
			_, err := live.NewRefresher(opts)
			require.Error(t, err)
		})
	}
	_, err := live.NewRefresher(base)
	require.NoError(t, err)
}
