package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/cached"
)

// Pair A of the test providers (protocol 1.2).
const (
	trackerSecret = "tracker-client-secret-0123456789abcdef"
	wikiSecret    = "wiki-client-secret-0123456789abcdefgh"
	notionRedir   = "https://notion.so/externalIntegrationAuthCallback"
	tokenPath     = "/providers/tracker/token"
)

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// writeCounter counts successful writes that the token URL and the
// deleted callback can make, so a refused request can be shown to have
// changed nothing. failConsume makes ConsumeToken fail like a full disk.
type writeCounter struct {
	store.Store
	writes      atomic.Int64
	failConsume atomic.Bool
}

func (w *writeCounter) count(err error) error {
	if err == nil {
		w.writes.Add(1)
	}
	return err
}

func (w *writeCounter) CreateToken(ctx context.Context, t store.Token) error {
	return w.count(w.Store.CreateToken(ctx, t))
}

func (w *writeCounter) DeleteToken(ctx context.Context, d string) error {
	return w.count(w.Store.DeleteToken(ctx, d))
}

func (w *writeCounter) DeleteConnection(ctx context.Context, id string) error {
	return w.count(w.Store.DeleteConnection(ctx, id))
}

func (w *writeCounter) UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error {
	return w.count(w.Store.UpdateConnection(ctx, id, fn))
}

func (w *writeCounter) DeleteSubscription(ctx context.Context, k store.SubscriptionKey) error {
	return w.count(w.Store.DeleteSubscription(ctx, k))
}

func (w *writeCounter) ConsumeToken(ctx context.Context, c store.Consume) ([]store.Token, store.Token, error) {
	if w.failConsume.Load() {
		return nil, store.Token{}, errors.New("commit: no space left on device")
	}
	toks, old, err := w.Store.ConsumeToken(ctx, c)
	// A replay writes too: it revokes the grant.
	if err == nil || errors.Is(err, store.ErrReplayed) {
		w.writes.Add(1)
	}
	return toks, old, err
}

func (w *writeCounter) RevokeGrant(ctx context.Context, id string) (int, error) {
	n, err := w.Store.RevokeGrant(ctx, id)
	if n > 0 {
		w.writes.Add(1)
	}
	return n, err
}

// oauthHarness is the shared harness with pair A secrets, a keyring, a
// write-counting store and captured logs.
type oauthHarness struct {
	*harness
	wc   *writeCounter
	logs *syncBuffer
	iss  *issuer.Issuer
}

// withNotion sets the test providers' pair A and the tracker's access
// token lifetime.
func withNotion(accessTTL time.Duration) option {
	return func(c *config.Config) {
		for i := range c.Providers {
			p := &c.Providers[i]
			switch p.Name {
			case "tracker":
				p.Notion.ClientSecret = trackerSecret
				p.Notion.AccessTokenTTL = config.Duration(accessTTL)
			case "wiki":
				p.Notion.ClientSecret = wikiSecret
			}
		}
	}
}

func newOAuthHarness(t testing.TB, accessTTL time.Duration, opts ...option) *oauthHarness {
	t.Helper()
	h := newHarness(t, append([]option{withNotion(accessTTL)}, opts...)...)
	kr, err := sealing.NewKeyring("t1", bytes.Repeat([]byte{7}, 32), nil)
	require.NoError(t, err)
	wc := &writeCounter{Store: h.raw}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.st = cached.New(wc, cached.Options{})
	h.srv = server.New(server.Config{Settings: h.settings, Store: h.st, Registry: h.reg, Keyring: kr, Logger: logger, Now: h.clock.Now})
	return &oauthHarness{harness: h, wc: wc, logs: logs, iss: &issuer.Issuer{Store: h.st, Keyring: kr, Now: h.clock.Now}}
}

// code seeds a connection of provider and mints our code for it, as the
// authorize flow does (protocol 1.5 R3).
func (h *oauthHarness) code(providerName string) (code, connID string) {
	h.t.Helper()
	ctx := h.t.Context()
	connID = issuer.NewID()
	require.NoError(h.t, h.st.CreateConnection(ctx, store.Connection{ID: connID, Provider: providerName, AccountKey: "acct-" + connID, Status: store.StatusActive, CreatedAt: h.clock.Now()}))
	code, err := h.iss.MintCode(ctx, providerName, connID, notionRedir)
	require.NoError(h.t, err)
	return code, connID
}

