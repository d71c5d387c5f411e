package upstreamauth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// revokeCall is what the fake revocation endpoint saw.
type revokeCall struct {
	Method, Path, ContentType, User, Pass string
	BasicOK                               bool
	Form                                  url.Values
	JSON                                  map[string]string
}

// fakeRevoker starts a fake upstream whose path answers with the
// statuses given, in turn (200 past the end).
func fakeRevoker(t *testing.T, path string, statuses ...int) *upstreamtest.Server {
	t.Helper()
	up := upstreamtest.New(t)
	up.Set(path, upstreamtest.Response{})
	for _, st := range statuses {
		up.Script(path, upstreamtest.Response{Status: st})
	}
	return up
}

// revokeCalls returns what the fake revocation endpoint saw.
func revokeCalls(up *upstreamtest.Server) []revokeCall {
	var calls []revokeCall
	for _, r := range up.Requests() {
		c := revokeCall{Method: r.Method, Path: r.Path, ContentType: r.Header.Get("Content-Type")}
		c.User, c.Pass, c.BasicOK = r.BasicAuth()
		if c.ContentType == "application/json" {
			_ = json.Unmarshal(r.Body, &c.JSON)
		} else {
			c.Form = r.Form()
		}
		calls = append(calls, c)
	}
	return calls
}

func revokingUpstream(t *testing.T, revURL, style string, params bool) *Client {
	t.Helper()
	u, err := New(Options{
		Provider: "acme",
		OAuth2: config.OAuth2{
			AuthorizeURL: "https://acme.example/authorize", TokenURL: "https://acme.example/token",
			ClientID: "client id", ClientSecret: config.Secret("s3cret&"),
			Revocation: config.Revocation{URL: revURL, Style: style},
		},
		RedirectURL:        "https://unfurl.example/providers/acme/callback",
		HTTPClient:         http.DefaultClient,
		ClientAuthInParams: params,
	})
	require.NoError(t, err)
	u.revokeDelay = time.Millisecond
	return u
}

// TestRevoke_TH40: each style sends one request of its documented shape
// with the client's credentials and the user's token.
func TestRevoke_TH40(t *testing.T) {
	withRefresh := Token{AccessToken: "at-1", RefreshToken: "rt-1"}
	accessOnly := Token{AccessToken: "at-2"}
	cases := []struct {
		name   string
		style  string
		params bool
		tok    Token
		check  func(t *testing.T, c revokeCall)
	}{
		{"rfc7009 basic, refresh token", config.RevocationRFC7009, false, withRefresh, func(t *testing.T, c revokeCall) {
			assert.Equal(t, http.MethodPost, c.Method)
			assert.True(t, c.BasicOK)
			assert.Equal(t, "client+id", c.User) // form-encoded first (RFC 6749 2.3.1)
			assert.Equal(t, "s3cret%26", c.Pass)
			assert.Equal(t, url.Values{"token": {"rt-1"}, "token_type_hint": {"refresh_token"}}, c.Form)
		}},
		{"rfc7009 params, access token", config.RevocationRFC7009, true, accessOnly, func(t *testing.T, c revokeCall) {
			assert.Equal(t, http.MethodPost, c.Method)
			assert.False(t, c.BasicOK)
			assert.Equal(t, url.Values{
				"token": {"at-2"}, "token_type_hint": {"access_token"},
				"client_id": {"client id"}, "client_secret": {"s3cret&"},
			}, c.Form)
		}},
		{"github grant", config.RevocationGitHubGrant, false, withRefresh, func(t *testing.T, c revokeCall) {
			assert.Equal(t, http.MethodDelete, c.Method)
			assert.Equal(t, "/applications/client%20id/grant", c.Path, "{client_id} filled in")
			assert.True(t, c.BasicOK)
			assert.Equal(t, "client id", c.User)
			assert.Equal(t, "s3cret&", c.Pass)
			assert.Equal(t, map[string]string{"access_token": "at-1"}, c.JSON)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := fakeRevoker(t, "/applications/client%20id/grant", http.StatusNoContent)
			u := revokingUpstream(t, up.URL()+"/applications/{client_id}/grant", tc.style, tc.params)
			require.NoError(t, u.Revoke(t.Context(), tc.tok, 10*time.Second))
			got := revokeCalls(up)
			require.Len(t, got, 1)
			tc.check(t, got[0])
		})
	}
}

// TestRevokeRetry: one retry after a 5xx or 429, none after a 4xx, never
// more than two calls; the error holds the status and no token.
func TestRevokeRetry(t *testing.T) {
	cases := []struct {
		name     string
		statuses []int
		calls    int
		wantErr  bool
	}{
		{"ok", []int{200}, 1, false},
		{"5xx then ok", []int{503, 200}, 2, false},
		{"429 twice", []int{429, 429}, 2, true},
		{"400 is final", []int{400}, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := fakeRevoker(t, "/revoke", tc.statuses...)
			u := revokingUpstream(t, up.URL()+"/revoke", config.RevocationRFC7009, false)
			err := u.Revoke(t.Context(), Token{AccessToken: "at-secret"}, 10*time.Second)
			assert.Len(t, revokeCalls(up), tc.calls)
			if !tc.wantErr {
				require.NoError(t, err)
				return
			}
			var re *RevokeError
			require.ErrorAs(t, err, &re)
			assert.NotContains(t, err.Error(), "at-secret")
		})
	}
}

// TestRevokeNotConfigured: no revocation url, no request.
func TestRevokeNotConfigured(t *testing.T) {
	u := revokingUpstream(t, "", "", false)
	assert.False(t, u.CanRevoke())
	require.NoError(t, u.Revoke(t.Context(), Token{AccessToken: "at"}, time.Second))
}
