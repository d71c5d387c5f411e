package upstreamtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// The client tests in engine/server, engine/upstreamauth, engine/app and
// engine/canary exercise the fake's normal paths; these cover what those
// clients never send.

// get sends a GET with headers and returns status, headers and body.
func get(t *testing.T, s *upstreamtest.Server, path string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL()+path, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// postForm posts form to path, with HTTP Basic when user is set.
func postForm(t *testing.T, s *upstreamtest.Server, path string, form url.Values, user, pass string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL()+path, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	s := upstreamtest.New(t, upstreamtest.WithClock(func() time.Time { return at }))
	s.Set("/items/1", upstreamtest.Response{JSON: map[string]string{"title": "One"}, ETag: `"v1"`, LastModified: "Mon, 07 Dec 2026 04:00:00 GMT"})
	s.Script("/items/1", upstreamtest.Response{Status: http.StatusServiceUnavailable}, upstreamtest.Response{Status: http.StatusTooManyRequests, Body: "slow down", Header: map[string]string{"Retry-After": "7"}})

	tests := []struct {
		name       string
		path       string
		header     map[string]string
		wantStatus int
		wantBody   string
		wantHeader map[string]string
	}{
		{"script first", "/items/1", nil, 503, `{"message":"Service Unavailable"}`, nil},
		{"script in order", "/items/1", nil, 429, "slow down", map[string]string{"Retry-After": "7"}},
		{"then the standing answer", "/items/1", nil, 200, `{"title":"One"}`, map[string]string{"ETag": `"v1"`, "Content-Type": "application/json"}},
		{"etag matches", "/items/1", map[string]string{"If-None-Match": `"v1"`}, 304, "", nil},
		{"etag differs", "/items/1", map[string]string{"If-None-Match": `"v0"`}, 200, `{"title":"One"}`, nil},
		{"last-modified matches", "/items/1", map[string]string{"If-Modified-Since": "Mon, 07 Dec 2026 04:00:00 GMT"}, 304, "", nil},
		// RFC 9110 13.2.2: If-None-Match wins; the date is not looked at.
		{"stale etag, same date", "/items/1", map[string]string{"If-None-Match": `"v0"`, "If-Modified-Since": "Mon, 07 Dec 2026 04:00:00 GMT"}, 200, `{"title":"One"}`, nil},
		{"query is ignored", "/items/1?x=1", nil, 200, `{"title":"One"}`, nil},
		{"unknown path", "/items/2", nil, 404, `{"message":"Not Found"}`, nil},
	}
	for _, tc := range tests { // in order: the script is consumed
		status, h, body := get(t, s, tc.path, tc.header)
		assert.Equal(t, tc.wantStatus, status, tc.name)
		assert.Equal(t, tc.wantBody, body, tc.name)
		for k, v := range tc.wantHeader {
			assert.Equal(t, v, h.Get(k), tc.name)
		}
	}

	reqs := s.Requests()
	require.Len(t, reqs, len(tests))
	for i, r := range reqs {
		assert.Equal(t, tests[i].wantStatus, r.Status, tests[i].name)
		assert.Equal(t, at, r.Time)
	}
	assert.Equal(t, url.Values{"x": {"1"}}, reqs[7].Query)
	assert.Len(t, s.RequestsTo("/items/2"), 1)
	last, ok := s.LastRequest()
	require.True(t, ok)
	assert.Equal(t, "/items/2", last.Path)
}

func TestBearerAuthAndOverride(t *testing.T) {
	t.Parallel()
	s := upstreamtest.New(t, upstreamtest.WithBearerAuth())
	s.Set("/me", upstreamtest.Response{Body: `{"id":1}`})
	s.AddKey("key-1")

	status, _, body := get(t, s, "/me", nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.JSONEq(t, `{"message":"Bad credentials"}`, body)
	status, _, _ = get(t, s, "/me", map[string]string{"Authorization": "Bearer key-2"})
	assert.Equal(t, http.StatusUnauthorized, status)
	status, _, _ = get(t, s, "/me", map[string]string{"Authorization": "Bearer key-1"})
	assert.Equal(t, http.StatusOK, status)

	s.Override(&upstreamtest.Response{Status: http.StatusBadGateway})
	status, _, _ = get(t, s, "/me", map[string]string{"Authorization": "Bearer key-1"})
	assert.Equal(t, http.StatusBadGateway, status, "an override wins over everything")
	s.Override(nil)
	status, _, _ = get(t, s, "/me", map[string]string{"Authorization": "Bearer key-1"})
	assert.Equal(t, http.StatusOK, status)
}

func TestHoldAPI(t *testing.T) {
	t.Parallel()
	s := upstreamtest.New(t)
	s.Set("/x", upstreamtest.Response{Body: "{}"})
	release := s.HoldAPI()
	done := make(chan int, 1)
	go func() {
		status, _, _ := get(t, s, "/x", nil)
		done <- status
	}()
	<-s.Held()
	require.Len(t, s.Requests(), 1, "recorded while held")
	assert.Zero(t, s.Requests()[0].Status, "not answered yet")
	release()
	release() // idempotent
	assert.Equal(t, http.StatusOK, <-done)
}

// TestClientAuthentication covers what our client never sends: both
// authentication styles at once (RFC 6749 2.3), a wrong secret, and the
// form-encoded Basic credentials of RFC 6749 2.3.1.
func TestClientAuthentication(t *testing.T) {
	t.Parallel()
	const id, secret = "client id", "s3cret&"
	tests := []struct {
		name       string
		user, pass string
		params     bool
		want       int
	}{
		{"basic, form-encoded first", url.QueryEscape(id), url.QueryEscape(secret), false, http.StatusBadRequest},
		{"params", "", "", true, http.StatusBadRequest},
		{"both", url.QueryEscape(id), url.QueryEscape(secret), true, http.StatusUnauthorized},
		{"wrong secret", url.QueryEscape(id), "nope", false, http.StatusUnauthorized},
		{"none", "", "", false, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := upstreamtest.New(t, upstreamtest.WithClient(id, secret))
			form := url.Values{"grant_type": {"authorization_code"}, "code": {"unknown"}}
			if tc.params {
				form.Set("client_id", id)
				form.Set("client_secret", secret)
			}
			// An authenticated client with an unknown code gets 400
			// invalid_grant; an unauthenticated one 401 invalid_client.
			status, body := postForm(t, s, upstreamtest.TokenPath, form, tc.user, tc.pass)
			assert.Equal(t, tc.want, status, body)
			calls := s.TokenCalls()
			require.Len(t, calls, 1)
			assert.Equal(t, tc.want == http.StatusBadRequest, calls[0].ClientOK)
		})
	}
}

// TestAuthorizeRefusals: what a careful upstream refuses at authorize.
func TestAuthorizeRefusals(t *testing.T) {
	t.Parallel()
	base := url.Values{
		"response_type": {"code"}, "client_id": {upstreamtest.DefaultClientID}, "state": {"st"},
		"redirect_uri": {"https://unfurld.test/providers/x/callback"},
	}
	tests := []struct {
		name   string
		edit   func(url.Values)
		strict bool
		want   int
	}{
		{"plain", func(url.Values) {}, false, http.StatusFound},
		{"no pkce where required", func(url.Values) {}, true, http.StatusBadRequest},
		{"s256 where required", func(v url.Values) {
			v.Set("code_challenge", upstreamtest.S256("verifier"))
			v.Set("code_challenge_method", "S256")
		}, true, http.StatusFound},
		{"plain pkce method", func(v url.Values) { v.Set("code_challenge", "verifier"); v.Set("code_challenge_method", "plain") }, false, http.StatusBadRequest},
		{"no state", func(v url.Values) { v.Del("state") }, false, http.StatusBadRequest},
		{"other client", func(v url.Values) { v.Set("client_id", "other") }, false, http.StatusBadRequest},
		{"relative redirect", func(v url.Values) { v.Set("redirect_uri", "/callback") }, false, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []upstreamtest.Option
			if tc.strict {
				opts = append(opts, upstreamtest.WithRequiredPKCE())
			}
			s := upstreamtest.New(t, opts...)
			q := url.Values{}
			for k, v := range base {
				q[k] = append([]string(nil), v...)
			}
			tc.edit(q)
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.AuthorizeURL()+"?"+q.Encode(), nil)
			require.NoError(t, err)
			resp, err := c.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode)
		})
	}
}

