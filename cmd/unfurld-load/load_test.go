package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name string
		lat  []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of ten is the fifth", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.5, 5 * time.Millisecond},
		{"p99 of ten is the last", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10 * time.Millisecond},
		{"p90 of ten is the ninth", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9 * time.Millisecond},
		{"max", ms(1, 2, 3), 1, 3 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, stats{lat: tc.lat}.percentile(tc.q))
		})
	}
}

func TestMergeAddsUp(t *testing.T) {
	var s stats
	s.merge(stats{name: "x", requests: 10, elapsed: time.Second, lat: make([]time.Duration, 10)})
	s.merge(stats{name: "x", requests: 30, errors: 1, elapsed: time.Second, lat: make([]time.Duration, 30)})
	assert.Equal(t, 40, s.requests)
	assert.Equal(t, 1, s.errors)
	assert.InDelta(t, 20.0, s.throughput(), 1e-9)
	assert.Len(t, s.lat, 40)
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"all flags", []string{"--duration", "1s", "--concurrency", "8", "--latency", "0s", "--rounds", "1", "--scenarios", "ad"}, ""},
		{"positional", []string{"extra"}, "unexpected argument"},
		{"zero duration", []string{"--duration", "0s"}, "--duration"},
		{"no workers", []string{"--concurrency", "0"}, "--concurrency"},
		{"unknown scenario", []string{"--scenarios", "ax"}, "--scenarios"},
		{"hand-written baseline", []string{"--scenarios", "ace"}, ""},
		{"PostgreSQL against bbolt", []string{"--scenarios", "fg"}, ""},
		{"no scenario h", []string{"--scenarios", "eh"}, "--scenarios"},
		{"driver under a-e", []string{"--driver", "postgres"}, ""},
		{"unknown driver", []string{"--driver", "sqlite"}, "--driver"},
		{"cap below workers", []string{"--max-requests", "10"}, "--max-requests"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseOptions(tc.args, io.Discard)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func TestDur(t *testing.T) {
	assert.Equal(t, "85.0µs", dur(85*time.Microsecond))
	assert.Equal(t, "-1.500ms", dur(-1500*time.Microsecond))
	assert.Equal(t, "2.000s", dur(2*time.Second))
}

// TestLoaderAgainstFake runs the load generator against the in-process
// fake on loopback: every request is counted by the fake, none fails, and
// distinct-URI requests never repeat a number.
func TestLoaderAgainstFake(t *testing.T) {
	f, err := startFake()
	require.NoError(t, err)
	t.Cleanup(f.close)
	l := &loader{concurrency: 4, perWorker: 50}
	c := l.newClient()
	t.Cleanup(c.CloseIdleConnections)

	s := l.run(t.Context(), c, fakeTarget(f), time.Minute)

	require.NoError(t, s.firstErr)
	assert.Equal(t, 200, s.requests, "the per-worker cap ends the run long before the minute")
	assert.Equal(t, int64(200), f.calls.Load())
	assert.LessOrEqual(t, f.conns.Load(), int64(4), "workers reuse keep-alive connections")
	assert.Equal(t, uint64(200), l.seq.Load())
}

// TestLoaderCountsErrors checks that a failing target stops each worker
// after maxErrorsPerWorker errors instead of spinning.
func TestLoaderCountsErrors(t *testing.T) {
	f, err := startFake()
	require.NoError(t, err)
	t.Cleanup(f.close)
	l := &loader{concurrency: 2, perWorker: 1000}
	c := l.newClient()
	t.Cleanup(c.CloseIdleConnections)
	bad := fakeTarget(f)
	bad.url = func(uint64) string { return f.URL + "/nope" }

	s := l.run(t.Context(), c, bad, time.Minute)

	assert.Equal(t, 0, s.requests)
	assert.Equal(t, 2*maxErrorsPerWorker, s.errors)
	require.Error(t, s.firstErr)
	assert.Contains(t, s.firstErr.Error(), "status 404")
}

func TestLoopbackOnly(t *testing.T) {
	_, err := loopbackDialer(t.Context(), "tcp", "192.0.2.1:80")
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "only 127.0.0.1"))
}

// TestReadCounters sums the unfurl counter over its labels and reads
// the round trips, as the PostgreSQL scenarios divide them.
func TestReadCounters(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `# HELP unfurld_unfurl_requests_total x
# TYPE unfurld_unfurl_requests_total counter
unfurld_unfurl_requests_total{outcome="attributes",pattern="item",provider="bench"} 90
unfurld_unfurl_requests_total{outcome="unauthorized",pattern="none",provider="bench"} 10
# HELP unfurld_store_round_trips_total x
# TYPE unfurld_store_round_trips_total counter
unfurld_store_round_trips_total 25
`)
	}))
	t.Cleanup(srv.Close)

	got, err := readCounters(t.Context(), strings.TrimPrefix(srv.URL, "http://"))

	require.NoError(t, err)
	assert.Equal(t, counters{unfurls: 100, roundTrips: 25}, got)
	assert.InDelta(t, 0.25, got.perUnfurl(), 1e-9)
	assert.Zero(t, counters{}.perUnfurl(), "no unfurls, no division by zero")
}

// TestStorageConfig: the PostgreSQL section names the driver and quotes
// the DSN for YAML.
func TestStorageConfig(t *testing.T) {
	assert.Equal(t, "storage:\n  path: DATA/unfurld.db", storageConfig(""))
	assert.Equal(t, "storage:\n  path: DATA/unfurld.db\n  driver: postgres\n  dsn: 'postgres:///d?host=%2Ftmp%2Fx&user=it''s'",
		storageConfig("postgres:///d?host=%2Ftmp%2Fx&user=it's"))
}

// TestSharesWithin: the three-replica target of issue 11, each share of
// the polls within 10 % of a third.
func TestSharesWithin(t *testing.T) {
	tests := []struct {
		name  string
		polls []float64
		want  bool
	}{
		{"even", []float64{100, 100, 100}, true},
		{"just inside", []float64{109, 96, 95}, true},
		{"one replica too busy", []float64{112, 94, 94}, false},
		{"one replica idle", []float64{150, 150, 0}, false},
		{"no polls at all", []float64{0, 0, 0}, false},
		{"one replica has it all", []float64{7}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &liveResult{}
			for _, p := range tc.polls {
				r.replicas = append(r.replicas, replicaResult{polls: p})
			}
			assert.Equal(t, tc.want, r.sharesWithin(0.1))
		})
	}
}
