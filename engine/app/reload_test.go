package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/app"
	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/notion/notiontest"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
)

const reloadAdminToken = "reload-admin-token-0123456789abcdef"

// reloadHead is the part of reloadEnv's file outside providers.
const reloadHead = `
server:
  mode: development
  public_url: PUBLIC
  secret_keys: "KEYS"
  admin_token: "` + reloadAdminToken + `"
storage:
  path: STORAGE
notion:
  api_base_url: NOTION
providers:
`

// reloadProvider is one provider of reloadEnv's file: NAME's pages carry
// the title the upstream gives and a "version" attribute of VERSION, so a
// response tells which compiled provider answered.
const reloadProvider = `  - name: NAME
    upstream:
      base_url: UP/NAME
      allow_private_networks: true
      cache_ttl: 0s
    patterns:
      - name: page
        regex: '^https://NAME\.example\.com/pages/(?<id>\d{1,6})$'
        samples: [https://NAME.example.com/pages/1]
        requests: [{name: page, url: "/pages/{id}"}]
        attributes:
          - {id: title, kind: title, path: title}
          - {id: version, kind: plain_text, value: "VERSION"}
`

// reloadEnv is a running app over real HTTP whose configuration file the
// test rewrites and reloads.
type reloadEnv struct {
	t    *testing.T
	app  *app.App
	srv  *httptest.Server
	st   store.Store
	reg  *provider.Registry
	path string
	repl *strings.Replacer
	logs *syncBuffer
}