// signIn runs authorize and the code exchange without PKCE and returns
// the token answer.
func signIn(t *testing.T, s *upstreamtest.Server) map[string]any {
	t.Helper()
	const redirect = "https://unfurld.test/providers/x/callback"
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"response_type": {"code"}, "client_id": {s.ClientID()}, "state": {"st"}, "redirect_uri": {redirect}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.AuthorizeURL()+"?"+q.Encode(), nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	status, tok := postForm(t, s, upstreamtest.TokenPath, url.Values{
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirect},
	}, s.ClientID(), s.ClientSecret())
	require.Equal(t, http.StatusOK, status, tok)
	return tok
}

// TestRevokeEndsTheGrant: RFC 7009 revocation by an authenticated client
// ends the grant, access token included; an unauthenticated one is
// refused and recorded. engine/app's disconnect tests (security.md
// TH-40) rely on both.
func TestRevokeEndsTheGrant(t *testing.T) {
	t.Parallel()
	s := upstreamtest.New(t, upstreamtest.WithBearerAuth())
	s.Set("/me", upstreamtest.Response{Body: "{}"})
	tok := signIn(t, s)
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)
	assert.Equal(t, []string{rt}, s.RefreshTokens())
	status, _, _ := get(t, s, "/me", map[string]string{"Authorization": "Bearer " + at})
	require.Equal(t, http.StatusOK, status)

	status, _ = postForm(t, s, upstreamtest.RevokePath, url.Values{"token": {rt}}, s.ClientID(), "wrong")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.False(t, s.Family(rt).Revoked)

	status, _ = postForm(t, s, upstreamtest.RevokePath, url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}, s.ClientID(), s.ClientSecret())
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, []upstreamtest.RevokeCall{{Token: rt, ClientOK: false}, {Token: rt, Hint: "refresh_token", ClientOK: true}}, s.Revocations())
	assert.True(t, s.Family(rt).Revoked)
	assert.Empty(t, s.RefreshTokens())
	status, _, _ = get(t, s, "/me", map[string]string{"Authorization": "Bearer " + at})
	assert.Equal(t, http.StatusUnauthorized, status, "the grant's access token ends with it")
}

// TestExpireAccessTokens: access tokens end, refresh tokens and keys do
// not.
func TestExpireAccessTokens(t *testing.T) {
	t.Parallel()
	s := upstreamtest.New(t, upstreamtest.WithBearerAuth())
	s.Set("/me", upstreamtest.Response{Body: "{}"})
	s.AddKey("key-1")
	tok := signIn(t, s)
	s.ExpireAccessTokens()
	status, _, _ := get(t, s, "/me", map[string]string{"Authorization": "Bearer " + tok["access_token"].(string)})
	assert.Equal(t, http.StatusUnauthorized, status)
	status, _, _ = get(t, s, "/me", map[string]string{"Authorization": "Bearer key-1"})
	assert.Equal(t, http.StatusOK, status)

	status, fresh := postForm(t, s, upstreamtest.TokenPath, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, s.ClientID(), s.ClientSecret())
	require.Equal(t, http.StatusOK, status)
	status, _, _ = get(t, s, "/me", map[string]string{"Authorization": "Bearer " + fresh["access_token"].(string)})
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, 1, s.CountTokenCalls("refresh_token"))
}
