package app_test

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/app"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/notion/notiontest"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
)

// storedNothing asserts that no connection exists and that Notion's
// token endpoint was not called: the observable effects of a refused
// step.
func (e *flowEnv) storedNothing(t *testing.T) {
	t.Helper()
	conns, err := e.st.ListConnections(context.Background(), "")
	require.NoError(t, err)
	assert.Empty(t, conns, "no connection stored")
	assert.Empty(t, e.notion.TokenCalls(), "Notion's code not spent")
}

// authorizeQuery builds Notion's R1 query with overrides; a nil value
// removes the parameter.
func authorizeQuery(over map[string][]string) string {
	v := url.Values{
		"code": {"nc-1"}, "client_id": {"tracker"}, "redirect_uri": {notionRedirect},
		"response_type": {"code"}, "state": {"st-1"},
	}
	for k, vs := range over {
		if vs == nil {
			v.Del(k)
			continue
		}
		v[k] = vs
	}
	return v.Encode()
}

// TestAuthorizeBadInput is the security.md table for the authorize URL
// (protocol 3.2): each case asserts status, where the browser goes (never
// off our allowlist) and that nothing was stored.
func TestAuthorizeBadInput(t *testing.T) {
	e := newFlowEnv(t)
	cases := []struct {
		name     string
		query    string
		status   int
		redirect string // expected error code in a redirect to Notion; "" means no redirect at all
	}{
		{"TH-02 unknown client_id", authorizeQuery(map[string][]string{"client_id": {"evil"}}), 400, ""},
		{"TH-02 other provider's client_id", authorizeQuery(map[string][]string{"client_id": {"keyed"}}), 400, ""},
		{"TH-02 missing client_id", authorizeQuery(map[string][]string{"client_id": nil}), 400, ""},
		{"TH-01 foreign host", authorizeQuery(map[string][]string{"redirect_uri": {"https://evil.example/externalIntegrationAuthCallback"}}), 400, ""},
		{"TH-01 look-alike host", authorizeQuery(map[string][]string{"redirect_uri": {"https://notion.so.evil.example/externalIntegrationAuthCallback"}}), 400, ""},
		{"TH-01 extra query", authorizeQuery(map[string][]string{"redirect_uri": {notionRedirect + "?x=1"}}), 400, ""},
		{"TH-01 fragment", authorizeQuery(map[string][]string{"redirect_uri": {notionRedirect + "#x"}}), 400, ""},
		{"TH-01 http scheme", authorizeQuery(map[string][]string{"redirect_uri": {"http://notion.so/externalIntegrationAuthCallback"}}), 400, ""},
		{"TH-01 userinfo", authorizeQuery(map[string][]string{"redirect_uri": {"https://evil@notion.so/externalIntegrationAuthCallback"}}), 400, ""},
		{"TH-01 path confusion", authorizeQuery(map[string][]string{"redirect_uri": {"https://notion.so/externalIntegrationAuthCallback/../evil"}}), 400, ""},
		{"TH-01 CRLF", authorizeQuery(map[string][]string{"redirect_uri": {notionRedirect + "\r\nLocation: https://evil.example"}}), 400, ""},
		{"TH-01 missing redirect_uri", authorizeQuery(map[string][]string{"redirect_uri": nil}), 400, ""},
		{"TH-09 two codes", authorizeQuery(map[string][]string{"code": {"a", "b"}}), 400, ""},
		{"TH-09 two states", authorizeQuery(map[string][]string{"state": {"a", "b"}}), 400, ""},
		{"TH-09 two redirect_uris", authorizeQuery(map[string][]string{"redirect_uri": {notionRedirect, notionRedirect}}), 400, ""},
		{"TH-11 huge state", authorizeQuery(map[string][]string{"state": {strings.Repeat("s", 2000)}}), 400, ""},
		{"TH-11 missing state", authorizeQuery(map[string][]string{"state": nil}), 302, "invalid_request"},
		{"wrong response_type", authorizeQuery(map[string][]string{"response_type": {"token"}}), 302, "unsupported_response_type"},
		{"missing Notion code", authorizeQuery(map[string][]string{"code": nil}), 302, "invalid_request"},
		{"malformed query", "code=%zz&state=1", 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.get(e.srv.URL + "/providers/tracker/authorize?" + tc.query)
			page := body(t, r)
			assert.Equal(t, tc.status, r.StatusCode, page)
			loc := r.Header.Get("Location")
			if tc.redirect == "" {
				assert.Empty(t, loc, "no redirect on a bad client or redirect_uri (RFC 6749 4.1.2.1)")
				assert.Empty(t, r.Header.Values("Set-Cookie"), "no cookie")
				assert.Equal(t, "text/html; charset=utf-8", r.Header.Get("Content-Type"))
				assert.Equal(t, "DENY", r.Header.Get("X-Frame-Options"), "TH-05")
				assert.NotContains(t, page, "evil.example", "no raw echo of input (TH-10)")
			} else {
				u, err := url.Parse(loc)
				require.NoError(t, err)
				assert.Equal(t, notionRedirect, u.Scheme+"://"+u.Host+u.Path, "error redirect goes to the allowlisted URI")
				assert.Equal(t, tc.redirect, u.Query().Get("error"))
			}
			e.storedNothing(t)
		})
	}
}