func newReloadEnv(t *testing.T, providers ...string) *reloadEnv {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"title": %q}`, "Page at "+r.URL.Path)
	}))
	t.Cleanup(up.Close)
	notion := notiontest.New(t)
	var handler atomic.Pointer[http.Handler]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	e := &reloadEnv{
		t: t, srv: srv, st: memory.New(), path: filepath.Join(dir, "config.yaml"), logs: &syncBuffer{},
		repl: strings.NewReplacer("PUBLIC", srv.URL, "KEYS", sealing.GenerateKeySpec("k1"), "NOTION", notion.URL(), "UP", up.URL),
	}
	e.write(filepath.Join(dir, "unfurld.db"), providers...)
	logger := slog.New(slog.NewTextHandler(e.logs, nil))
	load := func() (*compiled.Config, config.Errors) {
		return compiled.Load(e.path, compiled.Options{LookupEnv: func(string) (string, bool) { return "", false }, Logger: logger})
	}
	c, errs := load()
	require.NotNil(t, c, "%v", errs)
	t.Cleanup(c.Registry.Close)
	a, err := app.New(app.Options{Config: c.Config, Registry: c.Registry, Store: e.st, Logger: logger, Load: load})
	require.NoError(t, err)
	e.app, e.reg = a, c.Registry
	h := a.Server.Handler()
	handler.Store(&h)
	return e
}

// write writes the configuration file with storage at storage and the
// providers given as "name=version".
func (e *reloadEnv) write(storage string, providers ...string) {
	var b strings.Builder
	b.WriteString(strings.ReplaceAll(reloadHead, "STORAGE", storage))
	for _, p := range providers {
		name, version, _ := strings.Cut(p, "=")
		b.WriteString(strings.NewReplacer("NAME", name, "VERSION", version).Replace(reloadProvider))
	}
	require.NoError(e.t, os.WriteFile(e.path, []byte(e.repl.Replace(b.String())), 0o600))
}

// token creates a connection to provider and an access token for it.
func (e *reloadEnv) token(provider string) (tok, connID string) {
	e.t.Helper()
	connID = issuer.NewID()
	now := time.Now()
	require.NoError(e.t, e.st.CreateConnection(e.t.Context(), store.Connection{ID: connID, Provider: provider, AccountKey: "k-" + connID, Status: store.StatusActive, CreatedAt: now}))
	tok, err := issuer.IssueAccessToken(e.t.Context(), e.st, provider, connID, now, 0)
	require.NoError(e.t, err)
	return tok, connID
}

// unfurl posts one unfurl call and returns the status and the version
// attribute of the answer ("" when there is none).
func unfurlVersion(client *http.Client, base, provider, tok, uri string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/providers/"+provider+"/unfurl", strings.NewReader(`{"uri":"`+uri+`"}`))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", err
	}
	var env struct {
		Operations []struct {
			Set []struct {
				ID     string `json:"id"`
				Inline struct {
					Text struct {
						Value string `json:"value"`
					} `json:"plain_text"`
				} `json:"inline"`
			} `json:"set"`
		} `json:"operations"`
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, "", nil
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Operations) != 1 {
		return resp.StatusCode, "", fmt.Errorf("not an unfurl answer: %s", body)
	}
	for _, a := range env.Operations[0].Set {
		if a.ID == "version" {
			return resp.StatusCode, a.Inline.Text.Value, nil
		}
	}
	return resp.StatusCode, "", fmt.Errorf("no version attribute: %s", body)
}

// reloadReport is the JSON of POST /admin/reload.
type reloadReport struct {
	Status          string   `json:"status"`
	Errors          []string `json:"errors"`
	RestartRequired []string `json:"restart_required"`
	Added           []string `json:"added"`
	Changed         []string `json:"changed"`
	Removed         []string `json:"removed"`
}

func (e *reloadEnv) reload() (int, reloadReport) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/admin/reload", nil)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+reloadAdminToken)
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer func() { _ = resp.Body.Close() }()
	var r reloadReport
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&r))
	return resp.StatusCode, r
}

// TestReloadUnderLoad reloads while 32 workers unfurl over real HTTP:
// a provider is added, one is changed, a broken file is refused and a
// provider is removed together with a change to a key that needs a
// restart. No unfurl fails; an unfurl in flight across a reload is
// answered by the old or the new compiled provider, never by neither
// (F15's promise for in-flight requests, kept across a reload instead of
// a shutdown), and one that starts after the reload has answered gets the
// new one. The removed provider's route answers 404 while its tokens stay
// stored (TH-27: a token is only ever good on its own provider's route).
//
// Each worker checks its answer against the versions allowed both when
// its unfurl started and when it ended: under load one unfurl from
// before a reload may finish after any number of later ones.
func TestReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("32 workers over real HTTP; run without -short")
	}
	e := newReloadEnv(t, "alpha=v1")
	storage := filepath.Join(filepath.Dir(e.path), "unfurld.db")
	alphaTok, _ := e.token("alpha")
	const uri = "https://alpha.example.com/pages/7"

	var done atomic.Int64
	// finished gets a value after an unfurl has been counted in done,
	// unless one is waiting already: progress reads done again on each.
	finished := make(chan struct{}, 1)
	var failures sync.Map // description -> count
	var failed atomic.Int64
	// allowed are the versions an unfurl may answer: one in flight while
	// it changes may answer what it allowed at the start or at the end
	// (the phases only ever move on: v1, either, v2).
	allowed := atomic.Pointer[[]string]{}
	allowed.Store(&[]string{"v1"})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := e.srv.Client()
	for range 32 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				before := *allowed.Load()
				code, version, err := unfurlVersion(client, e.srv.URL, "alpha", alphaTok, uri)
				after := *allowed.Load()
				if err != nil || code != http.StatusOK || !(slices.Contains(before, version) || slices.Contains(after, version)) {
					failed.Add(1)
					failures.Store(fmt.Sprintf("status %d version %q (allowed %v, then %v) err %v", code, version, before, after, err), true)
				}
				done.Add(1)
				select {
				case finished <- struct{}{}:
				default:
				}
			}
		})
	}
	// progress waits until the workers have finished n more unfurls, so
	// every reload happens under load and is followed by some.
	progress := func(n int64) {
		t.Helper()
		target := done.Load() + n
		guard := time.After(2 * time.Minute) // a guard against a hang, not a wait
		for done.Load() < target {
			select {
			case <-finished:
			case <-guard:
				t.Fatalf("workers stalled at %d of %d unfurls", done.Load(), target)
			}
		}
	}
	progress(64)

	// 1. A provider is added: it answers after its reload.
	e.write(storage, "alpha=v1", "beta=b1")
	code, r := e.reload()
	require.Equal(t, http.StatusOK, code, "%+v", r)
	assert.Equal(t, compiled.StatusReloaded, r.Status)
	assert.Equal(t, []string{"beta"}, r.Added)
	betaTok, betaConn := e.token("beta")
	code, version, err := unfurlVersion(client, e.srv.URL, "beta", betaTok, "https://beta.example.com/pages/1")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "b1", version)
	progress(64)

	// 2. A provider changes: it is compiled anew; the unfurls in flight
	// during the reload may get either answer, those that start after it
	// only the new one.
	allowed.Store(&[]string{"v1", "v2"})
	e.write(storage, "alpha=v2", "beta=b1")
	code, r = e.reload()
	require.Equal(t, http.StatusOK, code, "%+v", r)
	assert.Equal(t, []string{"alpha"}, r.Changed)
	allowed.Store(&[]string{"v2"})
	progress(128)

	// 3. A broken file is refused with file:line:col; nothing changes.
	require.NoError(t, os.WriteFile(e.path, []byte(strings.Replace(mustRead(t, e.path), "path: title", "expr: nosuch.title", 1)), 0o600))
	code, r = e.reload()
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	assert.Equal(t, compiled.StatusRefused, r.Status)
	require.NotEmpty(t, r.Errors)
	assert.Contains(t, r.Errors[0], e.path+":")
	assert.Contains(t, r.Errors[0], "unknown name nosuch")
	progress(64)

	// 4. A provider is removed, and a key that needs a restart changes:
	// the provider answers 404 while its connection stays in the store,
	// and the storage path is reported, not applied.
	e.write(filepath.Join(t.TempDir(), "elsewhere.db"), "alpha=v2")
	code, r = e.reload()
	require.Equal(t, http.StatusOK, code, "%+v", r)
	assert.Equal(t, []string{"beta"}, r.Removed)
	assert.Equal(t, []string{"storage.path"}, r.RestartRequired)
	code, _, err = unfurlVersion(client, e.srv.URL, "beta", betaTok, "https://beta.example.com/pages/1")
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, code)
	_, err = e.st.GetConnection(t.Context(), betaConn)
	require.NoError(t, err, "a removed provider's connections stay")
	progress(64)

	close(stop)
	wg.Wait()
	var seen []string
	failures.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
	assert.Zero(t, failed.Load(), "failed unfurls: %v", seen)
	t.Logf("%d unfurls across 4 reloads", done.Load())
	assert.Contains(t, e.logs.String(), "restart_required")
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// TestReloadRefusedChangesNothing checks that a file with errors leaves
// the running configuration whole: the same compiled providers, the same
// answers, and the errors both in the answer and in the log (TH-53: a
// bad configuration is refused at load, at a reload as at start).
func TestReloadRefusedChangesNothing(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t, "alpha=v1", "beta=b1")
	tok, _ := e.token("alpha")
	before := e.app.Server // the server is built once; its registry is what a reload changes
	alpha, beta := providerOf(t, e, "alpha"), providerOf(t, e, "beta")

	// The broken file drops beta, changes alpha and adds gamma, so any
	// partial application would show.
	e.write(filepath.Join(t.TempDir(), "other.db"), "alpha=v2", "gamma=g1")
	broken := strings.Replace(mustRead(t, e.path), "regex: '^https://gamma", "regex: '(?<bad", 1)
	require.NoError(t, os.WriteFile(e.path, []byte(broken), 0o600))

	code, r := e.reload()
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	assert.Equal(t, compiled.StatusRefused, r.Status)
	require.NotEmpty(t, r.Errors)
	assert.Regexp(t, `^`+e.path+`:\d+:\d+: providers\.gamma\.patterns\.page\.regex: `, r.Errors[0])
	assert.Empty(t, r.Added)
	assert.Empty(t, r.Removed)
	assert.Empty(t, r.RestartRequired)
	assert.Contains(t, e.logs.String(), "config reload refused")
	assert.Contains(t, e.logs.String(), e.path+":")

	assert.Same(t, before, e.app.Server)
	assert.Same(t, alpha, providerOf(t, e, "alpha"), "alpha is the same compiled provider")
	assert.Same(t, beta, providerOf(t, e, "beta"), "beta still served")
	code, version, err := unfurlVersion(e.srv.Client(), e.srv.URL, "alpha", tok, "https://alpha.example.com/pages/1")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "v1", version)
	code, _, err = unfurlVersion(e.srv.Client(), e.srv.URL, "gamma", tok, "https://gamma.example.com/pages/1")
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, code)
}

// TestReloadNeedsAdminToken checks that POST /admin/reload answers only
// the admin token, compared as the status route compares it (TH-19's
// rule), and that a refused call reloads nothing.
func TestReloadNeedsAdminToken(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t, "alpha=v1")
	e.write(filepath.Join(filepath.Dir(e.path), "unfurld.db"), "alpha=v1", "beta=b1")
	for _, auth := range []string{"", "Bearer wrong", "Basic " + reloadAdminToken} {
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/admin/reload", nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := e.srv.Client().Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, auth)
	}
	_, ok := e.reg.Get("beta")
	assert.False(t, ok, "no reload happened")
}

func providerOf(t *testing.T, e *reloadEnv, name string) *provider.Provider {
	t.Helper()
	p, ok := e.reg.Get(name)
	require.True(t, ok, name)
	return p
}

// reloadOAuthProvider is an oauth2 provider for reloadEnv's file.
const reloadOAuthProvider = `  - name: signin
    upstream:
      base_url: UP/signin
      allow_private_networks: true
      auth:
        type: oauth2
        oauth2:
          authorize_url: UP/oauth/authorize
          token_url: UP/oauth/token
          client_id: app
          client_secret: app-secret-0123456789
          scopes: [SCOPE]
        identity: {url: /user, key: 'string(identity.id)', name: identity.login}
    patterns:
      - name: page
        regex: '^https://signin\.example\.com/pages/(?<id>\d{1,6})$'
        samples: [https://signin.example.com/pages/1]
        requests: [{name: page, url: "/pages/{id}"}]
        attributes: [{id: title, kind: title, path: title}]
`

// TestReloadKeepsUpstreamOAuthClients checks that a reload keeps the
// upstream OAuth client of an unchanged provider, whose state (refreshes
// in flight, refresh tokens known to be spent) guards rotating refresh
// tokens against being presented twice (TH-23), and builds a new one
// for a changed provider.
func TestReloadKeepsUpstreamOAuthClients(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t, "alpha=v1")
	storage := filepath.Join(filepath.Dir(e.path), "unfurld.db")
	withOAuth := func(scope string) {
		e.write(storage, "alpha=v1")
		f, err := os.OpenFile(e.path, os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteString(e.repl.Replace(strings.ReplaceAll(reloadOAuthProvider, "SCOPE", scope)))
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}

	withOAuth("read")
	code, r := e.reload()
	require.Equal(t, http.StatusOK, code, "%+v", r)
	first, ok := e.app.Connect.Upstream("signin")
	require.True(t, ok)

	withOAuth("read") // the same file again
	code, r = e.reload()
	require.Equal(t, http.StatusOK, code, "%+v", r)
	assert.Empty(t, r.Changed)
	same, ok := e.app.Connect.Upstream("signin")
	require.True(t, ok)
	assert.Same(t, first, same, "an unchanged provider keeps its client")

	withOAuth("write")
	code, r = e.reload()
	require.Equal(t, http.StatusOK, code, "%+v", r)
	assert.Equal(t, []string{"signin"}, r.Changed)
	changed, ok := e.app.Connect.Upstream("signin")
	require.True(t, ok)
	assert.NotSame(t, first, changed, "a changed provider gets a new client")

	e.write(storage, "alpha=v1")
	code, r = e.reload()
	require.Equal(t, http.StatusOK, code, "%+v", r)
	assert.Equal(t, []string{"signin"}, r.Removed)
	_, ok = e.app.Connect.Upstream("signin")
	assert.False(t, ok, "a removed provider's client is dropped")
}

// TestReloadRestartsPollingOnlyWhenItChanges checks that a reload keeps
// the running poller (its schedules and hourly budgets) unless the set
// of polled providers changes, and that the new poller polls the new
// set.
func TestReloadRestartsPollingOnlyWhenItChanges(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t, "alpha=v1")
	storage := filepath.Join(filepath.Dir(e.path), "unfurld.db")
	first := e.app.CurrentPoller()
	require.Equal(t, []string{"alpha"}, first.Providers())

	e.write(storage, "alpha=v2")
	code, r := e.reload()
	require.Equal(t, http.StatusOK, code, "%+v", r)
	require.Equal(t, []string{"alpha"}, r.Changed)
	assert.Same(t, first, e.app.CurrentPoller(), "alpha changed, but not how it polls")

	e.write(storage, "alpha=v2", "beta=b1")
	code, r = e.reload()
	require.Equal(t, http.StatusOK, code, "%+v", r)
	assert.NotSame(t, first, e.app.CurrentPoller())
	assert.Equal(t, []string{"alpha", "beta"}, e.app.CurrentPoller().Providers())
}
