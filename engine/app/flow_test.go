package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/app"
	"github.com/unfurld/unfurld/engine/clock/clocktest"
	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/notion/notiontest"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

const notionRedirect = "https://notion.so/externalIntegrationAuthCallback"

// notionFacingSecret is pair A's secret: what Notion presents on our token
// URL (protocol 1.2).
const notionFacingSecret = "notion-facing-secret-0123456789abcdef"

// adminToken guards the /admin routes.
const adminToken = "admin-token-0123456789abcdef0123456789"

const flowConfig = `
server:
  mode: development
  public_url: PUBLIC
  secret_keys: "KEYS"
  admin_token: "` + adminToken + `"
  log: {level: debug}
storage:
  path: DATA/unfurld.db
notion:
  api_base_url: NOTION
providers:
  - name: tracker
    display_name: Tracker
    dev: Acme Inc
    notion:
      client_id: tracker
      client_secret: "` + notionFacingSecret + `"
      integration_client_id: ` + notiontest.DefaultClientID + `
      integration_client_secret: ` + notiontest.DefaultClientSecret + `
      access_token_ttl: 1h
      refresh_grace: 30s
    upstream:
      base_url: UP/api
      allow_private_networks: true
      auth:
        type: oauth2
        oauth2:
          authorize_url: UP/oauth/authorize
          token_url: UP/oauth/token
          client_id: ` + upstreamClientID + `
          client_secret: ` + upstreamClientSecret + `
          scopes: [read]
          revocation: {url: UP/oauth/revoke}
        identity: {url: /user, key: '"tracker:" + string(identity.id)', name: identity.login}
    patterns:
      - name: item
        regex: '^https://tracker\.example\.com/items/(?<id>\d{1,10})$'
        samples: [https://tracker.example.com/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: title}
          - {id: state, kind: enum, path: state}
  - name: keyed
    display_name: Keyed
    dev: Acme Inc
    notion:
      client_id: keyed
      client_secret: "` + notionFacingSecret + `-keyed"
      integration_client_id: ` + notiontest.DefaultClientID + `
      integration_client_secret: ` + notiontest.DefaultClientSecret + `
    upstream:
      base_url: UP/api
      allow_private_networks: true
      auth:
        type: api_key
        api_key: {help_text: "Paste a personal API key.", help_url: "https://keyed.example.com/settings/keys"}
        identity: {url: /user, key: '"keyed:" + string(identity.id)', name: identity.login}
    patterns:
      - name: item
        regex: '^https://keyed\.example\.com/items/(?<id>\d{1,10})$'
        samples: [https://keyed.example.com/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: title}
`

// flowEnv is the whole cast: our server, a fake upstream service with its
// OAuth server, a fake Notion, a browser with a cookie jar.
type flowEnv struct {
	t       *testing.T
	cfg     *config.Config
	reg     *provider.Registry
	logger  *slog.Logger
	app     *app.App
	srv     *httptest.Server
	up      *upstreamtest.Server
	notion  *notiontest.Server
	st      store.Store
	dbPath  string
	browser *http.Client
	logs    *syncBuffer
	// clock is the time of every component; it moves when a test says.
	clock *clocktest.Fake
	// apps are the replicas (one unless buildFlowEnv was given several
	// stores); app is the first. served counts the requests they served.
	apps   []*app.App
	served atomic.Int64
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newFlowEnv builds the cast; edits rewrite the config text first.
func newFlowEnv(t *testing.T, edits ...func(yml string) string) *flowEnv {
	return buildFlowEnv(t, nil, edits...)
}

// buildFlowEnv builds the cast over one bbolt store, or, given replicas,
// one app per store behind the one public URL, each request handed to
// the next app in turn as a round-robin load balancer would.
func buildFlowEnv(t *testing.T, replicas []store.Store, edits ...func(yml string) string) *flowEnv {
	e := &flowEnv{t: t, clock: clocktest.New(time.Now().UTC().Truncate(time.Second)), logs: &syncBuffer{}}
	e.up = newFakeService(t)
	setItem(e.up, "1", `{"title":"Fix the flux capacitor","state":"open"}`)
	e.notion = notiontest.New(t)

	var handler http.Handler = http.NotFoundHandler()
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)

	dir := t.TempDir()
	yml := strings.NewReplacer(
		"PUBLIC", e.srv.URL, "KEYS", sealing.GenerateKeySpec("k1"), "DATA", dir,
		"NOTION", e.notion.URL(), "UP", e.up.URL(),
	).Replace(flowConfig)
	for _, edit := range edits {
		yml = edit(yml)
	}
	cfg, errs := config.Parse("flow.yaml", []byte(yml), config.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.False(t, errs.HasErrors(), "%v", errs)
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	comp, berrs := compiled.Compile(cfg, compiled.Options{Logger: logger, Now: e.clock.Now})
	require.NotNil(t, comp, "%v", berrs)
	reg := comp.Registry
	t.Cleanup(reg.Close)

	e.cfg, e.reg, e.logger = cfg, reg, logger
	if replicas == nil {
		e.dbPath = filepath.Join(dir, "unfurld.db")
		st, err := bolt.Open(e.dbPath, bolt.Options{LockTimeout: time.Second})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		replicas = []store.Store{st}
	}
	var handlers []http.Handler
	for _, st := range replicas {
		a, err := app.New(app.Options{Config: cfg, Registry: reg, Store: st, Logger: logger, Now: e.clock.Now})
		require.NoError(t, err)
		t.Cleanup(func() { _ = a.Store.Close() })
		e.apps = append(e.apps, a)
		handlers = append(handlers, a.Server.Handler())
	}
	e.app, e.st = e.apps[0], replicas[0]
	var turn atomic.Uint64
	handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := turn.Add(1) - 1
		e.served.Add(1)
		handlers[n%uint64(len(handlers))].ServeHTTP(w, r)
	})

	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	e.browser = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return e
}

