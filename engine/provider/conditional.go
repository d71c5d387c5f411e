package provider

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/unfurld/unfurld/engine/upstream"
)

// Validators identify the version of an upstream object that an earlier
// answer to a pattern's first request (its primary request) described:
// its ETag and Last-Modified headers (RFC 9110 8.8). A live refresh sends
// them back as If-None-Match and If-Modified-Since, and an unchanged
// object then costs a 304 without a body; GitHub does not even count it
// against the rate limit.
type Validators struct {
	ETag         string
	LastModified string
}

// IsZero reports whether there is no validator to send.
func (v Validators) IsZero() bool { return v.ETag == "" && v.LastModified == "" }

// UpstreamInfo is what the upstream said during a NoCache unfurl, for the
// live refresher and its poller (issue 4 item 2): the outcome's HTTP
// status, the primary request's validators and the rate-limit signals.
type UpstreamInfo struct {
	// Status is the HTTP status of the last answer; 0 when the last
	// request got none (network error, timeout) or none was sent.
	Status int
	// Requests counts the requests sent, for a request budget.
	Requests int
	// Validators are the primary request's ETag and Last-Modified from a
	// 2xx answer; zero after a 304 or a failure.
	Validators Validators
	// RetryAfter is the longest Retry-After of a failed answer.
	RetryAfter time.Duration
	// RateLimit is the answer with the fewest requests remaining.
	RateLimit upstream.RateLimit
}

// probe collects UpstreamInfo over one run and makes the primary request
// conditional. A nil probe does nothing: cached unfurls, traces and the
// identity request run without one.
type probe struct {
	// primary is the pattern's first request; nil for a pattern without
	// requests.
	primary *requestPlan
	// cond are the validators to send with it.
	cond        Validators
	info        UpstreamInfo
	notModified bool
}

// prepare adds the conditional headers to the primary request.
func (pr *probe) prepare(rp *requestPlan, h http.Header) {
	if pr == nil || rp != pr.primary {
		return
	}
	if pr.cond.ETag != "" {
		h.Set("If-None-Match", pr.cond.ETag)
	}
	if pr.cond.LastModified != "" {
		h.Set("If-Modified-Since", pr.cond.LastModified)
	}
}

// observe records one answer of the run.
func (pr *probe) observe(rp *requestPlan, resp *upstream.Response, err error, now time.Time) {
	if pr == nil {
		return
	}
	pr.info.Requests++
	var limit upstream.RateLimit
	var se *upstream.StatusError
	switch {
	case err == nil && resp != nil:
		pr.info.Status = resp.Status
		limit = upstream.ParseRateLimit(resp.Header, now)
		if rp == pr.primary {
			switch {
			case resp.Status == http.StatusNotModified:
				pr.notModified = true
			case resp.Status/100 == 2:
				pr.info.Validators = Validators{ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
			}
		}
	case errors.As(err, &se):
		pr.info.Status = se.Code
		limit = se.RateLimit
		pr.info.RetryAfter = max(pr.info.RetryAfter, se.RetryAfter)
	default:
		pr.info.Status = 0
	}
	if limit.Known && (!pr.info.RateLimit.Known || limit.Remaining < pr.info.RateLimit.Remaining) {
		pr.info.RateLimit = limit
	}
}

// fresh runs m for a caller that wants the upstream's current state
// (UnfurlOptions.NoCache): a live refresh, a retry after a token refresh,
// a preview. It bypasses the result cache and the collapsing of
// concurrent unfurls in both directions, since a conditional run's 304
// answers only its own caller, and it reports what the upstream said in
// Result.Upstream. When the primary request answers 304 the run's result
// is dropped for a NotModified one: the 304 has no body to map, and
// nothing changed.
func (p *Provider) fresh(ctx context.Context, m *Match, cred Credential, opts UnfurlOptions) *Result {
	pr := &probe{cond: opts.Validators}
	if len(m.Pattern.requests) > 0 {
		pr.primary = m.Pattern.requests[0]
	}
	opts.probe = pr
	r := p.run(ctx, m, cred, opts)
	if pr.notModified {
		return &Result{NotModified: true, Upstream: pr.info}
	}
	r.Upstream = pr.info
	return r
}
