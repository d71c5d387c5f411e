package server_test

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/metrics"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

const itemURI = "https://tracker.example.com/acme/items/1"

// adminToken is the admin token of the metrics tests.
const adminToken = "admin-token-0123456789abcdef0123456789"

// withMetrics rebuilds the harness's server with metrics (the providers
// report to them too) and server settings changed by edit; it returns
// the metrics and a JSON log buffer.
func withMetrics(t *testing.T, h *harness, edit func(*config.Server)) (*metrics.Metrics, *syncBuffer) {
	t.Helper()
	m := metrics.New()
	settings := h.settings
	if edit != nil {
		edit(&settings)
	}
	logs := &syncBuffer{}
	logger := slog.New(server.LogHandler(slog.NewJSONHandler(io.MultiWriter(t.Output(), logs), &slog.HandlerOptions{Level: slog.LevelDebug})))
	cfg := *h.reg.All()[0].Config
	full := &config.Config{Server: settings, Providers: []config.Provider{cfg, *h.reg.All()[1].Config}}
	reg, errs := provider.Build(full, provider.Options{Logger: logger, Observer: m})
	require.False(t, errs.HasErrors(), "%v", errs)
	t.Cleanup(reg.Close)
	h.reg = reg
	h.srv = server.New(server.Config{
		Settings: settings, Store: h.st, Registry: reg, Logger: logger,
		Metrics: m, MetricsHandler: m.Handler(), Now: h.clock.Now,
	})
	return m, logs
}

