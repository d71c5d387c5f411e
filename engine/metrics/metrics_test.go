package metrics_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/metrics"
)

// feed touches every series once, so that the vectors have children to
// lint and to expose.
func feed(m *metrics.Metrics) {
	m.Unfurl("github", "issue", "attributes", metrics.CacheMiss, 40*time.Millisecond)
	m.Unfurl("github", "issue", "attributes", metrics.CacheHit, time.Millisecond)
	m.Unfurl("github", "none", "unauthorized", "", time.Millisecond)
	m.Collapsed("github")
	m.Exchange("github", 200, 30*time.Millisecond)
	m.Exchange("github", 0, time.Second)
	m.Refused("github")
	m.OAuth("github", "authorize", "ok")
	m.Token("github", "authorization_code", "granted")
	m.Webhook("github", "accepted")
	m.Refresh("github", "poll", "not_modified")
	m.Patch("github", "delivered")
	m.Canary("github", 3, 1, 0, time.Unix(1_800_000_000, 0))
	m.StoreOp("GetToken", time.Millisecond, false)
	m.StoreOp("PutSubscriptions", time.Millisecond, true)
	m.StoreRoundTrip()
	m.StoreRoundTrip()
	m.SetLive(metrics.LiveSource{
		Subscriptions: func() map[string]int { return map[string]int{"github": 3} },
		Budget:        func() map[string]float64 { return map[string]float64{"github": 12.5} },
		RateLimit:     func() map[string]float64 { return map[string]float64{"github": 4999} },
		Outbox: func(context.Context) (map[string]int, map[string]time.Time, error) {
			return map[string]int{"github": 2}, map[string]time.Time{"github": time.Unix(1000, 0)}, nil
		},
		Now: func() time.Time { return time.Unix(1060, 0) },
	})
}

// TestLint runs the library's linter over every series: names follow the
// Prometheus conventions (unfurld_ prefix, base units, _total counters).
func TestLint(t *testing.T) {
	m := metrics.New()
	feed(m)
	problems, err := testutil.GatherAndLint(m.Registry())
	require.NoError(t, err)
	assert.Empty(t, problems)
}

func TestSeries(t *testing.T) {
	m := metrics.New()
	feed(m)
	tests := []struct {
		name, series string
		want         float64
	}{
		{"requests", `unfurld_unfurl_requests_total{outcome="attributes",pattern="issue",provider="github"}`, 2},
		{"cache hits", `unfurld_unfurl_cache_hits_total{provider="github"}`, 1},
		{"cache misses", `unfurld_unfurl_cache_misses_total{provider="github"}`, 1},
		{"upstream 2xx", `unfurld_upstream_responses_total{class="2xx",provider="github"}`, 1},
		{"upstream no answer", `unfurld_upstream_responses_total{class="error",provider="github"}`, 1},
		{"store errors", `unfurld_store_errors_total{operation="PutSubscriptions"}`, 1},
		{"database round trips", `unfurld_store_round_trips_total`, 2},
		{"outbox", `unfurld_live_outbox_items{provider="github"}`, 2},
		{"outbox age", `unfurld_live_outbox_oldest_age_seconds{provider="github"}`, 60},
		{"budget", `unfurld_live_poll_budget_remaining{provider="github"}`, 12.5},
		{"canary ok", `unfurld_canary_samples{provider="github",verdict="ok"}`, 3},
		{"canary changed", `unfurld_canary_samples{provider="github",verdict="changed"}`, 1},
		{"canary failed", `unfurld_canary_samples{provider="github",verdict="failed"}`, 0},
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Contains(t, body, tc.series+" "+trimFloat(tc.want))
		})
	}
	assert.Contains(t, body, "go_goroutines")
	assert.Contains(t, body, "process_")
}

// TestOutboxErrorKeepsTheRest: a store failing under the outbox gauges
// leaves them out of the scrape but serves every other series.
func TestOutboxErrorKeepsTheRest(t *testing.T) {
	m := metrics.New()
	m.Unfurl("github", "issue", "attributes", metrics.CacheHit, time.Millisecond)
	m.SetLive(metrics.LiveSource{Outbox: func(context.Context) (map[string]int, map[string]time.Time, error) {
		return nil, nil, errors.New("store closed")
	}})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	assert.Equal(t, 200, rec.Code)
	assert.Contains(t, rec.Body.String(), "unfurld_unfurl_requests_total")
	assert.NotContains(t, rec.Body.String(), "unfurld_live_outbox_items{")
}

// TestHotPathAllocatesNothing: once a label set has been seen, counting
// an unfurl, an exchange or a store operation allocates nothing, so a
// warm unfurl stays allocation-free.
func TestHotPathAllocatesNothing(t *testing.T) {
	m := metrics.New()
	feed(m)
	allocs := testing.AllocsPerRun(100, func() {
		m.Unfurl("github", "issue", "attributes", metrics.CacheHit, time.Millisecond)
		m.Exchange("github", 200, time.Millisecond)
		m.StoreOp("GetToken", time.Millisecond, false)
		m.Collapsed("github")
	})
	assert.Zero(t, allocs)
}

// TestNewLabelsAfterReload: a provider first seen late (after a reload)
// gets its series like the others.
func TestNewLabelsAfterReload(t *testing.T) {
	m := metrics.New()
	feed(m)
	m.Unfurl("gitlab", "mr", "not_found", metrics.CacheMiss, time.Millisecond)
	n, err := testutil.GatherAndCount(m.Registry(), "unfurld_unfurl_requests_total")
	require.NoError(t, err)
	assert.Equal(t, 3, n) // github issue attributes, github none unauthorized, gitlab mr not_found
}

// trimFloat prints f as the text format does.
func trimFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
