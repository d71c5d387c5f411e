package app_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/app"
	"github.com/unfurld/unfurld/engine/canary"
	"github.com/unfurld/unfurld/engine/clock/clocktest"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/metrics"
	"github.com/unfurld/unfurld/engine/notion/notiontest"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store/memory"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// trackerCanaryToken is the oauth2 provider's canary credential.
const trackerCanaryToken = "tracker-canary-token-4d1f"

// canaryApp builds the flow config with canaries every 24h and a canary
// credential for the oauth2 provider; baseline, when set, is the
// canary.baseline value.
func canaryApp(t *testing.T, baseline string, m ...*metrics.Metrics) (*app.App, *clocktest.Fake, *upstreamtest.Server, *syncBuffer, error) {
	t.Helper()
	up := newFakeService(t)
	setItem(up, "1", `{"title":"Fix the flux capacitor","state":"open"}`)
	up.AddKey(trackerCanaryToken)
	dir := t.TempDir()
	top := "canary: {interval: 24h}\n"
	if baseline != "" {
		top = "canary: {interval: 24h, baseline: " + baseline + "}\n"
	}
	yml := top + strings.NewReplacer(
		"PUBLIC", "https://unfurl.example.com", "KEYS", sealing.GenerateKeySpec("k1"), "DATA", dir,
		"NOTION", notiontest.New(t).URL(), "UP", up.URL(),
	).Replace(flowConfig)
	// The tracker (oauth2) gets a canary credential; keyed (api_key) not.
	yml = strings.Replace(yml, "    patterns:\n      - name: item\n        regex: '^https://tracker",
		"    canary: {credential: "+trackerCanaryToken+"}\n    patterns:\n      - name: item\n        regex: '^https://tracker", 1)
	cfg, errs := config.Parse(filepath.Join(dir, "flow.yaml"), []byte(yml), config.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.False(t, errs.HasErrors(), "%v", errs)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clock := clocktest.NewStepping(time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC))
	reg, berrs := provider.Build(cfg, provider.Options{Logger: logger, Now: clock.Now})
	require.False(t, berrs.HasErrors(), "%v", berrs)
	t.Cleanup(reg.Close)
	opts := app.Options{Config: cfg, Registry: reg, Store: memory.New(), Logger: logger, Now: clock.Now, Clock: clock}
	if len(m) > 0 {
		opts.Metrics = m[0]
	}
	a, err := app.New(opts)
	return a, clock, up, logs, err
}

// TestCanaryMetrics: a scheduled run sets the canary gauges of the
// providers it ran, and none for one it skipped.
func TestCanaryMetrics(t *testing.T) {
	m := metrics.New()
	a, clock, _, _, err := canaryApp(t, "", m)
	require.NoError(t, err)
	clock.After(canary.FirstRunDelay)
	a.Canary.RunDue(t.Context())

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	assert.Contains(t, body, `unfurld_canary_samples{provider="tracker",verdict="ok"} 1`)
	assert.Contains(t, body, `unfurld_canary_samples{provider="tracker",verdict="failed"} 0`)
	assert.Contains(t, body, `unfurld_canary_last_run_timestamp_seconds{provider="tracker"}`)
	assert.NotContains(t, body, `unfurld_canary_samples{provider="keyed"`, "a skipped provider has no gauges")
}

// TestCanaryInAdminStatus: serve's scheduled canaries run with the
// provider's canary credential and their last run shows in
// /admin/status per provider; the credential shows nowhere (TH-49).
func TestCanaryInAdminStatus(t *testing.T) {
	a, clock, up, logs, err := canaryApp(t, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"tracker", "keyed"}, a.Canary.Scheduled())
	clock.After(canary.FirstRunDelay)
	a.Canary.RunDue(t.Context())

	req := httptest.NewRequest(http.MethodGet, "/admin/status", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	rec := httptest.NewRecorder()
	a.Server.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var rep struct {
		Providers []struct {
			Name   string         `json:"name"`
			Canary canary.Summary `json:"canary"`
		} `json:"providers"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &rep))
	got := map[string]canary.Summary{}
	for _, p := range rep.Providers {
		got[p.Name] = p.Canary
	}
	assert.Equal(t, 1, got["tracker"].OK, rec.Body.String())
	assert.Empty(t, got["tracker"].Problems)
	assert.Equal(t, canary.SkipNoCredential, got["keyed"].Skipped)
	assert.Equal(t, clock.Now().Add(24*time.Hour), got["tracker"].NextAt, "a day after the first run")

	auths := apiAuths(up)
	assert.Equal(t, []string{"Bearer " + trackerCanaryToken}, auths)
	assert.NotContains(t, rec.Body.String(), trackerCanaryToken)
	assert.NotContains(t, logs.String(), trackerCanaryToken)
	assert.Contains(t, logs.String(), "canary run")
}

// TestCanaryBaselineMissing: a scheduled server whose canary.baseline
// cannot be read refuses to start and says how to record one.
func TestCanaryBaselineMissing(t *testing.T) {
	_, _, _, _, err := canaryApp(t, "missing.json")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.json")
	assert.Contains(t, err.Error(), "unfurld canary --config FILE --record FILE")
}
