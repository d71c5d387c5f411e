package server_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/clock/clocktest"
	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// FuzzUnfurlBody throws arbitrary bodies at the unfurl route (TH-48): the
// answer is always one of the documented statuses with a JSON body, and
// nothing panics.
func FuzzUnfurlBody(f *testing.F) {
	for _, seed := range []string{
		`{"uri":"https://tracker.example.com/acme/items/1"}`,
		`{"uri":"https://tracker.example.com/acme/items/1?x#y"}`,
		`{"uri":"https://tracker.example.com/..%2f/items/1"}`,
		`{"uri":1}`, `[]`, `null`, `{"uri":"\u0000"}`, `{"uri":"https://ｔracker.example.com/a/items/1"}`,
		"{\"uri\":\"\xff\"}", `{"uri":"a"}{"uri":"b"}`, strings.Repeat("{", 200),
	} {
		f.Add(seed)
	}
	h := newHarness(f)
	f.Fuzz(func(t *testing.T, body string) {
		h := *h // helpers report to this input's t, not to f
		h.t = t
		tok, _ := h.tokenFor(t, "tracker")
		rec := h.do(http.MethodPost, "/providers/tracker/unfurl", tok, "application/json", body)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
		require.True(t, json.Valid(rec.Body.Bytes()), "body is JSON: %q", rec.Body.String())
	})
}

// TestLogsCarryNoSecrets runs a battery of calls and scans everything
// logged for the bearer token and the upstream credential (TH-49).
func TestLogsCarryNoSecrets(t *testing.T) {
	var logs bytes.Buffer
	up := upstreamtest.New(t)
	up.Set("/api/projects/acme/items/1", upstreamtest.Response{Body: itemJSON})
	yml := strings.ReplaceAll(testConfig, "UPSTREAM", up.URL())
	logger := slog.New(server.LogHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	comp, errs := compiled.Parse("test.yaml", []byte(yml), compiled.Options{LookupEnv: func(string) (string, bool) { return "", false }, Logger: logger})
	require.NotNil(t, comp, "%v", errs)
	cfg, reg := comp.Config, comp.Registry
	h := &harness{t: t, up: up, reg: reg, clock: clocktest.New(clocktest.Start)}
	h.st = newMemoryStore()
	h.srv = server.New(server.Config{Settings: cfg.Server, Store: h.st, Registry: reg, Logger: logger})
	tok, _ := h.token("tracker")

	h.unfurl("tracker", tok, "https://tracker.example.com/acme/items/1")
	h.unfurl("tracker", tok, "https://tracker.example.com/acme/items/404")
	h.unfurl("tracker", tok+"x", "https://tracker.example.com/acme/items/1")
	h.do(http.MethodPost, "/providers/tracker/unfurl?access_token="+tok+"&code=c0de", "", "application/json", `{}`)
	h.do(http.MethodDelete, "/providers/tracker/unfurl", tok, "application/json", `{"uri":"https://tracker.example.com/acme/items/1"}`)

	out := logs.String()
	require.NotEmpty(t, out)
	assert.Contains(t, out, `"request_id"`, "request logs carry the request id")
	for _, secret := range []string{tok, strings.TrimPrefix(tok, "ufd_at_"), "sekrit-upstream-token", "c0de"} {
		assert.NotContains(t, out, secret)
	}
}