// TestStateEchoedExactly checks TH-11: awkward but acceptable state
// values come back byte-identical, encoded once.
func TestStateEchoedExactly(t *testing.T) {
	for _, state := range []string{"tga@YNV9cfw4yrv0thw", "a&b=c#d", "sp ace+plus", "ünï€ode", "%00%41"} {
		t.Run(state, func(t *testing.T) {
			e := newFlowEnv(t)
			code := e.connect("nc-state", state)
			assert.NotEmpty(t, code)
		})
	}
}

// TestCallbackAttacks covers TH-06 to TH-08 on the upstream callback.
func TestCallbackAttacks(t *testing.T) {
	// start runs R1 and the clean URL, returning the upstream callback
	// URL the fake upstream would send the browser to.
	start := func(e *flowEnv) string {
		t.Helper()
		r := e.get(e.authorizeURL("nc-cb", "st-cb"))
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		r = e.get(r.Header.Get("Location"))
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		r = e.get(r.Header.Get("Location"))
		require.Equal(t, http.StatusFound, r.StatusCode)
		return r.Header.Get("Location")
	}

	t.Run("TH-06 state mismatch destroys the flow and redeems nothing", func(t *testing.T) {
		e := newFlowEnv(t)
		genuine := start(e)
		cb, err := url.Parse(genuine)
		require.NoError(t, err)
		q := cb.Query()
		q.Set("state", "forged")
		cb.RawQuery = q.Encode()
		r := e.get(cb.String())
		assert.Equal(t, http.StatusForbidden, r.StatusCode)
		assert.Equal(t, 0, e.up.CountTokenCalls("authorization_code"), "no upstream token request")
		// The flow is gone: the genuine callback now fails too.
		r = e.get(genuine)
		assert.Equal(t, http.StatusBadRequest, r.StatusCode)
		assert.Equal(t, 0, e.up.CountTokenCalls("authorization_code"))
		e.storedNothing(t)
	})

	t.Run("TH-06 callback without the flow cookie", func(t *testing.T) {
		e := newFlowEnv(t)
		cb := start(e)
		r, err := http.Get(cb) // a different browser: no cookie
		require.NoError(t, err)
		r.Body.Close()
		assert.Equal(t, http.StatusBadRequest, r.StatusCode)
		assert.Equal(t, 0, e.up.CountTokenCalls("authorization_code"))
	})

	t.Run("TH-07 callback on another provider's path", func(t *testing.T) {
		e := newFlowEnv(t)
		cb := start(e)
		other := strings.Replace(cb, "/providers/tracker/callback", "/providers/keyed/callback", 1)
		r := e.get(other)
		assert.GreaterOrEqual(t, r.StatusCode, 400)
		assert.Equal(t, 0, e.up.CountTokenCalls("authorization_code"), "no token request to either upstream")
	})

	t.Run("TH-08 replayed callback", func(t *testing.T) {
		e := newFlowEnv(t)
		cb := start(e)
		r := e.get(cb)
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		r = e.get(cb)
		assert.Equal(t, http.StatusBadRequest, r.StatusCode)
		assert.Equal(t, 1, e.up.CountTokenCalls("authorization_code"), "exactly one upstream exchange")
	})

	t.Run("TH-09 two codes on the callback", func(t *testing.T) {
		e := newFlowEnv(t)
		cb := start(e)
		r := e.get(cb + "&code=second")
		assert.Equal(t, http.StatusBadRequest, r.StatusCode)
		assert.Equal(t, 0, e.up.CountTokenCalls("authorization_code"))
	})

	t.Run("upstream denial redirects access_denied with state", func(t *testing.T) {
		e := newFlowEnv(t)
		cb := mustQuery(t, start(e))
		r := e.get(e.srv.URL + "/providers/tracker/callback?" + url.Values{"error": {"access_denied"}, "state": {cb.Get("state")}}.Encode())
		require.Equal(t, http.StatusFound, r.StatusCode)
		u := mustQuery(t, r.Header.Get("Location"))
		assert.Equal(t, "access_denied", u.Get("error"))
		assert.Equal(t, "st-cb", u.Get("state"))
		e.storedNothing(t)
	})
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Query()
}