// get fetches u with the browser, not following redirects.
func (e *flowEnv) get(u string) *http.Response {
	e.t.Helper()
	resp, err := e.browser.Get(u)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// postForm posts a form as the consent page's own form would.
func (e *flowEnv) postForm(path string, v url.Values) *http.Response {
	e.t.Helper()
	return e.post(path, v.Encode(), map[string]string{"Origin": e.srv.URL, "Sec-Fetch-Site": "same-origin"})
}

// post sends a urlencoded body to path with the browser (its cookies),
// with hdr set on top; tests of refused submissions pick their headers.
func (e *flowEnv) post(path, raw string, hdr map[string]string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(raw))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.browser.Do(req)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// authorizeURL is Notion's R1 redirect (protocol 3.1).
func (e *flowEnv) authorizeURL(notionCode, state string) string {
	v := url.Values{
		"code": {notionCode}, "client_id": {"tracker"}, "redirect_uri": {notionRedirect},
		"response_type": {"code"}, "state": {state},
	}
	return e.srv.URL + "/providers/tracker/authorize?" + v.Encode()
}

// connect runs R1 to R3 in the browser and returns our code from the
// redirect to Notion.
func (e *flowEnv) connect(notionCode, state string) string {
	e.t.Helper()
	return e.connectAs(notionCode, state, notiontest.TokenResponseJSON{AccessToken: "notion-access-" + notionCode + "-secretvalue", WorkspaceID: "ws-1", WorkspaceName: "Acme HQ", BotID: "bot-1"})
}

// connectAs is connect with Notion answering the code exchange with
// resp: another Notion user, owner or token.
func (e *flowEnv) connectAs(notionCode, state string, resp notiontest.TokenResponseJSON) string {
	t := e.t
	t.Helper()
	e.notion.AddCode(notionCode, resp)

	// R1: parameters move into a pending flow; the browser continues on a
	// clean URL (TH-03).
	r := e.get(e.authorizeURL(notionCode, state))
	require.Equal(t, http.StatusSeeOther, r.StatusCode, body(t, r))
	require.Equal(t, e.srv.URL+"/providers/tracker/connect", r.Header.Get("Location"))
	assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	assert.Equal(t, "no-referrer", r.Header.Get("Referrer-Policy"))

	// The clean URL sends the browser to the upstream's sign-in.
	r = e.get(r.Header.Get("Location"))
	require.Equal(t, http.StatusSeeOther, r.StatusCode, body(t, r))
	up := r.Header.Get("Location")
	require.True(t, strings.HasPrefix(up, e.up.AuthorizeURL()+"?"), up)
	assert.NotContains(t, up, notionCode, "Notion's code never travels to the upstream")

	// The upstream approves and redirects to our per-provider callback.
	r = e.get(up)
	require.Equal(t, http.StatusFound, r.StatusCode, body(t, r))
	cb := r.Header.Get("Location")
	require.True(t, strings.HasPrefix(cb, e.srv.URL+"/providers/tracker/callback?"), cb)
	r = e.get(cb)
	require.Equal(t, http.StatusSeeOther, r.StatusCode, body(t, r))

	// Consent names the service and the upstream account.
	r = e.get(r.Header.Get("Location"))
	page := body(t, r)
	require.Equal(t, http.StatusOK, r.StatusCode, page)
	assert.Contains(t, page, "Tracker")
	assert.Contains(t, page, "octo-user")
	assert.Contains(t, r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
	assert.Contains(t, r.Header.Get("Content-Security-Policy"), "https://notion.so", "form-action allows the redirect to Notion (TH-55)")
	m := csrfField.FindStringSubmatch(page)
	require.NotNil(t, m, "consent page has a csrf field")

	// Allow: R2 at Notion, the connection stored, R3 to Notion.
	r = e.postForm("/providers/tracker/consent", url.Values{"csrf": {m[1]}, "decision": {"allow"}})
	require.Equal(t, http.StatusFound, r.StatusCode, body(t, r))
	loc, err := url.Parse(r.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "notion.so", loc.Host)
	assert.Equal(t, "/externalIntegrationAuthCallback", loc.Path)
	assert.Equal(t, state, loc.Query().Get("state"), "state echoed byte-identical (TH-11)")
	code := loc.Query().Get("code")
	require.True(t, strings.HasPrefix(code, issuer.PrefixCode), code)
	return code
}

// tokenCall is R4/R6: Notion at our token URL (protocol 2.1).
func (e *flowEnv) tokenCall(v url.Values) (int, map[string]any) {
	t := e.t
	t.Helper()
	v.Set("client_id", "tracker")
	v.Set("client_secret", notionFacingSecret)
	resp, err := http.PostForm(e.srv.URL+"/providers/tracker/token", v)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"), "TH-22")
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

// unfurl is R5 (protocol 5.1).
func (e *flowEnv) unfurl(token, uri string) (int, string) {
	t := e.t
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/providers/tracker/unfurl", strings.NewReader(`{"uri":"`+uri+`"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return resp.StatusCode, body(t, resp)
}

// TestFullFlow drives issue 3 end to end through the real HTTP server:
// authorize, upstream sign-in, consent, Notion's code exchange, redirect,
// token URL, unfurl as that user, upstream refresh, Notion refresh,
// reconnect marking, deletion, and finally a raw scan of the database
// file for secrets (TH-41).
func TestFullFlow(t *testing.T) {
	e := newFlowEnv(t)
	code := e.connect("notion-code-1", "tga@YNV9&cfw4#yrv0thw")

	// R2 went to Notion exactly as protocol 4 says.
	calls := e.notion.TokenCalls()
	require.Len(t, calls, 1)
	assert.True(t, calls[0].BasicOK)
	assert.Equal(t, notiontest.DefaultClientID, calls[0].ClientID)
	assert.Equal(t, "notion-code-1", calls[0].Body.Code)
	require.NotNil(t, calls[0].Body.ExternalAccount)
	assert.Equal(t, "tracker:4242", calls[0].Body.ExternalAccount.Key, "stable upstream id, not a secret (TH-14)")
	assert.Equal(t, "octo-user", calls[0].Body.ExternalAccount.Name)
	assert.Equal(t, 1, e.up.CountTokenCalls("authorization_code"), "exactly one upstream code exchange (TH-08)")

	conns, err := e.st.ListConnections(t.Context(), "tracker")
	require.NoError(t, err)
	require.Len(t, conns, 1)
	assert.Equal(t, "ws-1", conns[0].WorkspaceID)

	// R4: Notion redeems our code; leg B sends redirect_uri without a
	// scheme (protocol 2.1).
	status, tok := e.tokenCall(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"notion.so/externalIntegrationAuthCallback"}})
	require.Equal(t, http.StatusOK, status, tok)
	access, _ := tok["access_token"].(string)
	refresh, _ := tok["refresh_token"].(string)
	require.NotEmpty(t, access)
	require.NotEmpty(t, refresh, "access_token_ttl set: refresh token issued")
	assert.EqualValues(t, 3600, tok["expires_in"])

	// A replayed code is refused and revokes what it issued (TH-16).
	status, replay := e.tokenCall(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedirect}})
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", replay["error"])
	st, _ := e.unfurl(access, "https://tracker.example.com/items/1")
	assert.Equal(t, http.StatusUnauthorized, st, "tokens of a replayed code are revoked")

	// Connect again: the same upstream account and workspace leaves one
	// connection (issue 3 item 4).
	code = e.connect("notion-code-2", "second-state")
	conns, err = e.st.ListConnections(t.Context(), "tracker")
	require.NoError(t, err)
	require.Len(t, conns, 1, "reconnect upserts")
	status, tok = e.tokenCall(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedirect}})
	require.Equal(t, http.StatusOK, status, tok)
	access, refresh = tok["access_token"].(string), tok["refresh_token"].(string)

	// R5: the unfurl runs with this user's upstream token.
	st, out := e.unfurl(access, "https://tracker.example.com/items/1")
	require.Equal(t, http.StatusOK, st, out)
	assert.Contains(t, out, "Fix the flux capacitor")
	assert.True(t, strings.HasPrefix(lastAuth(e.up), "Bearer "+upstreamtest.AccessPrefix), "the connection's own upstream token is sent")
	firstUpstream := lastAuth(e.up)

	// The upstream token expires: the next unfurl refreshes it first,
	// once, and uses the new one (TH-37).
	e.clock.Advance(2 * time.Hour)
	setItem(e.up, "1", `{"title":"Fix the flux capacitor, again","state":"closed"}`)
	// Our own access token expired too (1h): Notion refreshes it (R6).
	status, tok = e.tokenCall(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
	require.Equal(t, http.StatusOK, status, tok)
	access = tok["access_token"].(string)
	st, out = e.unfurl(access, "https://tracker.example.com/items/1")
	require.Equal(t, http.StatusOK, st, out)
	assert.Contains(t, out, "again")
	assert.Equal(t, 1, e.up.CountTokenCalls("refresh_token"))
	assert.NotEqual(t, firstUpstream, lastAuth(e.up), "refreshed upstream token in use")

	// The upstream revokes the grant: a 401 and a refused refresh mark
	// the connection, and the unfurl asks the user to reconnect.
	e.up.ExpireAccessTokens()
	e.up.FailRefresh(http.StatusBadRequest, "invalid_grant")
	setItem(e.up, "1", `{"title":"changed so the cache misses","state":"open"}`)
	e.clock.Advance(time.Minute) // past the result cache
	st, out = e.unfurl(access, "https://tracker.example.com/items/1")
	require.Equal(t, http.StatusOK, st)
	assert.Contains(t, out, `"error"`)
	assert.Contains(t, out, "401")
	c, err := e.st.GetConnection(t.Context(), conns[0].ID)
	require.NoError(t, err)
	assert.Equal(t, store.StatusReconnect, c.Status)
	// Why, for `unfurld status --connection`: the refused refresh.
	assert.Equal(t, "upstream token refresh", c.Reconnect.Call)
	assert.Equal(t, http.StatusBadRequest, c.Reconnect.Status)
	assert.Contains(t, c.Reconnect.Detail, "invalid_grant")
	assert.False(t, c.Reconnect.At.IsZero())
	assert.False(t, c.UpstreamRefreshedAt.IsZero(), "the earlier refresh is on record")

	// Deletion (protocol 8): every record of the connection goes.
	req, err := http.NewRequest(http.MethodDelete, e.srv.URL+"/providers/tracker/deleted", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = e.st.GetConnection(t.Context(), conns[0].ID)
	assert.ErrorIs(t, err, store.ErrNotFound)
	st, _ = e.unfurl(access, "https://tracker.example.com/items/1")
	assert.Equal(t, http.StatusUnauthorized, st)

	// Nothing secret in the logs (TH-49).
	logs := e.logs.String()
	for _, secret := range []string{access, refresh, code, "notion-code-1", "notion-access-notion-code-2-secretvalue", upstreamtest.AccessPrefix, upstreamtest.RefreshPrefix, notionFacingSecret, upstreamClientSecret} {
		assert.NotContains(t, logs, secret)
	}

	// TH-41: a raw scan of the database file finds no secret in clear.
	require.NoError(t, e.st.Close())
	raw, err := os.ReadFile(e.dbPath)
	require.NoError(t, err)
	for _, secret := range []string{access, refresh, code, "notion-code-", "notion-access-", upstreamtest.AccessPrefix, upstreamtest.RefreshPrefix, upstreamtest.CodePrefix, notionFacingSecret, upstreamClientSecret, "tga@YNV9"} {
		assert.False(t, bytes.Contains(raw, []byte(secret)), "database file holds %q in clear", secret)
	}
}
