package live_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/cached"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// unfurledURI is unfurled for a link as pasted, which may carry a
// fragment, a query or a trailing slash.
func (e *liveEnv) unfurledURI(conn, uri string) store.SubscriptionKey {
	e.t.Helper()
	res := e.p.Unfurl(e.t.Context(), uri, provider.Credential{}, provider.UnfurlOptions{NoCache: true})
	require.Nil(e.t, res.Error, "%s", res.Body)
	k := store.SubscriptionKey{Provider: "tracker", ConnectionID: conn, URI: uri}
	_, err := e.st.PutSubscription(e.t.Context(), store.Subscription{SubscriptionKey: k, AttrHash: res.Hash, CreatedAt: t0, UpdatedAt: t0})
	require.NoError(e.t, err)
	return k
}

// sign is the tracker's webhook signature of body with secret.
func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestWebhookRefreshesAtOnce: a signed event naming an item refreshes at
// once every subscription of that item, whoever pasted it and however
// (fragment, query, trailing slash), and each change reaches Notion as
// one PATCH with the full set; an item that merely shares the prefix is
// left alone, and an unsigned or wrongly signed event gets 401 (issue 4
// item 2).
func TestWebhookRefreshesAtOnce(t *testing.T) {
	e := newLiveEnv(t, 3600)
	e.connect("c1", "tracker")
	e.connect("c2", "tracker")
	e.up.Set(itemPath(7), upstreamtest.Response{Body: item("Seven", "open")})
	e.up.Set(itemPath(70), upstreamtest.Response{Body: item("Seventy", "open")})
	keys := []store.SubscriptionKey{
		e.unfurled("c1", 7),
		e.unfurledURI("c2", trackerURI(7)+"#comment-3"),
		e.unfurledURI("c2", trackerURI(7)+"/?tab=activity"),
	}
	other := e.unfurled("c1", 70)

	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	srv := server.New(server.Config{Settings: e.settings, Store: cached.New(e.st, cached.Options{}), Registry: e.reg, Live: e.r, Logger: logger, Now: e.clock.Now})
	post := func(body, signature string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/providers/tracker/webhook", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if signature != "" {
			req.Header.Set("X-Tracker-Signature", signature)
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return rec
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.r.Run(ctx)
	}()

	event := `{"action":"closed","item":{"url":"` + trackerURI(7) + `"}}`
	assert.Equal(t, http.StatusUnauthorized, post(event, "").Code)
	assert.Equal(t, http.StatusUnauthorized, post(event, sign("not-the-secret", event)).Code)

	e.up.Set(itemPath(7), upstreamtest.Response{Body: item("Seven", "closed")})
	rec := post(event, sign(webhookSecret, event))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"links":1,"refreshes":3}`, rec.Body.String())

	got := map[store.SubscriptionKey]live.Outcome{}
	for range keys {
		select {
		case r := <-e.refreshed:
			got[r.key] = r.out
		case <-time.After(10 * time.Second): // a guard against a hang, not a wait
			t.Fatal("webhook refreshes did not run")
		}
	}
	cancel()
	<-done // Run writes the last records as it ends
	for _, k := range keys {
		require.Contains(t, got, k)
		assert.Equal(t, live.TriggerWebhook, got[k].Record.Trigger)
		assert.Equal(t, live.OutcomeChanged, got[k].Record.Outcome, k.URI)
		assert.Equal(t, live.OutcomeChanged, e.sub(k).Refresh.Outcome, "recorded")
	}

	e.drain()
	calls := e.calls("")
	require.Len(t, calls, 3)
	sent := map[string]string{}
	for _, c := range calls {
		sent[c.Body.URI] = c.Token
		want := e.p.Unfurl(t.Context(), c.Body.URI, provider.Credential{}, provider.UnfurlOptions{NoCache: true})
		assert.JSONEq(t, string(want.Body), string(c.Raw))
	}
	assert.Equal(t, map[string]string{
		keys[0].URI: e.tokens["c1"], keys[1].URI: e.tokens["c2"], keys[2].URI: e.tokens["c2"],
	}, sent)

	assert.Len(t, e.up.RequestsTo(itemPath(70)), 1, "item 70 was only unfurled")
	assert.True(t, e.sub(other).Refresh.IsZero())
}

// TestWebhookRightAfterFirstUnfurl_F1: a webhook that arrives the moment
// a link's first unfurl was answered finds its subscription and refreshes
// it. The unfurl route, the webhook route and the Refresher share one
// store handle, and the unfurl answers only once the subscription is
// committed, so there is no window in which the subscription exists in
// memory only.
func TestWebhookRightAfterFirstUnfurl_F1(t *testing.T) {
	e := newLiveEnv(t, 3600)
	shared := cached.New(e.st, cached.Options{Now: e.clock.Now})
	e.useStore(shared)
	e.connect("c1", "tracker")
	e.up.Set(itemPath(5), upstreamtest.Response{Body: item("Five", "open")})
	bearer, err := issuer.IssueAccessToken(t.Context(), shared, "tracker", "c1", e.clock.Now(), 0)
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	srv := server.New(server.Config{Settings: e.settings, Store: shared, Registry: e.reg, Live: e.r, Logger: logger, Now: e.clock.Now})
	serve := func(path, body string, header map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return rec
	}

	rec := serve("/providers/tracker/unfurl", `{"uri":"`+trackerURI(5)+`"}`, map[string]string{"Authorization": "Bearer " + bearer})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	event := `{"action":"closed","item":{"url":"` + trackerURI(5) + `"}}`
	rec = serve("/providers/tracker/webhook", event, map[string]string{"X-Tracker-Signature": sign(webhookSecret, event)})
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"links":1,"refreshes":1}`, rec.Body.String())
}
