package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/cached"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

func TestUnfurlAnswersAttributes(t *testing.T) {
	h := newHarness(t)
	tok, conn := h.token("tracker")
	uri := "https://tracker.example.com/acme/items/1?utm=x#frag"

	rec := h.unfurl("tracker", tok, uri)

	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	want := `{"uri":"https://tracker.example.com/acme/items/1?utm=x#frag","operations":[{"path":["attributes"],"set":[` +
		`{"id":"title","name":"title","type":"inline","inline":{"title":{"value":"Fix the flux capacitor","section":"title"}}},` +
		`{"id":"state","name":"state","type":"inline","inline":{"enum":{"value":"open","color":{"r":26,"g":127,"b":55},"section":"primary"}}},` +
		`{"id":"author","name":"author","type":"inline","inline":{"plain_text":{"value":"Doc Brown","section":"secondary"}}},` +
		`{"id":"avatar","name":"avatar","type":"embed","embed":{"src_url":"https://avatars.example.com/u/1","image":{"section":"avatar"}}},` +
		`{"id":"updated","name":"updated","type":"inline","inline":{"datetime":{"value":"2026-11-20T10:11:12.000Z","section":"secondary"}}},` +
		`{"id":"labels","name":"labels","type":"inline","inline":{"plain_text":{"value":"bug, p1","section":"secondary"}}},` +
		`{"id":"body","name":"body","type":"inline","inline":{"plain_text":{"value":"It needs 1.21 gigaw…","section":"body"}}},` +
		`{"id":"dev","name":"Developer Name","type":"inline","inline":{"plain_text":{"value":"Acme Inc","section":"secondary"}}}]}]}`
	assert.JSONEq(t, want, rec.Body.String())
	assert.Len(t, h.up.Requests(), 1)

	// The service-wide credential went upstream, with the default prefix.
	assert.Equal(t, "Bearer sekrit-upstream-token", lastRequest(t, h.up).Header.Get("Authorization"))

	// The subscription is recorded for live updates (protocol 1.6).
	subs := subscriptions(t, h.st)
	require.Len(t, subs, 1)
	assert.Equal(t, store.SubscriptionKey{Provider: "tracker", ConnectionID: conn, URI: uri}, subs[0].SubscriptionKey)
	assert.NotEmpty(t, subs[0].AttrHash)
}

func TestUnfurlCachesAndCollapses(t *testing.T) {
	h := newHarness(t)
	tok, _ := h.token("tracker")
	uri := "https://tracker.example.com/acme/items/1"

	// 64 concurrent unfurls of one URI cost exactly one upstream call
	// (TH-38). The fake holds every request until all 64 are in flight.
	release := h.up.HoldAPI()
	var wg sync.WaitGroup
	codes := make([]int, 64)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = h.unfurl("tracker", tok, uri).Code
		}()
	}
	<-h.up.Held()
	time.Sleep(50 * time.Millisecond) // let the other 63 reach the collapse point; a later one would hit the cache anyway
	release()
	wg.Wait()
	for _, c := range codes {
		assert.Equal(t, http.StatusOK, c)
	}
	assert.Len(t, h.up.Requests(), 1)

	// A later call within cache_ttl is served from the cache.
	require.Equal(t, http.StatusOK, h.unfurl("tracker", tok, uri).Code)
	assert.Len(t, h.up.Requests(), 1)
}

