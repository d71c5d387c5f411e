package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// testEnv runs commands with captured output and an environment from a
// map, never the real one.
func testEnv(vars map[string]string) (env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	e := env{
		stdout: &out, stderr: &errb,
		lookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
	}
	return e, &out, &errb
}

// served is a serve command the test started in the background.
type served struct {
	// addr is the address it listens on.
	addr string
	// out and errb are its standard output and error; read them after
	// stop, since the server writes them meanwhile.
	out, errb *bytes.Buffer
	// stop ends it, waits for it, and returns its exit code.
	stop func() int
}

// serveInBackground runs `unfurld serve args...` until stop, failing
// the test when it does not listen within ten seconds.
func serveInBackground(t *testing.T, vars map[string]string, args ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	e, out, errb := testEnv(vars)
	ready := make(chan string, 1)
	e.ready = func(addr string) { ready <- addr }
	var wg sync.WaitGroup
	wg.Add(1)
	code := -1
	go func() {
		defer wg.Done()
		code = run(ctx, append([]string{"serve"}, args...), e)
	}()
	stop := func() int {
		cancel()
		wg.Wait()
		return code
	}
	t.Cleanup(func() { stop() })
	s := &served{out: out, errb: errb, stop: stop}
	select {
	case s.addr = <-ready:
	case <-time.After(10 * time.Second):
		stop()
		t.Fatalf("server did not start: %s", errb.String())
	}
	return s
}

// startServe runs serve until the returned stop is called, which
// checks that it exited cleanly.
func startServe(t *testing.T, vars map[string]string, args ...string) (stop func()) {
	t.Helper()
	s := serveInBackground(t, vars, args...)
	return func() { assert.Equal(t, exitOK, s.stop()) }
}

// TestExamplesValidate loads config.example.yaml and every example as
// `unfurld validate` does (STYLE.md 1: each example is loaded by a test
// here). Production examples get throwaway secrets, as CI gives them.
func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob("../../examples/*/config.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 2)
	files = append(files, "../../config.example.yaml")
	vars := map[string]string{
		"GITHUB_NOTION_CLIENT_SECRET":      strings.Repeat("s", 40),
		"GITHUB_NOTION_INTEGRATION_ID":     "integration",
		"GITHUB_NOTION_INTEGRATION_SECRET": strings.Repeat("t", 40),
		"UNFURLD_SECRET_KEYS":              "ci:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
		// builtin:github-oauth's upstream OAuth app, as .ci/run exports it.
		"GITHUB_CLIENT_ID":     "ci-github-client-id",
		"GITHUB_CLIENT_SECRET": "ci-github-client-secret",
		// examples/compose's database; validation never connects.
		"DATABASE_URL": "postgres://unfurld:ci@db:5432/unfurld?sslmode=disable",
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			e, out, errb := testEnv(vars)
			code := run(t.Context(), []string{"validate", "--config", f}, e)
			require.Equal(t, exitOK, code, errb.String())
			assert.Contains(t, out.String(), ": ok (")
		})
	}
}

// TestConfigExampleNeedsNoEnvironment: the README's first command must
// work with nothing exported.
func TestConfigExampleNeedsNoEnvironment(t *testing.T) {
	e, _, errb := testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"validate", "--config", "../../config.example.yaml"}, e), errb.String())
	assert.NotContains(t, errb.String(), "error")
}

func TestValidateReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`server: {mode: development}
providers:
  - name: acme
    upstream: {base_url: https://api.acme.example, timout: 5s}
    patterns:
      - name: item
        regex: '^https://acme\.example/items/(?<id>\d+)$'
        samples: [https://acme.example/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, expr: 'item.name + ${MISSING_A}'}
          - {id: other, kind: plain_text, value: "${MISSING_B}"}
`), 0o600))
	e, _, errb := testEnv(nil)
	code := run(t.Context(), []string{"validate", "--config", cfg}, e)
	assert.Equal(t, exitFailure, code)
	got := strings.ReplaceAll(errb.String(), dir+string(filepath.Separator), "")
	assert.Equal(t, `bad.yaml:4:52: providers.acme.upstream: unknown key "timout" (did you mean "timeout"?)
bad.yaml:11:44: providers.acme.patterns.item.attributes.title.expr: environment variable MISSING_A is not set
bad.yaml:12:50: providers.acme.patterns.item.attributes.other.value: environment variable MISSING_B is not set
bad.yaml: invalid
`, got)
}

func TestUsage(t *testing.T) {
	e, _, errb := testEnv(nil)
	assert.Equal(t, exitUsage, run(t.Context(), nil, e))
	assert.Contains(t, errb.String(), "Usage:")
	e, _, errb = testEnv(nil)
	assert.Equal(t, exitUsage, run(t.Context(), []string{"frobnicate"}, e))
	assert.Contains(t, errb.String(), `unknown command "frobnicate"`)
}

// fakeAPI serves one JSON item, /items/7, on loopback.
func fakeAPI(t *testing.T) *upstreamtest.Server {
	t.Helper()
	api := upstreamtest.New(t)
	api.Set("/items/7", upstreamtest.Response{Body: `{"name":"Seven","owner":{"login":"ana"}}`})
	return api
}

