package upstream

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimit is what an upstream said about its request budget in the
// headers of one answer. Live polling (issue 4) pauses a provider whose
// budget is spent until the reset, instead of learning it from a 429.
type RateLimit struct {
	// Known is true when the answer carried a remaining count.
	Known bool
	// Remaining is how many requests are left in the window.
	Remaining int
	// Limit is the window's size; 0 when not said.
	Limit int
	// Reset is when the window starts again; zero when not said.
	Reset time.Time
}

// rateLimitHeaders are the remaining/reset/limit headers we read, most
// specific first: GitHub's X-RateLimit-*, Linear's X-RateLimit-Requests-*
// and the IETF draft's RateLimit-*, which GitLab sends.
var rateLimitHeaders = [][3]string{
	{"X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Limit"},
	{"X-RateLimit-Requests-Remaining", "X-RateLimit-Requests-Reset", "X-RateLimit-Requests-Limit"},
	{"RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Limit"},
}

// ParseRateLimit reads the rate-limit headers of h. A reset is read as
// Unix seconds (GitHub, GitLab), Unix milliseconds (Linear) or, when
// small, seconds from now (the IETF draft); anything else is ignored.
func ParseRateLimit(h http.Header, now time.Time) RateLimit {
	for _, names := range rateLimitHeaders {
		v := strings.TrimSpace(h.Get(names[0]))
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			continue
		}
		limit, err := strconv.Atoi(strings.TrimSpace(h.Get(names[2])))
		if err != nil || limit < 0 {
			limit = 0 // absent, or the draft's "100;w=60" list form
		}
		return RateLimit{Known: true, Remaining: n, Reset: parseReset(h.Get(names[1]), now), Limit: limit}
	}
	return RateLimit{}
}

// Thresholds that tell the forms of a reset apart: Unix seconds are past
// 1e9 since 2001, Unix milliseconds past 1e12 since then; a delay is far
// below both.
const (
	unixSecondsFloor = 1_000_000_000
	unixMillisFloor  = 1_000_000_000_000
)

// parseReset reads one reset value; a time in the past, or further than
// maxRetryAfter away, is capped like a Retry-After.
func parseReset(v string, now time.Time) time.Time {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	var t time.Time
	switch {
	case n >= unixMillisFloor:
		t = time.UnixMilli(n)
	case n >= unixSecondsFloor:
		t = time.Unix(n, 0)
	default:
		t = now.Add(time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second)
	}
	if t.After(now.Add(maxRetryAfter)) {
		t = now.Add(maxRetryAfter)
	}
	return t
}
