package upstream

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrBodyTooLarge is returned when a response body, after
	// decompression, is longer than Options.MaxBodyBytes (TH-32).
	ErrBodyTooLarge = errors.New("response body too large")
	// ErrHostNotAllowed is returned when a request or one of its redirects
	// targets a host outside Options.AllowedHosts, or uses a scheme other
	// than http/https. Nothing is sent to such a host (TH-27, TH-30).
	ErrHostNotAllowed = errors.New("host not allowed")
	// ErrAddressNotAllowed is returned when the dial guard refuses the
	// address a host resolved to: loopback, private, link-local, metadata
	// and other special-purpose addresses (TH-30). It wraps the guard's
	// own error, which says which rule refused.
	ErrAddressNotAllowed = errors.New("address not allowed")
	// ErrBadValue is returned when a placeholder value cannot be put into a
	// URL or header safely: dot segments, control characters, empty path
	// values or values longer than 1024 bytes (TH-29).
	ErrBadValue = errors.New("bad placeholder value")
	// ErrMissingValue is what a Lookup wraps when a placeholder's value is
	// null or absent (an unassigned issue's assignee). Expand and
	// ExpandURL pass it through, so the caller can skip an optional
	// request instead of failing the unfurl.
	ErrMissingValue = errors.New("value is null or absent")
)

// Refused reports whether err is an outbound call unfurld refused to
// make: a host off the allowlist, a redirect leaving it, or an address the
// dial guard refuses. Nothing reached the network for such a call.
func Refused(err error) bool {
	return errors.Is(err, ErrHostNotAllowed) || errors.Is(err, ErrAddressNotAllowed)
}

// maxRetryAfter bounds a parsed Retry-After so that a hostile value cannot
// overflow time.Duration or park a caller for days.
const maxRetryAfter = 24 * time.Hour

// StatusError is a non-2xx, non-304 upstream answer. It carries only the
// status code and the parsed Retry-After and rate-limit headers: the body
// is never kept, so it cannot leak into messages or logs (TH-36).
type StatusError struct {
	// Code is the HTTP status code.
	Code int
	// RetryAfter is the upstream's Retry-After (integer seconds or an HTTP
	// date), zero when absent or unparsable, capped at 24h.
	RetryAfter time.Duration
	// RateLimit is the answer's rate-limit headers (ratelimit.go).
	RateLimit RateLimit
}

// Error implements error without any upstream text.
func (e *StatusError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("upstream status %d (retry after %s)", e.Code, e.RetryAfter)
	}
	return fmt.Sprintf("upstream status %d", e.Code)
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP-date (RFC
// 9110 10.2.3). Anything else, or a date in the past, gives zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}