func TestUnfurlBearerChecks(t *testing.T) { // TH-26 (RFC 6750 3.1 challenges), TH-27
	h := newHarness(t)
	trackerTok, _ := h.token("tracker")
	wikiTok, _ := h.token("wiki")
	uri := "https://tracker.example.com/acme/items/1"

	expired, _ := h.token("tracker")
	require.NoError(t, h.st.DeleteToken(t.Context(), digestOf(expired)))
	require.NoError(t, h.st.CreateToken(t.Context(), store.Token{
		Digest: digestOf(expired), Kind: store.KindAccess, Provider: "tracker", ExpiresAt: h.clock.Now().Add(-time.Hour),
	}))

	cases := []struct {
		name, token, authz, wantWWW string
	}{
		{name: "missing", wantWWW: `Bearer realm="unfurld"`},
		{name: "unknown token", token: "ufd_at_nope", wantWWW: `Bearer realm="unfurld", error="invalid_token"`},
		{name: "other provider's token", token: wikiTok, wantWWW: `Bearer realm="unfurld", error="invalid_token"`},
		{name: "expired", token: expired, wantWWW: `Bearer realm="unfurld", error="invalid_token"`},
		{name: "unknown token, two spaces", authz: "Bearer  ufd_at_nope", wantWWW: `Bearer realm="unfurld", error="invalid_token"`},
		{name: "malformed token", authz: "Bearer a b", wantWWW: `Bearer realm="unfurld", error="invalid_token"`},
		// RFC 6750 3.1: no credential, or an unsupported scheme, gets
		// no error code.
		{name: "basic scheme", authz: "Basic " + trackerTok, wantWWW: `Bearer realm="unfurld"`},
		{name: "empty bearer", authz: "Bearer ", wantWWW: `Bearer realm="unfurld"`},
		{name: "bare bearer", authz: "Bearer", wantWWW: `Bearer realm="unfurld"`},
		{name: "bearer and spaces", authz: "bearer    ", wantWWW: `Bearer realm="unfurld"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := `{"uri":"` + uri + `"}`
			var rec = h.do(http.MethodPost, "/providers/tracker/unfurl", tc.token, "application/json", req)
			if tc.authz != "" {
				rec = doAuthz(h, "/providers/tracker/unfurl", tc.authz, req)
			}
			assert.Equal(t, http.StatusUnauthorized, rec.Code)
			assert.Equal(t, tc.wantWWW, rec.Header().Get("WWW-Authenticate"))
			assert.JSONEq(t, `{"error":{"status":401,"message":"invalid or missing access token"}}`, rec.Body.String())
		})
	}
	// A token in the query string is ignored, not read (TH-26).
	rec := h.do(http.MethodPost, "/providers/tracker/unfurl?access_token="+trackerTok, "", "application/json", `{"uri":"`+uri+`"}`)
	assert.Equal(t, http.StatusUnauthorized, rec.Code)

	assert.Empty(t, h.up.Requests(), "no upstream call without a valid token")
	assert.Empty(t, subscriptions(t, h.st))
}

func TestUnfurlRefusesBadInput(t *testing.T) { // TH-28, TH-29, TH-47, TH-48
	h := newHarness(t)
	tok, _ := h.token("tracker")
	long := "https://tracker.example.com/acme/items/1?q=" + strings.Repeat("a", 3000)
	cases := []struct {
		name, contentType, body string
		wantHTTP                int
		wantOp                  int // status in the error operation; 0 when the body is not an envelope
	}{
		{"malformed json", "application/json", `{"uri":`, 400, 400},
		{"array", "application/json", `["https://tracker.example.com/acme/items/1"]`, 400, 400},
		{"uri is a number", "application/json", `{"uri":42}`, 400, 400},
		{"uri missing", "application/json", `{"url":"x"}`, 400, 400},
		{"uri empty", "application/json", `{"uri":""}`, 400, 400},
		{"trailing data", "application/json", `{"uri":"https://tracker.example.com/acme/items/1"} x`, 400, 400},
		{"two objects", "application/json", `{"uri":"a"}{"uri":"b"}`, 400, 400},
		{"invalid utf-8", "application/json", "{\"uri\":\"https://tracker.example.com/acme/items/1\xff\"}", 400, 400},
		{"deep nesting", "application/json", strings.Repeat("[", 30000), 400, 400},
		{"form content type", "application/x-www-form-urlencoded", `uri=https://tracker.example.com/acme/items/1`, 415, 415},
		{"no content type", "", `{"uri":"https://tracker.example.com/acme/items/1"}`, 415, 415},
		{"huge body", "application/json", `{"uri":"` + strings.Repeat("a", 70000) + `"}`, 413, 0},
		// URIs that parse but are refused: error operations, HTTP 200.
		{"other host", "application/json", `{"uri":"https://evil.example.com/acme/items/1"}`, 200, 400},
		{"look-alike host", "application/json", `{"uri":"https://tracker.example.com.evil.com/acme/items/1"}`, 200, 400},
		{"userinfo", "application/json", `{"uri":"https://tracker.example.com@evil.com/acme/items/1"}`, 200, 400},
		{"port", "application/json", `{"uri":"https://tracker.example.com:8443/acme/items/1"}`, 200, 400},
		{"upper-case host", "application/json", `{"uri":"https://TRACKER.example.com/acme/items/1"}`, 200, 400},
		{"trailing dot", "application/json", `{"uri":"https://tracker.example.com./acme/items/1"}`, 200, 400},
		{"full-width host", "application/json", `{"uri":"https://ｔｒａｃｋｅｒ.example.com/acme/items/1"}`, 200, 400},
		{"zero-width char", "application/json", `{"uri":"https://tracker.example.com/acme/items/1\u200b"}`, 200, 400},
		{"trailing newline", "application/json", `{"uri":"https://tracker.example.com/acme/items/1\n"}`, 200, 400},
		{"javascript scheme", "application/json", `{"uri":"javascript:alert(1)"}`, 200, 400},
		{"too long", "application/json", `{"uri":"` + long + `"}`, 200, 400},
		{"no pattern matches", "application/json", `{"uri":"https://tracker.example.com/acme/other/1"}`, 200, 404},
		{"traversal in capture", "application/json", `{"uri":"https://tracker.example.com/..%2f/items/1"}`, 200, 404},
		{"another provider's uri", "application/json", `{"uri":"https://wiki.example.com/pages/home"}`, 200, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.do(http.MethodPost, "/providers/tracker/unfurl", tok, tc.contentType, tc.body)
			require.Equal(t, tc.wantHTTP, rec.Code, rec.Body.String())
			if tc.wantOp != 0 {
				status, msg := errorSet(t, rec)
				assert.Equal(t, tc.wantOp, status)
				assert.NotEmpty(t, msg)
			}
		})
	}
	assert.Empty(t, h.up.Requests(), "bad input never reaches the upstream")
	assert.Empty(t, subscriptions(t, h.st), "bad input stores nothing")
}

func TestUnfurlMapsUpstreamErrors(t *testing.T) { // TH-32, TH-36, F4
	cases := []struct {
		name     string
		status   int
		body     string
		delay    time.Duration
		wantOp   int
		wantText string
	}{
		{"not found", 404, `{"message":"gone"}`, 0, 404, "That item does not exist"},
		{"unauthorized", 401, `{"message":"bad creds"}`, 0, 401, "Reconnect your account to see this preview"},
		{"forbidden", 403, `{}`, 0, 403, "Reconnect your account to see this preview"},
		{"rate limited", 429, `{}`, 0, 503, "The service is unavailable, try again later"},
		{"server error", 500, `{"secret":"internal stack trace"}`, 0, 503, "The service is unavailable, try again later"},
		{"html instead of json", 200, `<html>oops</html>`, 0, 502, "The service is unavailable, try again later"},
		{"timeout", 200, itemJSON, 3 * time.Second, 504, "The service is unavailable, try again later"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) {
				c.Providers[0].Upstream.Timeout = config.Duration(300 * time.Millisecond)
			})
			tok, _ := h.token("tracker")
			h.up.Set("/api/projects/acme/items/1", upstreamtest.Response{Status: tc.status, Body: tc.body, Delay: tc.delay})
			start := time.Now()
			rec := h.unfurl("tracker", tok, "https://tracker.example.com/acme/items/1")
			assert.Less(t, time.Since(start), 2*time.Second, "answers within the upstream timeout plus slack")
			require.Equal(t, http.StatusOK, rec.Code)
			status, msg := errorSet(t, rec)
			assert.Equal(t, tc.wantOp, status)
			assert.Equal(t, tc.wantText, msg)
			assert.NotContains(t, rec.Body.String(), "secret", "upstream bodies never reach Notion")
			assert.Empty(t, subscriptions(t, h.st))
		})
	}
}

