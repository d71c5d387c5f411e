package notion

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrUnavailable wraps failures to get an answer from Notion at all:
	// connection refused or reset, or the per-call timeout. Such calls may
	// be retried with backoff (security.md TH-52, F7).
	ErrUnavailable = errors.New("notion unavailable")
	// ErrBodyTooLarge is returned when a body that must be decoded (a
	// token response) is longer than ClientOptions.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("response body too large")
)

// StatusServiceOverload is Notion's non-standard "service_overload"
// status, to be treated like 429 (protocol 7.4, security.md A7).
const StatusServiceOverload = 529

// maxRetryAfter bounds a parsed Retry-After so that a hostile value cannot
// overflow time.Duration or park a caller for days.
const maxRetryAfter = 24 * time.Hour

// maxMessageLen bounds the Notion text kept in an APIError, which ends up
// in logs.
const maxMessageLen = 512

// APIError is a non-2xx answer from Notion, parsed from either of its two
// error shapes (protocol 10 #23): OAuth style
// {error, error_description, request_id} from /v1/oauth/token, and API
// style {object:"error", status, code, message, request_id,
// additional_data} from the rest of the API (protocol 4.5, 7.4).
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Code is the body's "code" (API style) or "error" (OAuth style), e.g.
	// "rate_limited" or "invalid_grant". Empty when the body had neither.
	Code string
	// Message is the body's "message" or "error_description", with any
	// value we sent as a credential removed and cut to 512 bytes.
	Message string
	// RequestID is Notion's request id, from the body or else the
	// x-notion-request-id header; quote it when asking Notion for help.
	RequestID string
	// RetryAfter is the Retry-After header in whole seconds (Notion sends
	// it with 429 and 529), zero when absent or not an integer, capped at
	// 24h.
	RetryAfter time.Duration
	// AdditionalData is the API style's optional additional_data object,
	// kept raw and never printed.
	AdditionalData json.RawMessage
}

// Error reports status, code and message; never a token, secret or code.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "notion status %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id " + e.RequestID + ")")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// IsRateLimited reports whether err is a Notion 429 or 529: wait
// RetryAfter, then retry (protocol 7.4).
func IsRateLimited(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.Status == http.StatusTooManyRequests || e.Status == StatusServiceOverload)
}

// IsAuth reports whether err is a Notion 401 or 403: the token is dead or
// lacks access, so retrying cannot help and the connection needs
// attention (protocol 7.3, security.md TH-52).
func IsAuth(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden)
}

// IsRetryable reports whether the call may succeed if repeated: Notion
// answered 429, 529 or another 5xx, or could not be reached at all
// (ErrUnavailable). The caller's own cancellation is not retryable.
func IsRetryable(err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	var e *APIError
	return errors.As(err, &e) && (e.Status == http.StatusTooManyRequests || e.Status >= 500)
}

// parseAPIError builds an APIError from a non-2xx response. A body in
// neither shape (HTML from a proxy, truncated JSON) still gives an error
// carrying the status; the body itself is never kept.
func parseAPIError(r *response, scrub []string) *APIError {
	e := &APIError{
		Status:     r.status,
		RequestID:  r.header.Get("x-notion-request-id"),
		RetryAfter: parseRetryAfter(r.header.Get("Retry-After")),
	}
	fields, ok := errorFields(r.body)
	if !ok {
		return e
	}
	e.Code = firstString(fields, "code", "error")
	e.Message = clean(firstString(fields, "message", "error_description"), scrub)
	if id := firstString(fields, "request_id"); id != "" {
		e.RequestID = id
	}
	if ad, ok := fields["additional_data"]; ok && string(ad) != "null" {
		e.AdditionalData = ad
	}
	return e
}

// errorFields decodes body as a JSON object and reports whether it looks
// like either error shape.
func errorFields(body []byte) (map[string]json.RawMessage, bool) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return nil, false
	}
	return fields, firstString(fields, "object") == "error" || firstString(fields, "error", "code") != ""
}

// firstString returns the first of keys whose value is a JSON string.
// Values of other types are skipped: Notion's bodies are read leniently.
func firstString(fields map[string]json.RawMessage, keys ...string) string {
	for _, k := range keys {
		var s string
		if raw, ok := fields[k]; ok && json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// clean removes every value of scrub from msg, so a credential Notion
// might echo back cannot reach an error string or a log (TH-49), and cuts
// the result to maxMessageLen bytes.
func clean(msg string, scrub []string) string {
	for _, s := range scrub {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "<redacted>")
		}
	}
	if len(msg) > maxMessageLen {
		msg = strings.ToValidUTF8(msg[:maxMessageLen], "")
	}
	return msg
}

// parseRetryAfter reads Retry-After as whole seconds, the only form Notion
// documents (protocol 7.4). Anything else gives zero.
func parseRetryAfter(v string) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	if n > int64(maxRetryAfter/time.Second) {
		return maxRetryAfter
	}
	return time.Duration(n) * time.Second
}
