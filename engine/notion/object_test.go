package notion_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/notion/notiontest"
)

// TestUpdateObjectSuccess checks protocol 7.4 and 10 #22: any 2xx is
// success and the body is ignored, whatever it holds.
func TestUpdateObjectSuccess(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		resp notiontest.Response
	}{
		{name: "200 {}", resp: notiontest.Response{Status: 200}},
		{name: "202", resp: notiontest.Response{Status: 202}},
		{name: "204 no body", resp: notiontest.Response{Status: 204}},
		{name: "200 not json", resp: notiontest.Response{Status: 200, Body: "ok"}},
		{name: "200 body over the cap", resp: notiontest.Response{Status: 200, Body: strings.Repeat("x", 8192)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := notiontest.New(t)
			fake.AddToken(testToken)
			fake.ScriptPatch(tc.resp)
			c := newClient(t, fake, notion.ClientOptions{MaxBodyBytes: 1024})
			require.NoError(t, c.UpdateObject(t.Context(), testToken, envelope()))
			calls := fake.PatchCalls()
			require.Len(t, calls, 1)
			assert.Equal(t, tc.resp.Status, calls[0].Status)
		})
	}
}

// TestUpdateObjectRequest pins the request of protocol 7.1: PATCH, Bearer
// with the Notion token, JSON envelope, Notion-Version 2021-08-16 by
// default (10 #20).
func TestUpdateObjectRequest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		version     string
		wantVersion string
	}{
		{name: "default version", wantVersion: "2021-08-16"},
		{name: "configured version", version: "2026-03-11", wantVersion: "2026-03-11"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
			fake := notiontest.New(t, notiontest.WithClock(func() time.Time { return now }))
			fake.AddToken(testToken)
			c := newClient(t, fake, notion.ClientOptions{ObjectVersion: tc.version})
			env := envelope()
			env.Operations = append(env.Operations, notion.ErrorOp(404, "Content not found"))
			require.NoError(t, c.UpdateObject(t.Context(), testToken, env))

			calls := fake.PatchCalls()
			require.Len(t, calls, 1)
			call := calls[0]
			assert.Equal(t, now, call.Time)
			assert.Equal(t, http.MethodPatch, call.Method)
			assert.Equal(t, "Bearer "+testToken, call.Header.Get("Authorization"))
			assert.Equal(t, testToken, call.Token)
			assert.Equal(t, "application/json", call.Header.Get("Content-Type"))
			assert.Equal(t, tc.wantVersion, call.Header.Get("Notion-Version"))
			want, err := json.Marshal(env)
			require.NoError(t, err)
			assert.JSONEq(t, string(want), string(call.Raw))
			assert.Equal(t, env.URI, call.Body.URI)
			require.Len(t, call.Body.Operations, 2)
			assert.Equal(t, []string{"error"}, call.Body.Operations[1].Path)
			assert.Equal(t, map[string]any{"status": float64(404), "message": "Content not found"}, call.Body.Operations[1].Set)
		})
	}
}

// TestUpdateObjectErrors covers the statuses a PATCH worker branches on
// (protocol 7.3, 7.4; security.md TH-52, F8, F9): 401/403 stop, 429/529
// wait Retry-After, 5xx back off, other 4xx give up.
func TestUpdateObjectErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		setup      func(fake *notiontest.Server)
		token      string
		wantStatus int
		wantCode   string
		wantRetry  time.Duration
		auth       bool
		rateLimit  bool
		retryable  bool
	}{
		{name: "unknown token: 401", token: "ntn_other", wantStatus: 401, wantCode: "unauthorized", auth: true},
		{name: "revoked token: 401", setup: func(fake *notiontest.Server) { fake.RevokeToken(testToken) }, wantStatus: 401, wantCode: "unauthorized", auth: true},
		{name: "403", setup: func(fake *notiontest.Server) { fake.ScriptPatch(notiontest.Response{Status: 403}) }, wantStatus: 403, wantCode: "restricted_resource", auth: true},
		{name: "404 preview gone", setup: func(fake *notiontest.Server) { fake.ScriptPatch(notiontest.Response{Status: 404}) }, wantStatus: 404, wantCode: "object_not_found"},
		{name: "400 validation", setup: func(fake *notiontest.Server) { fake.ScriptPatch(notiontest.Response{Status: 400}) }, wantStatus: 400, wantCode: "validation_error"},
		{name: "429 Retry-After 2 (F8)", setup: func(fake *notiontest.Server) {
			fake.ScriptPatch(notiontest.Response{Status: 429, RetryAfter: "2"})
		}, wantStatus: 429, wantCode: "rate_limited", wantRetry: 2 * time.Second, rateLimit: true, retryable: true},
		{name: "529 like 429 (F9)", setup: func(fake *notiontest.Server) {
			fake.ScriptPatch(notiontest.Response{Status: 529, RetryAfter: "3"})
		}, wantStatus: 529, wantCode: "service_overload", wantRetry: 3 * time.Second, rateLimit: true, retryable: true},
		{name: "500 (F9)", setup: func(fake *notiontest.Server) { fake.ScriptPatch(notiontest.Response{Status: 500}) }, wantStatus: 500, wantCode: "internal_server_error", retryable: true},
		{name: "503", setup: func(fake *notiontest.Server) { fake.ScriptPatch(notiontest.Response{Status: 503}) }, wantStatus: 503, wantCode: "service_unavailable", retryable: true},
		{name: "oauth-style body on the API endpoint", setup: func(fake *notiontest.Server) {
			fake.ScriptPatch(notiontest.Response{Status: 400, Body: `{"error":"invalid_request","error_description":"bad"}`})
		}, wantStatus: 400, wantCode: "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := notiontest.New(t)
			fake.AddToken(testToken)
			if tc.setup != nil {
				tc.setup(fake)
			}
			token := testToken
			if tc.token != "" {
				token = tc.token
			}
			c := newClient(t, fake, notion.ClientOptions{})
			err := c.UpdateObject(t.Context(), notionSecret(token), envelope())
			var apiErr *notion.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.wantStatus, apiErr.Status)
			assert.Equal(t, tc.wantCode, apiErr.Code)
			assert.NotEmpty(t, apiErr.RequestID)
			assert.Equal(t, tc.wantRetry, apiErr.RetryAfter)
			assert.Equal(t, tc.auth, notion.IsAuth(err), "IsAuth")
			assert.Equal(t, tc.rateLimit, notion.IsRateLimited(err), "IsRateLimited")
			assert.Equal(t, tc.retryable, notion.IsRetryable(err), "IsRetryable")
			assert.NotContains(t, err.Error(), token)
		})
	}
}