func TestUnfurlErrorStatusIsConfigurable(t *testing.T) { // protocol 5.4, 10 #10
	h := newHarness(t, func(c *config.Config) { c.Server.UnfurlErrorStatus = http.StatusNotFound })
	tok, _ := h.token("tracker")
	rec := h.unfurl("tracker", tok, "https://tracker.example.com/acme/items/2")
	assert.Equal(t, http.StatusNotFound, rec.Code)
	status, _ := errorSet(t, rec)
	assert.Equal(t, 404, status)
}

func TestUnfurlSanitizesUpstreamText(t *testing.T) { // TH-33
	h := newHarness(t)
	tok, _ := h.token("tracker")
	h.up.Set("/api/projects/acme/items/1", upstreamtest.Response{Body: `{"title":"evil\u0000\u001b[31m title\u202e` + strings.Repeat("x", 5000) + `","state":"open",
		"author":{"name":"a","avatar":"javascript:alert(1)"},"body":"line1\r\nline2"}`})
	rec := h.unfurl("tracker", tok, "https://tracker.example.com/acme/items/1")
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	assert.NotContains(t, body, `\u0000`)
	assert.NotContains(t, body, `\u001b`)
	assert.NotContains(t, body, "\u202e")
	assert.NotContains(t, body, "javascript:", "embed URLs must be https on an allowed host (TH-31)")
	assert.Contains(t, body, `"value":"evil[31m title`)
	assert.Less(t, len(body), 4000, "title truncated to max_text_length")
}