// tokenReq describes one call to a token URL.
type tokenReq struct {
	method      string
	path        string // default tokenPath
	contentType string // default form; "-" for none
	body        string
	header      map[string]string
	remote      string
}

func (h *oauthHarness) send(r tokenReq) *httptest.ResponseRecorder {
	h.t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.path == "" {
		r.path = tokenPath
	}
	req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	switch r.contentType {
	case "":
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	case "-":
	default:
		req.Header.Set("Content-Type", r.contentType)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.remote != "" {
		req.RemoteAddr = r.remote
	}
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	return rec
}

// notionForm is leg B exactly as protocol 2.1 documents it: the form, the
// secret in the body, redirect_uri without a scheme.
func notionForm(code string) string {
	return url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"client_id":     {"tracker"},
		"client_secret": {trackerSecret},
		"redirect_uri":  {"notion.so/externalIntegrationAuthCallback"},
	}.Encode()
}

func refreshForm(rt string) string {
	return url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {rt},
		"client_id":     {"tracker"},
		"client_secret": {trackerSecret},
		"redirect_uri":  {notionRedir},
	}.Encode()
}

type tokenBody struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
}

// assertTokenHeaders checks what every token URL answer carries (TH-22,
// protocol 2.3).
func assertTokenHeaders(t testing.TB, rec *httptest.ResponseRecorder) {
	t.Helper()
	assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	assert.Equal(t, "no-cache", rec.Header().Get("Pragma"))
	assert.Equal(t, "application/json;charset=UTF-8", rec.Header().Get("Content-Type"))
}

func decodeToken(t testing.TB, rec *httptest.ResponseRecorder) tokenBody {
	t.Helper()
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assertTokenHeaders(t, rec)
	var tb tokenBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &tb))
	require.NotEmpty(t, tb.AccessToken)
	return tb
}

// oauthErrorOf decodes an RFC 6749 5.2 body and checks it holds nothing
// but error and error_description.
func oauthErrorOf(t testing.TB, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m), rec.Body.String())
	for k := range m {
		assert.Contains(t, []string{"error", "error_description"}, k)
	}
	code, _ := m["error"].(string)
	return code
}

func TestTokenAuthorizationCodeLegB(t *testing.T) {
	h := newOAuthHarness(t, 0)
	code, _ := h.code("tracker")

	tb := decodeToken(t, h.send(tokenReq{body: notionForm(code)}))

	// Protocol 2.3: long-lived by default, no refresh_token, no expires_in.
	assert.Equal(t, "bearer", tb.TokenType)
	assert.Empty(t, tb.RefreshToken)
	assert.Zero(t, tb.ExpiresIn)
	// Notion unfurls with it (R5).
	rec := h.unfurl("tracker", tb.AccessToken, "https://tracker.example.com/acme/items/1")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, []string{"attributes"}, decodeEnvelope(t, rec).Operations[0].Path)
}

func TestTokenClientAuthVariantsProtocol21(t *testing.T) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("tracker:"+url.QueryEscape(trackerSecret)))
	tests := []struct {
		name string
		req  func(code string) tokenReq
	}{
		{"HTTP Basic", func(code string) tokenReq {
			return tokenReq{
				body:   url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedir}}.Encode(),
				header: map[string]string{"Authorization": basic},
			}
		}},
		{"HTTP Basic with client_id in the body too", func(code string) tokenReq {
			return tokenReq{
				body:   url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"tracker"}}.Encode(),
				header: map[string]string{"Authorization": basic},
			}
		}},
		{"JSON body", func(code string) tokenReq {
			b, _ := json.Marshal(map[string]any{"grant_type": "authorization_code", "code": code, "client_id": "tracker", "client_secret": trackerSecret, "extra": map[string]int{"n": 1}})
			return tokenReq{contentType: "application/json; charset=utf-8", body: string(b)}
		}},
		{"form with charset", func(code string) tokenReq {
			return tokenReq{contentType: "application/x-www-form-urlencoded; charset=UTF-8", body: notionForm(code)}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newOAuthHarness(t, 0)
			code, _ := h.code("tracker")
			decodeToken(t, h.send(tc.req(code)))
		})
	}
}

