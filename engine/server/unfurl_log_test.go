package server_test

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// upstreamBody is text the fake upstream answers with; it must never
// reach a log (TH-36, TH-49).
const upstreamBody = "UPSTREAM-BODY-7f3a"

// withLogs replaces the harness's server with one logging JSON to the
// returned buffer (and to the test's output).
func withLogs(t *testing.T, h *harness) *syncBuffer {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(server.LogHandler(slog.NewJSONHandler(io.MultiWriter(t.Output(), logs), &slog.HandlerOptions{Level: slog.LevelDebug})))
	h.srv = server.New(server.Config{Settings: h.settings, Store: h.st, Registry: h.reg, Logger: logger, Now: h.clock.Now})
	return logs
}

// warnings returns the warn records of logs, decoded.
func warnings(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), sc.Text())
		if rec["level"] == "WARN" {
			out = append(out, rec)
		}
	}
	return out
}

// TestUnfurlLogsUpstreamFailures: an unfurl whose upstream fails, or
// whose outbound call unfurld refuses, logs one warning naming the
// provider, the pattern and the cause, and never a token or the upstream
// body (TH-30, TH-36, TH-49; F5). Answers that are normal (found, not
// found) and cache hits log nothing.
func TestUnfurlLogsUpstreamFailures(t *testing.T) {
	const path = "/api/projects/acme/items/1"
	const uri = "https://tracker.example.com/acme/items/1"
	tests := []struct {
		name   string
		opts   []option
		setup  func(h *harness)
		slow   bool
		want   map[string]any // nil: no warning
		status int            // the error operation's status
	}{
		{
			name: "5xx",
			setup: func(h *harness) {
				h.up.Set(path, upstreamtest.Response{Status: http.StatusBadGateway, Body: `{"message":"` + upstreamBody + `"}`})
			},
			want:   map[string]any{"kind": "status", "status": float64(502)},
			status: 503,
		},
		{
			name: "429",
			setup: func(h *harness) {
				h.up.Set(path, upstreamtest.Response{Status: http.StatusTooManyRequests, Body: upstreamBody})
			},
			want:   map[string]any{"kind": "status", "status": float64(429)},
			status: 503,
		},
		{
			name:   "not JSON",
			setup:  func(h *harness) { h.up.Set(path, upstreamtest.Response{Body: "<html>" + upstreamBody + "</html>"}) },
			want:   map[string]any{"kind": "decode"},
			status: 502,
		},
		{
			name: "private address refused by the dial guard",
			opts: []option{func(c *config.Config) {
				c.Providers[0].Upstream.AllowPrivateNetworks = false
			}},
			want:   map[string]any{"kind": "refused"},
			status: 502,
		},
		{
			name:   "timeout",
			slow:   true,
			setup:  func(h *harness) { h.up.Set(path, upstreamtest.Response{Body: itemJSON, Delay: time.Minute}) },
			want:   map[string]any{"kind": "timeout"},
			status: 504,
		},
		{
			name: "not found is not a failure",
			setup: func(h *harness) {
				h.up.Set(path, upstreamtest.Response{Status: http.StatusNotFound, Body: upstreamBody})
			},
			status: 404,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.slow && testing.Short() {
				t.Skip("waits for the 2s unfurl timeout")
			}
			h := newHarness(t, tc.opts...)
			logs := withLogs(t, h)
			if tc.setup != nil {
				tc.setup(h)
			}
			tok, _ := h.token("tracker")

			rec := h.unfurl("tracker", tok, uri)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			status, _ := errorSet(t, rec)
			assert.Equal(t, tc.status, status)

			out := logs.String()
			warns := warnings(t, out)
			if tc.want == nil {
				assert.Empty(t, warns)
			} else {
				require.Len(t, warns, 1, out)
				w := warns[0]
				assert.Equal(t, "unfurl upstream failure", w["msg"])
				assert.Equal(t, "tracker", w["provider"])
				assert.Equal(t, "item", w["pattern"])
				assert.Equal(t, "item", w["request"])
				assert.NotEmpty(t, w["err"])
				assert.NotEmpty(t, w["request_id"])
				for k, v := range tc.want {
					assert.Equal(t, v, w[k], k)
				}
			}
			for _, secret := range []string{tok, "sekrit-upstream-token", upstreamBody} {
				assert.NotContains(t, out, secret)
			}
		})
	}
}

// TestUnfurlCacheHitLogsNothing: only the call that reached the upstream
// may log; a cached answer is not an upstream event.
func TestUnfurlCacheHitLogsNothing(t *testing.T) {
	h := newHarness(t)
	logs := withLogs(t, h)
	tok, _ := h.token("tracker")
	uri := "https://tracker.example.com/acme/items/1"
	require.Equal(t, http.StatusOK, h.unfurl("tracker", tok, uri).Code)
	require.Equal(t, http.StatusOK, h.unfurl("tracker", tok, uri).Code)
	assert.Len(t, h.up.Requests(), 1, "the second answer came from the cache")
	assert.Empty(t, warnings(t, logs.String()))
}