// consentReady runs the flow up to the consent page and returns its CSRF
// token.
func (e *flowEnv) consentReady(notionCode string) string {
	t := e.t
	t.Helper()
	r := e.get(e.authorizeURL(notionCode, "st-consent"))
	r = e.get(r.Header.Get("Location"))
	r = e.get(r.Header.Get("Location"))
	r = e.get(r.Header.Get("Location"))
	r = e.get(r.Header.Get("Location"))
	page := body(t, r)
	require.Equal(t, http.StatusOK, r.StatusCode, page)
	m := csrfField.FindStringSubmatch(page)
	require.NotNil(t, m)
	return m[1]
}

// TestConsentAttacks covers TH-04 and the single use of the consent.
func TestConsentAttacks(t *testing.T) {
	post := func(e *flowEnv, v url.Values, hdr map[string]string) *http.Response {
		return e.post("/providers/tracker/consent", v.Encode(), hdr)
	}
	cases := []struct {
		name string
		form func(csrf string) url.Values
		hdr  map[string]string
	}{
		{"TH-04 wrong csrf", func(string) url.Values { return url.Values{"csrf": {"nope"}, "decision": {"allow"}} }, nil},
		{"TH-04 missing csrf", func(string) url.Values { return url.Values{"decision": {"allow"}} }, nil},
		{"TH-04 cross-site fetch", func(c string) url.Values { return url.Values{"csrf": {c}, "decision": {"allow"}} }, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"TH-04 foreign origin", func(c string) url.Values { return url.Values{"csrf": {c}, "decision": {"allow"}} }, map[string]string{"Origin": "https://evil.example"}},
		{"TH-04 null origin", func(c string) url.Values { return url.Values{"csrf": {c}, "decision": {"allow"}} }, map[string]string{"Origin": "null"}},
		{"TH-09 two decisions", func(c string) url.Values { return url.Values{"csrf": {c}, "decision": {"allow", "cancel"}} }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newFlowEnv(t)
			csrf := e.consentReady("nc-consent")
			r := post(e, tc.form(csrf), tc.hdr)
			assert.GreaterOrEqual(t, r.StatusCode, 400)
			assert.Less(t, r.StatusCode, 500)
			assert.Empty(t, r.Header.Get("Location"))
			e.storedNothing(t)
			// The flow is untouched: the genuine Allow still works.
			r = e.postForm("/providers/tracker/consent", url.Values{"csrf": {csrf}, "decision": {"allow"}})
			assert.Equal(t, http.StatusFound, r.StatusCode)
		})
	}

	t.Run("TH-08 double submit runs R2 once", func(t *testing.T) {
		e := newFlowEnv(t)
		e.notion.AddCode("nc-consent", notiontest.TokenResponseJSON{WorkspaceID: "ws-1"})
		csrf := e.consentReady("nc-consent")
		r := e.postForm("/providers/tracker/consent", url.Values{"csrf": {csrf}, "decision": {"allow"}})
		require.Equal(t, http.StatusFound, r.StatusCode)
		r = e.postForm("/providers/tracker/consent", url.Values{"csrf": {csrf}, "decision": {"allow"}})
		assert.Equal(t, http.StatusBadRequest, r.StatusCode)
		assert.Len(t, e.notion.TokenCalls(), 1)
	})

	t.Run("cancel sends access_denied with state", func(t *testing.T) {
		e := newFlowEnv(t)
		csrf := e.consentReady("nc-consent")
		r := e.postForm("/providers/tracker/consent", url.Values{"csrf": {csrf}, "decision": {"cancel"}})
		require.Equal(t, http.StatusFound, r.StatusCode)
		q := mustQuery(t, r.Header.Get("Location"))
		assert.Equal(t, "access_denied", q.Get("error"))
		assert.Equal(t, "st-consent", q.Get("state"))
		e.storedNothing(t)
	})

	t.Run("Notion's code expired: helpful error redirect, nothing stored", func(t *testing.T) {
		e := newFlowEnv(t)
		csrf := e.consentReady("nc-unknown-to-notion")
		r := e.postForm("/providers/tracker/consent", url.Values{"csrf": {csrf}, "decision": {"allow"}})
		require.Equal(t, http.StatusFound, r.StatusCode)
		q := mustQuery(t, r.Header.Get("Location"))
		assert.Equal(t, "access_denied", q.Get("error"))
		assert.Contains(t, q.Get("error_description"), "expired")
		assert.Equal(t, "st-consent", q.Get("state"))
		conns, err := e.st.ListConnections(context.Background(), "")
		require.NoError(t, err)
		assert.Empty(t, conns)
	})
}