// TestTokenBadInputs is the table of security.md's token-endpoint threats:
// each request is refused with the right status, RFC 6749 body and
// headers, writes nothing, and leaves the code redeemable.
func TestTokenBadInputs(t *testing.T) {
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	}
	form := func(code string, edit func(url.Values)) string {
		v, _ := url.ParseQuery(notionForm(code))
		edit(v)
		return v.Encode()
	}
	tests := []struct {
		name       string
		req        func(h *oauthHarness, code string) tokenReq
		status     int
		error      string
		wwwAuth    bool
		wantHeader map[string]string
	}{
		{"TH-21 GET", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{method: http.MethodGet, path: tokenPath + "?" + notionForm(code)}
		}, 405, "invalid_request", false, map[string]string{"Allow": "POST"}},
		{"TH-21 PUT", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{method: http.MethodPut, body: notionForm(code)}
		}, 405, "invalid_request", false, map[string]string{"Allow": "POST"}},
		{"TH-21 secret in the query", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{path: tokenPath + "?client_secret=" + trackerSecret, body: notionForm(code)}
		}, 400, "invalid_request", false, nil},
		{"TH-21 everything in the query", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{path: tokenPath + "?" + notionForm(code)}
		}, 400, "invalid_request", false, nil},
		{"TH-21 Basic and body secret", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: notionForm(code), header: map[string]string{"Authorization": basic("tracker", trackerSecret)}}
		}, 400, "invalid_request", false, nil},
		{"TH-21 Basic and another body client_id", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{
				body:   url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"wiki"}}.Encode(),
				header: map[string]string{"Authorization": basic("tracker", trackerSecret)},
			}
		}, 400, "invalid_request", false, nil},
		{"TH-21 text/plain", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{contentType: "text/plain", body: notionForm(code)}
		}, 415, "invalid_request", false, nil},
		{"TH-21 no content type", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{contentType: "-", body: notionForm(code)}
		}, 415, "invalid_request", false, nil},
		{"TH-09 code twice", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: notionForm(code) + "&code=" + code}
		}, 400, "invalid_request", false, nil},
		{"TH-09 client_secret twice", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: notionForm(code) + "&client_secret=x"}
		}, 400, "invalid_request", false, nil},
		{"TH-09 JSON key twice", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{contentType: "application/json", body: `{"grant_type":"authorization_code","code":"` + code + `","code":"x","client_id":"tracker","client_secret":"` + trackerSecret + `"}`}
		}, 400, "invalid_request", false, nil},
		{"JSON with trailing data", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{contentType: "application/json", body: `{"grant_type":"authorization_code","code":"` + code + `","client_id":"tracker","client_secret":"` + trackerSecret + `"}{}`}
		}, 400, "invalid_request", false, nil},
		{"JSON code not a string", func(_ *oauthHarness, _ string) tokenReq {
			return tokenReq{contentType: "application/json", body: `{"grant_type":"authorization_code","code":["x"],"client_id":"tracker","client_secret":"` + trackerSecret + `"}`}
		}, 400, "invalid_request", false, nil},
		{"JSON array", func(_ *oauthHarness, _ string) tokenReq {
			return tokenReq{contentType: "application/json", body: `[]`}
		}, 400, "invalid_request", false, nil},
		{"malformed form", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: notionForm(code) + "&x=%zz"}
		}, 400, "invalid_request", false, nil},
		{"invalid UTF-8", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: notionForm(code) + "&x=\xff"}
		}, 400, "invalid_request", false, nil},
		{"TH-47 body over 16 KiB", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: notionForm(code) + "&pad=" + strings.Repeat("a", 16<<10)}
		}, 413, "invalid_request", false, nil},
		{"TH-19 wrong secret", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: form(code, func(v url.Values) { v.Set("client_secret", wikiSecret) })}
		}, 401, "invalid_client", false, nil},
		{"TH-19 unknown client", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: form(code, func(v url.Values) { v.Set("client_id", "nobody") })}
		}, 401, "invalid_client", false, nil},
		{"TH-15 another provider's pair", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: form(code, func(v url.Values) { v.Set("client_id", "wiki"); v.Set("client_secret", wikiSecret) })}
		}, 401, "invalid_client", false, nil},
		{"no client credentials", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: form(code, func(v url.Values) { v.Del("client_id"); v.Del("client_secret") })}
		}, 401, "invalid_client", false, nil},
		{"empty client secret", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: form(code, func(v url.Values) { v.Set("client_secret", "") })}
		}, 401, "invalid_client", false, nil},
		{"TH-19 wrong secret with Basic", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{
				body:   url.Values{"grant_type": {"authorization_code"}, "code": {code}}.Encode(),
				header: map[string]string{"Authorization": basic("tracker", "wrong")},
			}
		}, 401, "invalid_client", true, nil},
		{"Basic not base64", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{
				body:   url.Values{"grant_type": {"authorization_code"}, "code": {code}}.Encode(),
				header: map[string]string{"Authorization": "Basic !!!"},
			}
		}, 401, "invalid_client", true, nil},
		{"bearer instead of client auth", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{
				body:   url.Values{"grant_type": {"authorization_code"}, "code": {code}}.Encode(),
				header: map[string]string{"Authorization": "Bearer " + code},
			}
		}, 401, "invalid_client", true, nil},
		{"grant_type missing", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: form(code, func(v url.Values) { v.Del("grant_type") })}
		}, 400, "invalid_request", false, nil},
		{"grant_type password", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: form(code, func(v url.Values) { v.Set("grant_type", "password") })}
		}, 400, "unsupported_grant_type", false, nil},
		{"code missing", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: form(code, func(v url.Values) { v.Del("code") })}
		}, 400, "invalid_request", false, nil},
		{"unknown code", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: form(code, func(v url.Values) { v.Set("code", issuer.PrefixCode+"AAAA") })}
		}, 400, "invalid_grant", false, nil},
		{"TH-25 access token as code", func(h *oauthHarness, code string) tokenReq {
			tok, _ := h.token("tracker")
			return tokenReq{body: form(code, func(v url.Values) { v.Set("code", tok) })}
		}, 400, "invalid_grant", false, nil},
		{"TH-25 code as refresh token", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: refreshForm(code)}
		}, 400, "invalid_grant", false, nil},
		{"TH-18 redirect_uri of another host", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{body: form(code, func(v url.Values) { v.Set("redirect_uri", "https://evil.example/externalIntegrationAuthCallback") })}
		}, 400, "invalid_grant", false, nil},
		{"TH-18 code on another provider's token URL", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{path: "/providers/wiki/token", body: form(code, func(v url.Values) { v.Set("client_id", "wiki"); v.Set("client_secret", wikiSecret) })}
		}, 400, "invalid_grant", false, nil},
		{"unknown provider", func(_ *oauthHarness, code string) tokenReq {
			return tokenReq{path: "/providers/nope/token", body: notionForm(code)}
		}, 404, "invalid_request", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newOAuthHarness(t, 0)
			code, _ := h.code("tracker")
			r := tc.req(h, code)
			before := h.wc.writes.Load()

			rec := h.send(r)

			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			assertTokenHeaders(t, rec)
			assert.Equal(t, tc.error, oauthErrorOf(t, rec))
			assert.NotContains(t, rec.Body.String(), "access_token")
			if tc.wwwAuth {
				assert.Contains(t, rec.Header().Get("WWW-Authenticate"), "Basic")
			} else {
				assert.Empty(t, rec.Header().Get("WWW-Authenticate"))
			}
			for k, v := range tc.wantHeader {
				assert.Equal(t, v, rec.Header().Get(k), k)
			}
			assert.Equal(t, before, h.wc.writes.Load(), "a refused request writes nothing")

			// The code was not burned (TH-18): Notion's real request works.
			decodeToken(t, h.send(tokenReq{body: notionForm(code)}))
		})
	}
}

