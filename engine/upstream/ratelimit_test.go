package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParseRateLimit reads the remaining/reset pairs of GitHub, Linear and
// the IETF draft (GitLab), with resets as Unix seconds, Unix milliseconds
// or a delay, capped like Retry-After.
func TestParseRateLimit(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, time.March, 14, 15, 9, 26, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   RateLimit
	}{
		{"none", nil, RateLimit{}},
		{"github", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1741965266", "X-RateLimit-Limit": "5000"},
			RateLimit{Known: true, Remaining: 0, Reset: now.Add(5 * time.Minute), Limit: 5000}},
		{"draft list limit", map[string]string{"RateLimit-Remaining": "9", "RateLimit-Limit": "100, 100;w=60"},
			RateLimit{Known: true, Remaining: 9}},
		{"linear ms", map[string]string{"X-RateLimit-Requests-Remaining": "12", "X-RateLimit-Requests-Reset": "1741965266000"},
			RateLimit{Known: true, Remaining: 12, Reset: now.Add(5 * time.Minute)}},
		{"draft delay", map[string]string{"RateLimit-Remaining": "3", "RateLimit-Reset": "30"},
			RateLimit{Known: true, Remaining: 3, Reset: now.Add(30 * time.Second)}},
		{"no reset", map[string]string{"X-RateLimit-Remaining": "7"}, RateLimit{Known: true, Remaining: 7}},
		{"garbage", map[string]string{"X-RateLimit-Remaining": "lots", "X-RateLimit-Reset": "soon"}, RateLimit{}},
		{"negative", map[string]string{"X-RateLimit-Remaining": "-1"}, RateLimit{}},
		{"far reset capped", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "9999999999"},
			RateLimit{Known: true, Remaining: 0, Reset: now.Add(maxRetryAfter)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			got := ParseRateLimit(h, now)
			assert.Equal(t, tc.want.Known, got.Known)
			assert.Equal(t, tc.want.Remaining, got.Remaining)
			assert.Equal(t, tc.want.Limit, got.Limit)
			assert.True(t, tc.want.Reset.Equal(got.Reset), "reset %s, want %s", got.Reset, tc.want.Reset)
		})
	}
}

// TestStatusErrorRateLimit: a refused request carries the answer's
// rate-limit headers, and no body (TH-36).
func TestStatusErrorRateLimit(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", "1741965266")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"message":"API rate limit exceeded"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := New(Options{AllowedHosts: []string{strings.TrimPrefix(srv.URL, "http://")}, AllowPrivateNetworks: true})
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	_, err = c.Do(context.Background(), &Request{URL: srv.URL + "/x"})
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusForbidden, se.Code)
	assert.True(t, se.RateLimit.Known)
	assert.Zero(t, se.RateLimit.Remaining)
	assert.Equal(t, int64(1741965266), se.RateLimit.Reset.Unix())
	assert.NotContains(t, err.Error(), "exceeded")
}
