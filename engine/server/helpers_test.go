package server_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/clock/clocktest"
	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/cached"
	"github.com/unfurld/unfurld/engine/store/memory"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// testConfig is a two-provider configuration; UPSTREAM is replaced with
// the fake's URL.
const testConfig = `
server:
  mode: development
  unfurl_timeout: 2s
providers:
  - name: tracker
    display_name: Tracker
    dev: Acme Inc
    upstream:
      base_url: UPSTREAM/api
      allow_private_networks: true
      embed_hosts: [avatars.example.com]
      cache_ttl: 1m
      auth: {token: "sekrit-upstream-token"}
    errors:
      not_found: "That item does not exist"
    patterns:
      - name: item
        regex: '^https://tracker\.example\.com/(?<project>[a-z0-9-]{1,40})/items/(?<id>\d{1,10})(?:[?#].*)?$'
        samples: [https://tracker.example.com/acme/items/1]
        requests:
          - name: item
            url: /projects/{project}/items/{id}
        attributes:
          - {id: title, kind: title, path: title}
          - id: state
            kind: enum
            expr: item.state
            colors: {open: "#1a7f37", closed: "#8250df"}
          - {id: author, kind: plain_text, section: secondary, expr: 'item.author.name'}
          - {id: avatar, kind: image, section: avatar, path: author.avatar}
          - {id: updated, kind: datetime, section: secondary, path: updated_at}
          - {id: labels, kind: plain_text, section: secondary, expr: 'join(map(item.labels, .name), ", ")'}
          - {id: body, kind: plain_text, section: body, path: body, max_length: 20}
  - name: wiki
    upstream:
      base_url: UPSTREAM/wiki
      allow_private_networks: true
    patterns:
      - name: page
        regex: '^https://wiki\.example\.com/pages/(?<slug>[a-z-]{1,40})$'
        samples: [https://wiki.example.com/pages/home]
        requests:
          - {name: page, url: "/pages/{slug}"}
        attributes:
          - {id: title, kind: title, path: title}
`

const itemJSON = `{"title":"Fix the flux capacitor","state":"open","author":{"name":"Doc Brown","avatar":"https://avatars.example.com/u/1"},
"updated_at":"2026-11-20T10:11:12Z","labels":[{"name":"bug"},{"name":"p1"}],"body":"It needs 1.21 gigawatts to work properly."}`

type harness struct {
	t  testing.TB
	up *upstreamtest.Server
	// st is the shared cached store the server runs on; raw is the
	// store under it, for changes made behind its back (another process).
	st       *cached.Store
	raw      store.Store
	srv      *server.Server
	reg      *provider.Registry
	settings config.Server
	// clock is the server's time; tests move it.
	clock *clocktest.Fake
}

type option func(*config.Config)

func newHarness(t testing.TB, opts ...option) *harness {
	t.Helper()
	up := upstreamtest.New(t)
	up.Set("/api/projects/acme/items/1", upstreamtest.Response{Body: itemJSON})
	up.Set("/wiki/pages/home", upstreamtest.Response{Body: `{"title":"Home"}`})
	yml := strings.ReplaceAll(testConfig, "UPSTREAM", up.URL())
	cfg, errs := config.Parse("test.yaml", []byte(yml), config.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.False(t, errs.HasErrors(), "%v", errs)
	for _, o := range opts {
		o(cfg)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	comp, berrs := compiled.Compile(cfg, compiled.Options{Logger: logger})
	require.NotNil(t, comp, "%v", berrs)
	reg := comp.Registry
	t.Cleanup(reg.Close)
	raw := memory.New()
	h := &harness{t: t, up: up, raw: raw, st: cached.New(raw, cached.Options{}), reg: reg, settings: cfg.Server, clock: clocktest.New(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))}
	h.srv = server.New(server.Config{Settings: cfg.Server, Store: h.st, Registry: reg, Logger: logger, Now: h.clock.Now})
	return h
}

func (h *harness) token(providerName string) (tok, connID string) {
	h.t.Helper()
	return h.tokenFor(h.t, providerName)
}

// tokenFor is token for a test other than the harness's own (fuzzing).
func (h *harness) tokenFor(t testing.TB, providerName string) (tok, connID string) {
	t.Helper()
	ctx := t.Context()
	connID = issuer.NewID()
	require.NoError(t, h.st.CreateConnection(ctx, store.Connection{ID: connID, Provider: providerName, AccountKey: "k-" + connID, Status: store.StatusActive, CreatedAt: h.clock.Now()}))
	tok, err := issuer.IssueAccessToken(ctx, h.st, providerName, connID, h.clock.Now(), 0)
	require.NoError(t, err)
	return tok, connID
}

// lastRequest is the newest request the fake upstream received.
func lastRequest(t *testing.T, up *upstreamtest.Server) upstreamtest.Request {
	t.Helper()
	r, ok := up.LastRequest()
	require.True(t, ok, "no upstream request")
	return r
}

func newMemoryStore() *cached.Store { return cached.New(memory.New(), cached.Options{}) }

func (h *harness) do(method, path, token, contentType, body string) *httptest.ResponseRecorder {
	h.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	return rec
}

func (h *harness) unfurl(providerName, token, uri string) *httptest.ResponseRecorder {
	h.t.Helper()
	body, err := json.Marshal(map[string]string{"uri": uri})
	require.NoError(h.t, err)
	return h.do(http.MethodPost, "/providers/"+providerName+"/unfurl", token, "application/json", string(body))
}

// envelope decodes a response body as an unfurl envelope.
type envelope struct {
	URI        string `json:"uri"`
	Operations []struct {
		Path []string        `json:"path"`
		Set  json.RawMessage `json:"set"`
	} `json:"operations"`
}

func decodeEnvelope(t *testing.T, rec *httptest.ResponseRecorder) envelope {
	t.Helper()
	var env envelope
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &env), rec.Body.String())
	require.Len(t, env.Operations, 1, rec.Body.String())
	return env
}

// errorSet returns the error operation's set, failing if there is none.
func errorSet(t *testing.T, rec *httptest.ResponseRecorder) (int, string) {
	t.Helper()
	env := decodeEnvelope(t, rec)
	require.Equal(t, []string{"error"}, env.Operations[0].Path, rec.Body.String())
	var set struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
	}
	require.NoError(t, json.Unmarshal(env.Operations[0].Set, &set))
	return set.Status, set.Message
}

func subscriptions(t *testing.T, st store.Store) []store.Subscription {
	t.Helper()
	var out []store.Subscription
	require.NoError(t, st.ListSubscriptions(t.Context(), "", func(s store.Subscription) error {
		out = append(out, s)
		return nil
	}))
	return out
}

func digestOf(tok string) string { return issuer.Digest(tok) }

// doAuthz sends a POST with a raw Authorization header.
func doAuthz(h *harness, path, authz, body string) *httptest.ResponseRecorder {
	h.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Authorization", authz)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	return rec
}