func TestTokenUnknownClientAndWrongSecretAnswerAlikeTH19(t *testing.T) {
	h := newOAuthHarness(t, 0)
	code, _ := h.code("tracker")
	wrong := h.send(tokenReq{body: strings.Replace(notionForm(code), "client_secret=", "client_secret=x", 1)})
	unknown := h.send(tokenReq{body: strings.Replace(notionForm(code), "client_id=tracker", "client_id=trackerx", 1)})
	require.Equal(t, http.StatusUnauthorized, wrong.Code)
	assert.Equal(t, wrong.Code, unknown.Code)
	assert.Equal(t, wrong.Body.String(), unknown.Body.String())
	// Headers match too, but for the per-request id.
	wrong.Header().Del("X-Request-Id")
	unknown.Header().Del("X-Request-Id")
	assert.Equal(t, wrong.Header(), unknown.Header())
}

func TestTokenCodeReplayRevokesTH16(t *testing.T) {
	h := newOAuthHarness(t, 0)
	code, _ := h.code("tracker")
	uri := "https://tracker.example.com/acme/items/1"
	tb := decodeToken(t, h.send(tokenReq{body: notionForm(code)}))
	require.Equal(t, http.StatusOK, h.unfurl("tracker", tb.AccessToken, uri).Code)

	rec := h.send(tokenReq{body: notionForm(code)})

	require.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Equal(t, "invalid_grant", oauthErrorOf(t, rec))
	assertTokenHeaders(t, rec)
	assert.Equal(t, http.StatusUnauthorized, h.unfurl("tracker", tb.AccessToken, uri).Code,
		"the token issued from the replayed code is revoked")
}