// value reads one series from the registry: the family name and its
// labels; 0 when the series does not exist.
func value(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if matches(s, labels) {
				switch {
				case s.Counter != nil:
					return s.Counter.GetValue()
				case s.Histogram != nil:
					return float64(s.Histogram.GetSampleCount())
				case s.Gauge != nil:
					return s.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func matches(s *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, l := range s.GetLabel() {
		want, ok := labels[l.GetName()]
		if !ok {
			continue
		}
		if want != l.GetValue() {
			return false
		}
		n++
	}
	return n == len(labels)
}

// TestUnfurlMetrics: each unfurl counts once under its provider, pattern
// and outcome; the first is a cache miss with an upstream exchange, the
// second a hit; refused callbacks count without a pattern; a provider
// that is not configured is never a label.
func TestUnfurlMetrics(t *testing.T) {
	h := newHarness(t)
	m, _ := withMetrics(t, h, nil)
	tok, _ := h.token("tracker")

	require.Equal(t, http.StatusOK, h.unfurl("tracker", tok, itemURI).Code)
	require.Equal(t, http.StatusOK, h.unfurl("tracker", tok, itemURI).Code)
	h.unfurl("tracker", tok, "https://tracker.example.com/nope")
	h.unfurl("tracker", "", itemURI)
	h.do(http.MethodPost, "/providers/tracker/unfurl", tok, "text/plain", `{}`)
	h.unfurl("no-such-provider", tok, itemURI)

	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"attributes", "unfurld_unfurl_requests_total", map[string]string{"provider": "tracker", "pattern": "item", "outcome": "attributes"}, 2},
		{"not found", "unfurld_unfurl_requests_total", map[string]string{"provider": "tracker", "pattern": "none", "outcome": "not_found"}, 1},
		{"unauthorized", "unfurld_unfurl_requests_total", map[string]string{"provider": "tracker", "pattern": "none", "outcome": "unauthorized"}, 1},
		{"bad request", "unfurld_unfurl_requests_total", map[string]string{"provider": "tracker", "pattern": "none", "outcome": "bad_request"}, 1},
		{"unknown provider", "unfurld_unfurl_requests_total", map[string]string{"provider": "no-such-provider"}, 0},
		{"cache hit", "unfurld_unfurl_cache_hits_total", map[string]string{"provider": "tracker"}, 1},
		{"cache misses", "unfurld_unfurl_cache_misses_total", map[string]string{"provider": "tracker"}, 2},
		{"latency", "unfurld_unfurl_duration_seconds", map[string]string{"provider": "tracker"}, 5},
		{"upstream 2xx", "unfurld_upstream_responses_total", map[string]string{"provider": "tracker", "class": "2xx"}, 1},
		{"upstream latency", "unfurld_upstream_request_duration_seconds", map[string]string{"provider": "tracker"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.InDelta(t, tc.want, value(t, m, tc.metric, tc.labels), 0)
		})
	}
}

// TestMetricsAccess (TH-49): /metrics needs the admin token unless
// require_token is off; with an admin listener it is served there and
// not on the public listener, where /admin/status is gone too.
func TestMetricsAccess(t *testing.T) {
	off := false
	tests := []struct {
		name   string
		edit   func(*config.Server)
		admin  bool // ask the admin listener
		bearer string
		want   int
	}{
		{"no token", func(s *config.Server) { s.AdminToken = adminToken }, false, "", http.StatusUnauthorized},
		{"wrong token", func(s *config.Server) { s.AdminToken = adminToken }, false, "nope", http.StatusUnauthorized},
		{"admin token", func(s *config.Server) { s.AdminToken = adminToken }, false, adminToken, http.StatusOK},
		{"no admin token configured", nil, false, "", http.StatusNotFound},
		{"disabled", func(s *config.Server) { s.AdminToken, s.Metrics.Enabled = adminToken, &off }, false, adminToken, http.StatusNotFound},
		{"token not required", func(s *config.Server) { s.Metrics.RequireToken = &off }, false, "", http.StatusOK},
		{"admin listener", func(s *config.Server) { s.AdminListen, s.Metrics.RequireToken = "127.0.0.1:9091", &off }, true, "", http.StatusOK},
		{"not on the public listener", func(s *config.Server) { s.AdminListen, s.AdminToken = "127.0.0.1:9091", adminToken }, false, adminToken, http.StatusNotFound},
		{"token still asked on the admin listener", func(s *config.Server) { s.AdminListen, s.AdminToken = "127.0.0.1:9091", adminToken }, true, "", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			withMetrics(t, h, tc.edit)
			handler := h.srv.Handler()
			if tc.admin {
				handler = h.srv.AdminHandler()
				require.NotNil(t, handler)
			}
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			assert.Equal(t, tc.want, rec.Code, rec.Body.String())
			if tc.want == http.StatusOK {
				assert.Contains(t, rec.Body.String(), "# TYPE go_goroutines gauge")
			}
		})
	}
	t.Run("admin status moves with it", func(t *testing.T) {
		h := newHarness(t)
		withMetrics(t, h, func(s *config.Server) { s.AdminListen, s.AdminToken = "127.0.0.1:9091", adminToken })
		req := httptest.NewRequest(http.MethodGet, "/admin/status", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		rec := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(rec, req)
		assert.Equal(t, http.StatusNotFound, rec.Code)
		rec = httptest.NewRecorder()
		h.srv.AdminHandler().ServeHTTP(rec, req)
		assert.Equal(t, http.StatusOK, rec.Code)
	})
}

// records decodes the JSON log lines with the given message.
func records(t *testing.T, logs, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), sc.Text())
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// TestUnfurlRequestLine (TH-49): every unfurl's request line says the
// provider, pattern, outcome and cause, the upstream latency and the
// request id, and never the bearer or the upstream credential; at debug
// level each attribute left out gets a line saying why.
func TestUnfurlRequestLine(t *testing.T) {
	h := newHarness(t)
	// No avatar: that attribute is left out.
	h.up.Set("/api/projects/acme/items/1", upstreamtest.Response{Body: `{"title":"Fix it","state":"open","author":{"name":"Doc"},"labels":[],"body":"b"}`})
	_, logs := withMetrics(t, h, nil)
	tok, _ := h.token("tracker")

	h.unfurl("tracker", tok, itemURI)
	h.unfurl("tracker", tok, itemURI)
	h.unfurl("tracker", tok, "https://tracker.example.com/nope")
	h.unfurl("tracker", "expired-or-unknown", itemURI)

	lines := records(t, logs.String(), "request")
	require.Len(t, lines, 4, logs.String())
	tests := []struct {
		outcome, pattern, cause string
		upstream                bool
	}{
		{"attributes", "item", "fetched", true},
		{"attributes", "item", "cache hit", false},
		{"not_found", "none", "no pattern matches this link", false},
		{"unauthorized", "none", "", false},
	}
	for i, tc := range tests {
		l := lines[i]
		assert.Equal(t, "tracker", l["provider"], "line %d", i)
		assert.Equal(t, tc.pattern, l["pattern"], "line %d", i)
		assert.Equal(t, tc.outcome, l["outcome"], "line %d", i)
		if tc.cause != "" {
			assert.Equal(t, tc.cause, l["cause"], "line %d", i)
		} else {
			assert.NotEmpty(t, l["cause"], "line %d", i)
		}
		assert.NotEmpty(t, l["request_id"], "line %d", i)
		assert.Contains(t, l, "upstream_latency", "line %d", i)
		assert.Equal(t, tc.upstream, l["upstream_latency"].(float64) > 0, "line %d: %v", i, l["upstream_latency"])
	}
	left := records(t, logs.String(), "attribute left out")
	require.NotEmpty(t, left)
	assert.Equal(t, "avatar", left[0]["attribute"])
	assert.Equal(t, "value is empty", left[0]["reason"])
	assert.NotContains(t, logs.String(), tok)
	assert.NotContains(t, logs.String(), "sekrit-upstream-token")
}