// TestAPIKeyFlow connects a provider whose users paste an API key: the
// key is checked with the identity request before it is accepted.
func TestAPIKeyFlow(t *testing.T) {
	e := newFlowEnv(t)
	e.up.AddKey("good-key-0123456789")
	e.notion.AddCode("nc-key", notiontest.TokenResponseJSON{WorkspaceID: "ws-k"})
	v := url.Values{"code": {"nc-key"}, "client_id": {"keyed"}, "redirect_uri": {notionRedirect}, "response_type": {"code"}, "state": {"st-key"}}
	r := e.get(e.srv.URL + "/providers/keyed/authorize?" + v.Encode())
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	r = e.get(r.Header.Get("Location"))
	page := body(t, r)
	require.Equal(t, http.StatusOK, r.StatusCode, page)
	assert.Contains(t, page, "Paste a personal API key.")
	assert.Contains(t, page, "https://keyed.example.com/settings/keys")
	csrf := csrfField.FindStringSubmatch(page)[1]

	// A wrong key is refused on the form; nothing stored.
	r = e.postForm("/providers/keyed/api-key", url.Values{"csrf": {csrf}, "decision": {"allow"}, "api_key": {"wrong-key"}})
	page = body(t, r)
	assert.Equal(t, http.StatusBadRequest, r.StatusCode)
	assert.Contains(t, page, "did not accept this key")
	assert.NotContains(t, page, "wrong-key", "the key is not echoed back")
	e.storedNothing(t)

	// A good key leads to consent, then to Notion.
	r = e.postForm("/providers/keyed/api-key", url.Values{"csrf": {csrf}, "decision": {"allow"}, "api_key": {"good-key-0123456789"}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode, body(t, r))
	r = e.get(r.Header.Get("Location"))
	page = body(t, r)
	require.Equal(t, http.StatusOK, r.StatusCode, page)
	assert.Contains(t, page, "octo-user")
	r = e.postForm("/providers/keyed/consent", url.Values{"csrf": {csrf}, "decision": {"allow"}})
	require.Equal(t, http.StatusFound, r.StatusCode, body(t, r))
	code := mustQuery(t, r.Header.Get("Location")).Get("code")
	require.NotEmpty(t, code)

	conns, err := e.st.ListConnections(context.Background(), "keyed")
	require.NoError(t, err)
	require.Len(t, conns, 1)
	assert.Equal(t, "keyed:4242", conns[0].AccountKey)
	assert.Equal(t, store.StatusActive, conns[0].Status)
	assert.NotContains(t, string(conns[0].UpstreamCredential), "good-key", "sealed at rest (TH-41)")
}

// TestFlowFlooding checks TH-12: flow starts are rate limited per client
// address with 429 and Retry-After.
func TestFlowFlooding(t *testing.T) {
	e := newFlowEnv(t)
	var limited *http.Response
	for i := range 40 {
		r := e.get(e.authorizeURL("nc-flood", "st-"+strconv.Itoa(i)))
		if r.StatusCode == http.StatusTooManyRequests {
			limited = r
			break
		}
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
	}
	require.NotNil(t, limited, "flow starts are limited per address")
	assert.NotEmpty(t, limited.Header.Get("Retry-After"))
}

// TestLostKeyMeansReconnect covers TH-42: when the key that sealed a
// connection's credential is no longer in the keyring, the connection
// becomes "reconnect required"; the sealed bytes are never used as
// plaintext, and the refusal is not a 500.
func TestLostKeyMeansReconnect(t *testing.T) {
	e := newFlowEnv(t)
	code := e.connect("nc-key-lost", "st-key-lost")
	status, tok := e.tokenCall(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedirect}})
	require.Equal(t, http.StatusOK, status, tok)
	access := tok["access_token"].(string)

	// The operator replaces the keyring without keeping the old key.
	cfg := *e.cfg
	cfg.Server.SecretKeys = config.Secret(sealing.GenerateKeySpec("k2"))
	a, err := app.New(app.Options{Config: &cfg, Registry: e.reg, Store: e.st, Logger: e.logger, Now: e.clock.Now})
	require.NoError(t, err)
	srv := httptest.NewServer(a.Server.Handler())
	t.Cleanup(srv.Close)

	apiCalls := len(e.up.Requests())
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/providers/tracker/unfurl", strings.NewReader(`{"uri":"https://tracker.example.com/items/1"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	out := body(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, out)
	assert.Contains(t, out, `"status":401`, "the user is asked to reconnect")

	conns, err := e.st.ListConnections(context.Background(), "tracker")
	require.NoError(t, err)
	require.Len(t, conns, 1)
	assert.Equal(t, store.StatusReconnect, conns[0].Status)
	assert.Equal(t, "open credential", conns[0].Reconnect.Call)
	assert.Contains(t, conns[0].Reconnect.Detail, "k1")
	assert.Len(t, e.up.Requests(), apiCalls, "no upstream call with an unopened credential")
}