func TestTokenCodeExpiredTH17(t *testing.T) {
	h := newOAuthHarness(t, 0)
	code, _ := h.code("tracker")
	h.clock.Advance(issuer.CodeTTL)

	rec := h.send(tokenReq{body: notionForm(code)})

	require.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Equal(t, "invalid_grant", oauthErrorOf(t, rec))
}

func TestTokenParallelRedemptionsTH16(t *testing.T) {
	h := newOAuthHarness(t, 0)
	code, _ := h.code("tracker")
	recs := make([]*httptest.ResponseRecorder, 20)
	var wg sync.WaitGroup
	for i := range recs {
		wg.Go(func() { recs[i] = h.send(tokenReq{body: notionForm(code)}) })
	}
	wg.Wait()
	ok := 0
	for _, rec := range recs {
		assertTokenHeaders(t, rec)
		if rec.Code == http.StatusOK {
			ok++
			continue
		}
		require.Equal(t, http.StatusBadRequest, rec.Code)
		assert.Equal(t, "invalid_grant", oauthErrorOf(t, rec))
	}
	assert.Equal(t, 1, ok, "exactly one redemption succeeds")
}

func TestTokenRefreshRotationTH23(t *testing.T) {
	h := newOAuthHarness(t, time.Hour)
	code, _ := h.code("tracker")
	first := decodeToken(t, h.send(tokenReq{body: notionForm(code)}))
	require.NotEmpty(t, first.RefreshToken)
	assert.Equal(t, int64(3600), first.ExpiresIn, "protocol 2.3: expires_in with refresh_token")

	second := decodeToken(t, h.send(tokenReq{body: refreshForm(first.RefreshToken)}))
	assert.NotEqual(t, first.AccessToken, second.AccessToken)
	assert.NotEqual(t, first.RefreshToken, second.RefreshToken)
	assert.Equal(t, int64(3600), second.ExpiresIn)
	assert.Equal(t, http.StatusOK, h.unfurl("tracker", second.AccessToken, "https://tracker.example.com/acme/items/1").Code)

	// The new refresh token rotates in turn.
	third := decodeToken(t, h.send(tokenReq{body: refreshForm(second.RefreshToken)}))
	assert.NotEqual(t, second.RefreshToken, third.RefreshToken)
}

func TestTokenParallelRefreshesTH24(t *testing.T) {
	h := newOAuthHarness(t, time.Hour)
	code, _ := h.code("tracker")
	first := decodeToken(t, h.send(tokenReq{body: notionForm(code)}))

	recs := make([]*httptest.ResponseRecorder, 20)
	var wg sync.WaitGroup
	for i := range recs {
		wg.Go(func() { recs[i] = h.send(tokenReq{body: refreshForm(first.RefreshToken)}) })
	}
	wg.Wait()
	pairs := map[tokenBody]int{}
	for _, rec := range recs {
		assertTokenHeaders(t, rec)
		if rec.Code == http.StatusOK {
			var tb tokenBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &tb))
			pairs[tb]++
			continue
		}
		require.Equal(t, http.StatusBadRequest, rec.Code)
		assert.Equal(t, "invalid_grant", oauthErrorOf(t, rec))
	}
	require.Len(t, pairs, 1, "exactly one successor pair")
	for pair := range pairs {
		// The one successor is live: it unfurls and refreshes.
		assert.Equal(t, http.StatusOK, h.unfurl("tracker", pair.AccessToken, "https://tracker.example.com/acme/items/1").Code)
		decodeToken(t, h.send(tokenReq{body: refreshForm(pair.RefreshToken)}))
	}
}