func TestDeleteUnfurl(t *testing.T) { // protocol 5.6, TH-39
	h := newHarness(t)
	tok, _ := h.token("tracker")
	uri := "https://tracker.example.com/acme/items/1"
	require.Equal(t, http.StatusOK, h.unfurl("tracker", tok, uri).Code)
	require.Len(t, subscriptions(t, h.st), 1)

	// Without the bearer nothing changes.
	rec := h.do(http.MethodDelete, "/providers/tracker/unfurl", "", "application/json", `{"uri":"`+uri+`"}`)
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Len(t, subscriptions(t, h.st), 1)

	// JSON body, form body and query all name the uri; unknown ones answer
	// the same 200, so the reply is no oracle.
	rec = h.do(http.MethodDelete, "/providers/tracker/unfurl", tok, "application/json", `{"uri":"`+uri+`"}`)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{}`, rec.Body.String())
	assert.Empty(t, subscriptions(t, h.st))

	for _, tc := range []struct{ name, path, ct, body string }{
		{"again", "/providers/tracker/unfurl", "application/json", `{"uri":"` + uri + `"}`},
		{"form", "/providers/tracker/unfurl", "application/x-www-form-urlencoded", "uri=https%3A%2F%2Ftracker.example.com%2Facme%2Fitems%2F9"},
		{"query", "/providers/tracker/unfurl?uri=https%3A%2F%2Ftracker.example.com%2Facme%2Fitems%2F9", "", ""},
		{"empty", "/providers/tracker/unfurl", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.do(http.MethodDelete, tc.path, tok, tc.ct, tc.body)
			assert.Equal(t, http.StatusOK, rec.Code)
		})
	}
}

func TestProvidersSideBySide(t *testing.T) {
	h := newHarness(t)
	wikiTok, _ := h.token("wiki")
	rec := h.unfurl("wiki", wikiTok, "https://wiki.example.com/pages/home")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), `"value":"Home"`)
	assert.Contains(t, rec.Body.String(), `"value":"unfurld"`, "dev defaults to unfurld")

	rec = h.unfurl("nope", wikiTok, "https://wiki.example.com/pages/home")
	assert.Equal(t, http.StatusNotFound, rec.Code)
}

func TestHealthz(t *testing.T) {
	h := newHarness(t)
	rec := h.do(http.MethodGet, "/healthz", "", "", "")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"status":"ok"}`, rec.Body.String())
}

