package canary_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/clock/clocktest"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// The credentials of the fake setup; no log line or report may hold them.
const (
	staticToken = "static-token-5f1e2d"
	canaryToken = "canary-token-9a8b7c"
	pairToken   = "pair-token-0c4e61"
)

// testConfig has four providers on one fake upstream: "things" (auth
// none with a service token) with four samples, "keyed" (api_key with a
// canary credential), "pair" (an api_key form of two fields with canary
// credential_fields) and "nocred" (api_key without one).
const testConfig = `
server: {mode: development, unfurl_timeout: 5s}
canary: {interval: 24h}
providers:
  - name: things
    upstream:
      base_url: UPSTREAM
      allow_private_networks: true
      auth: {token: ` + staticToken + `}
    live: {max_requests_per_hour: 60}
    patterns:
      - name: item
        regex: '^https://things\.example\.com/items/(?<id>\d{1,10})$'
        samples:
          - https://things.example.com/items/1
          - https://things.example.com/items/2
          - https://things.example.com/items/3
          - https://things.example.com/items/4
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: title}
          - {id: author, kind: plain_text, section: secondary, path: author}
  - name: keyed
    upstream:
      base_url: UPSTREAM/keyed
      allow_private_networks: true
      auth:
        type: api_key
        identity: {url: /user, key: 'string(identity.id)', name: identity.login}
    canary: {credential: ` + canaryToken + `, interval: 48h}
    patterns:
      - name: doc
        regex: '^https://keyed\.example\.com/docs/(?<id>\d{1,10})$'
        samples: [https://keyed.example.com/docs/7]
        requests: [{name: doc, url: "/docs/{id}"}]
        attributes:
          - {id: title, kind: title, path: title}
  - name: pair
    upstream:
      base_url: UPSTREAM/pair
      allow_private_networks: true
      auth:
        type: api_key
        api_key: {fields: [{name: email, type: email}, {name: token}]}
        value: '"Basic " + base64(credential.email + ":" + credential.token)'
        identity: {url: /user, key: 'string(identity.id)', name: identity.login}
    canary: {credential_fields: {email: ops@example.com, token: ` + pairToken + `}}
    patterns:
      - name: doc
        regex: '^https://pair\.example\.com/docs/(?<id>\d{1,10})$'
        samples: [https://pair.example.com/docs/3]
        requests: [{name: doc, url: "/docs/{id}"}]
        attributes:
          - {id: title, kind: title, path: title}
  - name: nocred
    upstream:
      base_url: UPSTREAM/nocred
      allow_private_networks: true
      auth:
        type: api_key
        identity: {url: /user, key: 'string(identity.id)', name: identity.login}
    patterns:
      - name: doc
        regex: '^https://nocred\.example\.com/docs/(?<id>\d{1,10})$'
        samples: [https://nocred.example.com/docs/1]
        requests: [{name: doc, url: "/docs/{id}"}]
        attributes:
          - {id: title, kind: title, path: title}
`

// newFakeUpstream serves an item for every sample of testConfig.
func newFakeUpstream(t *testing.T) *upstreamtest.Server {
	t.Helper()
	up := upstreamtest.New(t)
	for path, body := range map[string]map[string]any{
		"/items/1":      {"title": "One", "author": "ann"},
		"/items/2":      {"title": "Two", "author": "bob"},
		"/items/3":      {"title": "Three", "author": "cy"},
		"/items/4":      {"title": "Four", "author": "di"},
		"/keyed/docs/7": {"title": "Seven"},
		"/pair/docs/3":  {"title": "Three"},
	} {
		up.Set(path, upstreamtest.Response{JSON: body})
	}
	return up
}

// authOf returns the Authorization header path was last asked with.
func authOf(up *upstreamtest.Server, path string) string {
	rs := up.RequestsTo(path)
	if len(rs) == 0 {
		return ""
	}
	return rs[len(rs)-1].Header.Get("Authorization")
}

// registry builds testConfig against the fake upstream.
func registry(t *testing.T, up *upstreamtest.Server) *provider.Registry {
	t.Helper()
	cfg, errs := config.Parse("canary.yaml", []byte(strings.ReplaceAll(testConfig, "UPSTREAM", up.URL())),
		config.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.False(t, errs.HasErrors(), "%v", errs)
	reg, berrs := provider.Build(cfg, provider.Options{})
	require.False(t, berrs.HasErrors(), "%v", berrs)
	t.Cleanup(reg.Close)
	return reg
}

// newFakeClock never sleeps: After moves the time on by d and fires at
// once, and remembers every wait.
func newFakeClock() *clocktest.Fake {
	return clocktest.NewStepping(time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC))
}

// logBuffer is a concurrency-safe log sink for scanning what was logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger(w *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