func writeLocalConfig(t *testing.T, api string) (cfg, dir string) {
	t.Helper()
	dir = t.TempDir()
	cfg = filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`server: {mode: development, shutdown_timeout: 2s, log: {level: warn}}
storage: {path: `+filepath.Join(dir, "data", "unfurld.db")+`}
providers:
  - name: acme
    upstream: {base_url: `+api+`, allow_private_networks: true}
    patterns:
      - name: item
        regex: '^https://acme\.example/items/(?<id>\d+)$'
        samples: [https://acme.example/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: name}
          - {id: owner, kind: plain_text, expr: 'item.owner.login'}
`), 0o600))
	return cfg, dir
}

func TestPreview(t *testing.T) {
	api := fakeAPI(t)
	cfg, _ := writeLocalConfig(t, api.URL())

	e, out, errb := testEnv(nil)
	code := run(t.Context(), []string{"preview", "--config", cfg, "https://acme.example/items/7", "--trace"}, e)
	require.Equal(t, exitOK, code, errb.String())
	assert.JSONEq(t, `{"uri":"https://acme.example/items/7","operations":[{"path":["attributes"],"set":[
		{"id":"title","name":"title","type":"inline","inline":{"title":{"value":"Seven","section":"title"}}},
		{"id":"owner","name":"owner","type":"inline","inline":{"plain_text":{"value":"ana","section":"secondary"}}},
		{"id":"dev","name":"Developer Name","type":"inline","inline":{"plain_text":{"value":"unfurld","section":"secondary"}}}]}]}`, out.String())
	trace := errb.String()
	assert.Regexp(t, `pattern +item\n`, trace)
	assert.Regexp(t, `group id +"7"\n`, trace)
	assert.Contains(t, trace, "GET "+api.URL()+"/items/7 -> 200")
	assert.Contains(t, trace, "(cache miss)")
	assert.Regexp(t, `attribute owner +ana\n`, trace)

	// A missing item: the error operation is printed and the exit code says so.
	e, out, _ = testEnv(nil)
	code = run(t.Context(), []string{"preview", "--config", cfg, "https://acme.example/items/8"}, e)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, out.String(), `"path":["error"]`)
}

func TestTestCommand(t *testing.T) {
	api := fakeAPI(t)
	cfg, dir := writeLocalConfig(t, api.URL())
	cases := filepath.Join(dir, "testdata")
	caseDir := filepath.Join(cases, "acme", "item")
	require.NoError(t, os.MkdirAll(filepath.Join(caseDir, "upstream", "items"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(caseDir, "request.json"), []byte(`{"uri":"https://acme.example/items/3"}`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(caseDir, "upstream", "items", "3.json"), []byte(`{"name":"Three"}`), 0o600))

	e, out, errb := testEnv(nil)
	require.Equal(t, exitFailure, run(t.Context(), []string{"test", "--config", cfg, cases}, e), "no golden yet")
	assert.Contains(t, out.String(), "0 passed, 1 failed")

	e, out, errb = testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"test", "--config", cfg, "--update", cases}, e), errb.String())
	golden, err := os.ReadFile(filepath.Join(caseDir, "want.golden.json"))
	require.NoError(t, err)
	assert.Contains(t, string(golden), `"value": "Three"`)

	e, out, errb = testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"test", "--config", cfg, cases}, e), errb.String())
	assert.Equal(t, "1 passed, 0 failed\n", out.String())

	// The built-in providers pass their own fixtures through the CLI.
	e, out, errb = testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"test", "../../providers/testdata"}, e), out.String()+errb.String())
}

// TestServeLifecycle starts the real server on loopback, unfurls with a
// token made by `unfurld token`, and stops it the way SIGTERM does
// (F15): in-flight work finishes, the exit code is 0, the store closes
// (a second open succeeds).
func TestServeLifecycle(t *testing.T) {
	api := fakeAPI(t)
	cfg, dir := writeLocalConfig(t, api.URL())

	e, out, errb := testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"token", "--config", cfg, "--provider", "acme"}, e), errb.String())
	token := strings.TrimSpace(out.String())
	require.True(t, strings.HasPrefix(token, "ufd_at_"))

	srv := serveInBackground(t, nil, "--config", cfg, "--listen", "127.0.0.1:0")
	addr := srv.addr

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/providers/acme/unfurl",
		strings.NewReader(`{"uri":"https://acme.example/items/7"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var env struct {
		URI string `json:"uri"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&env))
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "https://acme.example/items/7", env.URI)

	assert.Equal(t, exitOK, srv.stop(), srv.errb.String())
	assert.Contains(t, srv.out.String(), "Unfurl Callback URL:  http://localhost:8080/providers/acme/unfurl")
	_, err = os.Stat(filepath.Join(dir, "data", "dev-secrets.json"))
	require.NoError(t, err, "development secrets are kept beside the data")

	// The store was closed: the token command can open it again.
	e, _, errb = testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"token", "--config", cfg, "--provider", "acme"}, e), errb.String())
}