// TestUpdateObjectScriptSequence checks that the script is consumed in
// order and then falls back to 200, with every body recorded (the shape
// of security.md F8).
func TestUpdateObjectScriptSequence(t *testing.T) {
	t.Parallel()
	fake := notiontest.New(t)
	fake.AddToken(testToken)
	fake.ScriptPatch(notiontest.Response{Status: 429, RetryAfter: "2"}, notiontest.Response{Status: 429, RetryAfter: "2"})
	c := newClient(t, fake, notion.ClientOptions{})
	for range 2 {
		require.True(t, notion.IsRateLimited(c.UpdateObject(t.Context(), testToken, envelope())))
	}
	require.NoError(t, c.UpdateObject(t.Context(), testToken, envelope()))
	calls := fake.PatchCalls()
	require.Len(t, calls, 3)
	for i, want := range []int{429, 429, 200} {
		assert.Equal(t, want, calls[i].Status)
		assert.Equal(t, envelope().URI, calls[i].Body.URI)
		require.Len(t, calls[i].Body.Operations, 1)
		assert.Equal(t, []string{"attributes"}, calls[i].Body.Operations[0].Path)
	}
}

// TestUpdateObjectMissingVersion checks the fake refuses an unversioned
// PATCH as Notion does, through a client configured with an HTTPClient
// that strips the header.
func TestUpdateObjectMissingVersion(t *testing.T) {
	t.Parallel()
	fake := notiontest.New(t)
	fake.AddToken(testToken)
	hc := &http.Client{Transport: stripHeader{name: "Notion-Version", next: http.DefaultTransport}}
	c := newClient(t, fake, notion.ClientOptions{HTTPClient: hc})
	err := c.UpdateObject(t.Context(), testToken, envelope())
	var apiErr *notion.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "missing_version", apiErr.Code)
}

// stripHeader removes one request header before sending.
type stripHeader struct {
	name string
	next http.RoundTripper
}

func (s stripHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Del(s.name)
	return s.next.RoundTrip(r)
}

// TestUpdateObjectInput checks arguments are refused before anything is
// sent.
func TestUpdateObjectInput(t *testing.T) {
	t.Parallel()
	fake := notiontest.New(t)
	c := newClient(t, fake, notion.ClientOptions{})
	cases := []struct {
		name    string
		token   string
		env     notion.Envelope
		wantErr string
	}{
		{name: "no token", env: envelope(), wantErr: "token is empty"},
		{name: "no uri", token: testToken, env: notion.Envelope{Operations: envelope().Operations}, wantErr: "uri is empty"},
		{name: "no operations", token: testToken, env: notion.Envelope{URI: "https://acme.com/x"}, wantErr: "no operations"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorContains(t, c.UpdateObject(t.Context(), notionSecret(tc.token), tc.env), tc.wantErr)
		})
	}
	assert.Empty(t, fake.PatchCalls())
}

// TestUpdateObjectEchoedToken checks TH-49: a token Notion echoes in a
// message is removed from the error.
func TestUpdateObjectEchoedToken(t *testing.T) {
	t.Parallel()
	fake := notiontest.New(t)
	fake.AddToken(testToken)
	fake.ScriptPatch(notiontest.Response{Status: 400, Body: `{"object":"error","status":400,"code":"validation_error","message":"token ` + testToken + ` rejected"}`})
	c := newClient(t, fake, notion.ClientOptions{})
	err := c.UpdateObject(t.Context(), testToken, envelope())
	require.Error(t, err)
	assert.NotContains(t, err.Error(), testToken)
	assert.Contains(t, err.Error(), "token <redacted> rejected")
}