func TestTokenRefreshAfterGraceRevokesGrantTH23(t *testing.T) {
	h := newOAuthHarness(t, time.Hour)
	code, _ := h.code("tracker")
	uri := "https://tracker.example.com/acme/items/1"
	first := decodeToken(t, h.send(tokenReq{body: notionForm(code)}))
	second := decodeToken(t, h.send(tokenReq{body: refreshForm(first.RefreshToken)}))

	// Inside the default 30 s grace a retry gets the same pair.
	h.clock.Advance(10 * time.Second)
	assert.Equal(t, second, decodeToken(t, h.send(tokenReq{body: refreshForm(first.RefreshToken)})))

	h.clock.Advance(21 * time.Second)
	rec := h.send(tokenReq{body: refreshForm(first.RefreshToken)})
	require.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Equal(t, "invalid_grant", oauthErrorOf(t, rec))

	// The whole family is gone: both access tokens and the live refresh.
	for _, tok := range []string{first.AccessToken, second.AccessToken} {
		assert.Equal(t, http.StatusUnauthorized, h.unfurl("tracker", tok, uri).Code)
	}
	rec = h.send(tokenReq{body: refreshForm(second.RefreshToken)})
	require.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Equal(t, "invalid_grant", oauthErrorOf(t, rec))
}

func TestTokenStoreFailureIs503TH46(t *testing.T) {
	h := newOAuthHarness(t, 0)
	code, _ := h.code("tracker")
	h.wc.failConsume.Store(true)

	rec := h.send(tokenReq{body: notionForm(code)})

	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assertTokenHeaders(t, rec)
	assert.Equal(t, "temporarily_unavailable", oauthErrorOf(t, rec))
	assert.NotContains(t, rec.Body.String(), "no space", "internal error text stays inside")

	// Space is back: the same code works, it was never consumed.
	h.wc.failConsume.Store(false)
	decodeToken(t, h.send(tokenReq{body: notionForm(code)}))
}

func TestTokenFailedAuthRateLimitTH20(t *testing.T) {
	h := newOAuthHarness(t, 0)
	code, _ := h.code("tracker")
	wrong := strings.Replace(notionForm(code), "client_secret=", "client_secret=x", 1)
	const attacker = "198.51.100.7:4000"

	for i := range 10 {
		rec := h.send(tokenReq{body: wrong, remote: attacker})
		require.Equal(t, http.StatusUnauthorized, rec.Code, "attempt %d", i)
	}
	// The eleventh try from that address is refused before any check,
	// even with the right secret.
	rec := h.send(tokenReq{body: notionForm(code), remote: attacker})
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	assertTokenHeaders(t, rec)
	assert.Equal(t, "60", rec.Header().Get("Retry-After"))
	assert.Equal(t, "invalid_request", oauthErrorOf(t, rec))

	// Notion, calling from elsewhere, is not affected.
	decodeToken(t, h.send(tokenReq{body: notionForm(code), remote: "203.0.113.9:5000"}))

	// The window passes and the address may try again.
	h.clock.Advance(time.Minute)
	code2, _ := h.code("tracker")
	decodeToken(t, h.send(tokenReq{body: notionForm(code2), remote: attacker}))
}