func TestNoCORSHeaders(t *testing.T) { // TH-51
	h := newHarness(t)
	req := h.do(http.MethodOptions, "/providers/tracker/unfurl", "", "", "")
	for k := range req.Header() {
		assert.NotContains(t, strings.ToLower(k), "access-control")
	}
}

// failingPuts is a store whose subscription commits fail while fail is
// set.
type failingPuts struct {
	store.Store
	fail atomic.Bool
}

func (f *failingPuts) PutSubscriptions(ctx context.Context, subs []store.Subscription) (int, error) {
	if f.fail.Load() {
		return 0, errors.New("disk full")
	}
	return f.Store.PutSubscriptions(ctx, subs)
}

// TestUnfurlAnswersOnceSubscribed_F1: a 200 means the subscription is in
// the store, not waiting in memory; when its commit fails the unfurl
// answers "try later" instead of a preview whose link would never be
// updated; a warm unfurl whose subscription is already stored writes
// nothing, so a failing disk does not touch it.
func TestUnfurlAnswersOnceSubscribed_F1(t *testing.T) {
	h := newHarness(t)
	fp := &failingPuts{Store: h.raw}
	h.st = cached.New(fp, cached.Options{})
	h.srv = server.New(server.Config{Settings: h.settings, Store: h.st, Registry: h.reg, Now: h.clock.Now})
	tok, conn := h.token("tracker")
	uri := "https://tracker.example.com/acme/items/1"

	require.Equal(t, http.StatusOK, h.unfurl("tracker", tok, uri).Code)
	_, err := h.raw.GetSubscription(t.Context(), store.SubscriptionKey{Provider: "tracker", ConnectionID: conn, URI: uri})
	require.NoError(t, err, "stored when the 200 was sent")

	fp.fail.Store(true)
	assert.Equal(t, http.StatusOK, h.unfurl("tracker", tok, uri).Code, "warm: nothing to write")

	other := "https://tracker.example.com/acme/items/2"
	h.up.Set("/api/projects/acme/items/2", upstreamtest.Response{Body: itemJSON})
	rec := h.unfurl("tracker", tok, other)
	status, msg := errorSet(t, rec)
	assert.Equal(t, 503, status, rec.Body.String())
	assert.NotEmpty(t, msg)
	_, err = h.raw.GetSubscription(t.Context(), store.SubscriptionKey{Provider: "tracker", ConnectionID: conn, URI: other})
	require.ErrorIs(t, err, store.ErrNotFound)

	fp.fail.Store(false)
	require.Equal(t, http.StatusOK, h.unfurl("tracker", tok, other).Code, "Notion's retry records it")
	_, err = h.raw.GetSubscription(t.Context(), store.SubscriptionKey{Provider: "tracker", ConnectionID: conn, URI: other})
	require.NoError(t, err)
}

// TestUnfurlRecordsUnfurledAt: an unfurl tells the store when the link was
// unfurled, which the store keeps a day at a time for the expiry of links
// nobody looks at (store.Schedule.ExpireSubscriptions).
func TestUnfurlRecordsUnfurledAt(t *testing.T) {
	h := newHarness(t)
	tok, conn := h.token("tracker")
	uri := "https://tracker.example.com/acme/items/1"
	require.Equal(t, http.StatusOK, h.unfurl("tracker", tok, uri).Code)
	sub, err := h.raw.GetSubscription(t.Context(), store.SubscriptionKey{Provider: "tracker", ConnectionID: conn, URI: uri})
	require.NoError(t, err)
	assert.True(t, sub.UnfurledAt.Equal(h.clock.Now()), "unfurled at %v, want %v", sub.UnfurledAt, h.clock.Now())
}