// TestAPIKeyBadInput is the security.md table for the API-key form: each
// refused submission leaves no connection, spends no Notion code, and the
// flow stays usable for the genuine key.
func TestAPIKeyBadInput(t *testing.T) {
	start := func(e *flowEnv) string {
		t.Helper()
		v := url.Values{"code": {"nc-key"}, "client_id": {"keyed"}, "redirect_uri": {notionRedirect}, "response_type": {"code"}, "state": {"st-key"}}
		r := e.get(e.srv.URL + "/providers/keyed/authorize?" + v.Encode())
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		r = e.get(r.Header.Get("Location"))
		page := body(t, r)
		require.Equal(t, http.StatusOK, r.StatusCode, page)
		return csrfField.FindStringSubmatch(page)[1]
	}
	post := func(e *flowEnv, raw string, hdr map[string]string) *http.Response {
		h := map[string]string{"Sec-Fetch-Site": "same-origin"}
		maps.Copy(h, hdr)
		return e.post("/providers/keyed/api-key", raw, h)
	}
	cases := []struct {
		name   string
		form   func(csrf string) string
		hdr    map[string]string
		status int
	}{
		{"TH-04 wrong csrf", func(string) string {
			return url.Values{"csrf": {"x"}, "decision": {"allow"}, "api_key": {"good-key-0123456789"}}.Encode()
		}, nil, 403},
		{"TH-04 cross-site", func(c string) string {
			return url.Values{"csrf": {c}, "decision": {"allow"}, "api_key": {"good-key-0123456789"}}.Encode()
		}, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"TH-04 foreign origin", func(c string) string {
			return url.Values{"csrf": {c}, "decision": {"allow"}, "api_key": {"good-key-0123456789"}}.Encode()
		}, map[string]string{"Origin": "https://evil.example"}, 403},
		{"TH-47 oversized form", func(c string) string { return url.Values{"csrf": {c}, "api_key": {strings.Repeat("k", 9000)}}.Encode() }, nil, 413},
		{"TH-09 two keys", func(c string) string {
			return url.Values{"csrf": {c}, "decision": {"allow"}, "api_key": {"a", "b"}}.Encode()
		}, nil, 400},
		{"wrong content type", func(c string) string { return "{}" }, map[string]string{"Content-Type": "application/json"}, 400},
		{"empty key", func(c string) string {
			return url.Values{"csrf": {c}, "decision": {"allow"}, "api_key": {"  "}}.Encode()
		}, nil, 400},
		{"key with spaces", func(c string) string {
			return url.Values{"csrf": {c}, "decision": {"allow"}, "api_key": {"good key"}}.Encode()
		}, nil, 400},
		{"key with control characters", func(c string) string {
			return url.Values{"csrf": {c}, "decision": {"allow"}, "api_key": {"good\x00key"}}.Encode()
		}, nil, 400},
		{"key too long", func(c string) string {
			return url.Values{"csrf": {c}, "decision": {"allow"}, "api_key": {strings.Repeat("k", 5000)}}.Encode()
		}, nil, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newFlowEnv(t)
			e.up.AddKey("good-key-0123456789")
			csrf := start(e)
			r := post(e, tc.form(csrf), tc.hdr)
			page := body(t, r)
			assert.Equal(t, tc.status, r.StatusCode, page)
			assert.Empty(t, r.Header.Get("Location"))
			assert.NotContains(t, page, "good-key-0123456789", "a key is never echoed")
			e.storedNothing(t)
			// The flow is intact: the genuine key still goes through.
			r = post(e, url.Values{"csrf": {csrf}, "decision": {"allow"}, "api_key": {"good-key-0123456789"}}.Encode(), nil)
			assert.Equal(t, http.StatusSeeOther, r.StatusCode, body(t, r))
		})
	}

	t.Run("cancel sends access_denied with state", func(t *testing.T) {
		e := newFlowEnv(t)
		csrf := start(e)
		r := post(e, url.Values{"csrf": {csrf}, "decision": {"cancel"}}.Encode(), nil)
		require.Equal(t, http.StatusFound, r.StatusCode)
		q := mustQuery(t, r.Header.Get("Location"))
		assert.Equal(t, "access_denied", q.Get("error"))
		assert.Equal(t, "st-key", q.Get("state"))
		e.storedNothing(t)
	})
}