// TestTokenNoLockoutByClientIDTH20TH50 plays the lockout attack: wrong
// secrets under the real (public) client id, from many IPv4 addresses,
// from many addresses of one IPv6 /64 and from many /64s, interleaved
// with the genuine client's redemption and refreshes from an address that
// never failed. Every attacking address ends up limited; the genuine
// client always gets through.
func TestTokenNoLockoutByClientIDTH20TH50(t *testing.T) {
	h := newOAuthHarness(t, time.Hour)
	code, _ := h.code("tracker")
	wrong := strings.Replace(notionForm(code), "client_secret=", "client_secret=x", 1)
	const notion = "203.0.113.9:5000"

	var attackers []string
	for i := range 40 {
		attackers = append(attackers,
			"198.51.100."+strconv.Itoa(i)+":1",        // IPv4, one address each
			"[2001:db8:1:2::"+strconv.Itoa(i+1)+"]:1", // one /64
			"[2001:db8:9:"+strconv.Itoa(i)+"::1]:1")   // a /64 each
	}
	// Each round is 4 tries per address, so after the third every
	// address is over its 10 failures a minute.
	attack := func() {
		for range 4 {
			for _, a := range attackers {
				rec := h.send(tokenReq{body: wrong, remote: a})
				require.Contains(t, []int{http.StatusUnauthorized, http.StatusTooManyRequests}, rec.Code)
			}
		}
	}

	attack()
	first := decodeToken(t, h.send(tokenReq{body: notionForm(code), remote: notion}))
	attack()
	second := decodeToken(t, h.send(tokenReq{body: refreshForm(first.RefreshToken), remote: notion}))
	attack()
	// Notion calls from many addresses; a new one is not limited either.
	decodeToken(t, h.send(tokenReq{body: refreshForm(second.RefreshToken), remote: "[2001:db8:ffff::1]:443"}))

	// The attackers are limited per address: a fresh address of the
	// attacked /64 is refused too, even with the right secret.
	code2, _ := h.code("tracker")
	for _, a := range []string{"198.51.100.3:9", "[2001:db8:1:2:abcd::1]:9", "[2001:db8:9:7::2]:9"} {
		rec := h.send(tokenReq{body: notionForm(code2), remote: a})
		assert.Equal(t, http.StatusTooManyRequests, rec.Code, a)
	}
}

func TestTokenIPv6SlashSixtyFourSharesALimitTH20(t *testing.T) {
	h := newOAuthHarness(t, 0)
	code, _ := h.code("tracker")
	wrong := strings.Replace(notionForm(code), "client_secret=", "client_secret=x", 1)
	for i := range 10 {
		rec := h.send(tokenReq{body: wrong, remote: "[2001:db8:1:2::" + strconv.Itoa(i+1) + "]:1"})
		require.Equal(t, http.StatusUnauthorized, rec.Code)
	}
	rec := h.send(tokenReq{body: notionForm(code), remote: "[2001:db8:1:2:ffff::1]:1"})
	assert.Equal(t, http.StatusTooManyRequests, rec.Code)
}

func TestTokenSecretsNeverLoggedTH49(t *testing.T) {
	h := newOAuthHarness(t, time.Hour)
	code, _ := h.code("tracker")
	var secrets []string
	secrets = append(secrets, code, trackerSecret)

	first := decodeToken(t, h.send(tokenReq{body: notionForm(code)}))
	second := decodeToken(t, h.send(tokenReq{body: refreshForm(first.RefreshToken)}))
	secrets = append(secrets, first.AccessToken, first.RefreshToken, second.AccessToken, second.RefreshToken)
	// Failures of every kind, with the secrets in the request.
	h.send(tokenReq{body: notionForm(code)})                                        // replay
	h.send(tokenReq{path: tokenPath + "?client_secret=" + trackerSecret, body: ""}) // query
	h.send(tokenReq{body: strings.Replace(notionForm(code), "client_secret=", "client_secret="+trackerSecret+"x", 1)})
	h.send(tokenReq{body: notionForm(code) + "&code=" + code})
	h.send(tokenReq{body: refreshForm(second.RefreshToken), header: map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("tracker:"+trackerSecret))}})
	h.wc.failConsume.Store(true)
	code2, _ := h.code("tracker")
	secrets = append(secrets, code2)
	h.send(tokenReq{body: notionForm(code2)})

	logs := h.logs.String()
	require.Contains(t, logs, "token request refused", "the refusals are audit-logged")
	require.Contains(t, logs, "token request failed")
	for _, s := range secrets {
		assert.NotContains(t, logs, s)
		// Nor any long piece of it.
		assert.NotContains(t, logs, s[len(s)-16:])
	}
}
