package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/mapping"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/upstream"
)

// Credential is the upstream credential an unfurl runs with.
type Credential struct {
	// Key identifies whose credential this is, for caches and collapsing:
	// "static" for the provider's service-wide token, or a connection id.
	// Never the secret itself.
	Key string
	// Token is the credential. Empty means the provider's service-wide
	// token from upstream.auth.token, if any.
	Token config.Secret
	// Fields are the values of the API-key form when the provider asks
	// for several (upstream.auth.api_key.fields); Token is then unused.
	Fields map[string]config.Secret
}

// staticKey is the cache identity of the provider's service-wide token.
const staticKey = "static"

// UnfurlOptions tune one unfurl.
type UnfurlOptions struct {
	// Trace records what happened, for `unfurld preview --trace`.
	Trace bool
	// NoCache skips the result and response caches (live updates need the
	// upstream's current state).
	NoCache bool
	// Validators, with NoCache, make the pattern's first request
	// conditional (If-None-Match, If-Modified-Since): a live refresh
	// sends what the last fetch answered (issue 4, conditional.go).
	Validators Validators
	// Record, when set, is called with every upstream answer of this
	// unfurl, for `unfurld preview --record`. It runs the unfurl directly,
	// bypassing the result cache as Trace does, so the answers are the
	// ones this run got through the provider's own client.
	Record func(Exchange)
	// probe collects Result.Upstream during a NoCache run.
	probe *probe
}

// Exchange is one upstream request and its answer, as recorded for a
// fixture case.
type Exchange struct {
	// Request is the request's name in the pattern.
	Request string
	// Method and URL are what was sent (the URL unredacted: a fixture
	// file is named after its path and query).
	Method, URL string
	// Status is the answer's status code; 0 when there was no answer
	// (network error, refused host, timeout).
	Status int
	// Body is a 2xx answer's body. Error answers' bodies are never kept
	// (TH-36), so it is nil for them.
	Body []byte
}

// Result is the outcome of one unfurl: always an envelope Notion can read.
type Result struct {
	// Body is the encoded envelope.
	Body []byte
	// Attributes are the mapped attributes; nil for an error result.
	Attributes []notion.Attribute
	// Error is set when the result is an error operation.
	Error *notion.ErrorSet
	// Hash digests Body's operations, so callers can tell whether what
	// Notion would see changed.
	Hash string
	// Cached is true when the result came from the result cache.
	Cached bool
	// NotModified is set when the first request answered 304 to
	// UnfurlOptions.Validators: nothing changed upstream, and Body,
	// Attributes, Error and Hash are empty.
	NotModified bool
	// Upstream is what the upstream said during a NoCache unfurl (status,
	// validators, rate limits), for live refreshes; zero otherwise.
	Upstream UpstreamInfo
	// Trace is set when UnfurlOptions.Trace was.
	Trace *Trace
	// Pattern is the name of the pattern that ran; "" when the URI
	// matched none (or was refused before matching).
	Pattern string
	// Cause says in a few words why an error result came out as it did
	// ("request issue: upstream api.github.com: status 404", "no title
	// attribute"), for the operator's log; "" for attributes. It names
	// hosts, never a credential, a URL query or an upstream body (TH-36,
	// TH-49). Never sent to Notion.
	Cause string
	// UpstreamLatency is the time spent in upstream requests by the run
	// that made this result; zero for a cache hit.
	UpstreamLatency time.Duration
	// Missing lists the attributes left out of an attributes result, and
	// why, for the operator's debug log.
	Missing []MissingAttribute
	// Failure says why the upstream gave no usable answer, for the
	// operator's log; nil for attributes, "not found", a credential the
	// upstream refused (401/403) and answers that never went upstream.
	// Never sent to Notion.
	Failure *Failure
}

// MissingAttribute is an attribute left out of a result and why.
type MissingAttribute struct {
	// ID is the attribute's id and Why the reason it is missing.
	ID, Why string
}

// Kinds of Failure.
const (
	// FailureRefused: unfurld refused to make the call (a host off the
	// allowlist, a redirect leaving it, a private address); nothing was
	// sent (TH-27, TH-30).
	FailureRefused = "refused"
	// FailureTimeout: the upstream did not answer within the budget.
	FailureTimeout = "timeout"
	// FailureStatus: the upstream answered 429, 5xx or another status
	// that is neither success, "not found" nor "reconnect".
	FailureStatus = "status"
	// FailureDecode: the answer was not JSON.
	FailureDecode = "decode"
	// FailureOverload: too many upstream requests were in flight (TH-38).
	FailureOverload = "overload"
	// FailureNetwork: anything else on the way (connection reset, DNS,
	// an oversized body).
	FailureNetwork = "network"
)

// Failure is an upstream failure or a refused outbound call during an
// unfurl. Its fields carry no credential and no upstream body (TH-36,
// TH-49): upstream errors name the host, never the URL's query.
type Failure struct {
	// Pattern is the pattern being unfurled and Request the request that
	// failed.
	Pattern, Request string
	// Kind is one of the Failure kinds.
	Kind string
	// Status is the upstream's status code for FailureStatus.
	Status int
	// Err is the cause.
	Err error
}

// Trace tells why an unfurl came out as it did.
type Trace struct {
	Provider   string            `json:"provider"`
	Pattern    string            `json:"pattern,omitempty"`
	Groups     map[string]string `json:"groups,omitempty"`
	Requests   []RequestTrace    `json:"requests,omitempty"`
	Attributes []AttributeTrace  `json:"attributes,omitempty"`
	Outcome    string            `json:"outcome"`
}

// RequestTrace is one upstream request in a Trace.
type RequestTrace struct {
	Name     string        `json:"name"`
	Method   string        `json:"method"`
	URL      string        `json:"url"`
	Status   int           `json:"status,omitempty"`
	Latency  time.Duration `json:"latency"`
	CacheHit bool          `json:"cache_hit"`
	Error    string        `json:"error,omitempty"`
	// Skipped says why an optional request was not sent: a value its
	// templates read is null or absent.
	Skipped string `json:"skipped,omitempty"`
}

// AttributeTrace is one attribute in a Trace: its value, or why it is
// missing.
type AttributeTrace struct {
	ID      string `json:"id"`
	Value   any    `json:"value,omitempty"`
	Missing string `json:"missing,omitempty"`
}

// unfurlError is a failure that ends as an error operation.
type unfurlError struct {
	status int
	msg    string
	cause  string // for the trace and logs, never for Notion (TH-36)
	// failure is set for upstream failures and refused calls (the
	// pattern is filled in by run).
	failure *Failure
	// missing, when set, says which value a template reads was null or
	// absent, so nothing was sent: an optional request is then skipped.
	missing string
}

// Unfurl answers Notion's unfurl call for uri (protocol 5.2). It never
// fails: every problem becomes an error operation (protocol 5.4). The
// Result may be shared with other callers and the cache: treat it as
// read-only.
func (p *Provider) Unfurl(ctx context.Context, uri string, cred Credential, opts UnfurlOptions) *Result {
	if cred.Key == "" {
		cred.Key = staticKey
	}
	// The result cache answers before Match: it only ever holds results
	// of URIs that passed checkURI and matched (a refused URI returns
	// below without caching), and the compiled patterns never change, so
	// a hit stands for the same checks (TH-28). Notion's repeated calls
	// then cost a map lookup.
	key := resultKey{cred: cred.Key, uri: uri}
	if !opts.Trace && !opts.NoCache && opts.Record == nil {
		if r := p.results.get(key, p.now()); r != nil {
			return r
		}
	}
	m, err := p.Match(uri)
	if err != nil {
		status, msg := 404, p.messages.NotFound
		if errors.Is(err, ErrBadURI) {
			status = 400
		}
		r := p.errorResult(uri, &unfurlError{status: status, msg: msg, cause: err.Error()})
		if opts.Trace {
			r.Trace = &Trace{Provider: p.Name, Outcome: err.Error()}
		}
		return r
	}
	if opts.Trace || opts.Record != nil {
		return p.run(ctx, m, cred, opts)
	}
	if opts.NoCache {
		return p.fresh(ctx, m, cred, opts)
	}
	return p.shared(ctx, key, m, cred, opts)
}

// Cached returns the result a call of Unfurl for uri with cred would take
// from the result cache, or nil when there is none.
func (p *Provider) Cached(uri string, cred Credential) *Result {
	if cred.Key == "" {
		cred.Key = staticKey
	}
	return p.results.get(resultKey{cred: cred.Key, uri: uri}, p.now())
}

// UnfurlMatch runs an already matched URI. Results are cached per
// (credential, uri) for upstream.cache_ttl, and identical concurrent
// unfurls share one run, so Notion's repeated calls cost one upstream
// round (TH-38).
func (p *Provider) UnfurlMatch(ctx context.Context, m *Match, cred Credential, opts UnfurlOptions) *Result {
	if cred.Key == "" {
		cred.Key = staticKey
	}
	if opts.Trace || opts.Record != nil {
		return p.run(ctx, m, cred, opts)
	}
	if opts.NoCache {
		return p.fresh(ctx, m, cred, opts)
	}
	key := resultKey{cred: cred.Key, uri: m.URI}
	if r := p.results.get(key, p.now()); r != nil {
		return r
	}
	return p.shared(ctx, key, m, cred, opts)
}

// shared runs m once for every concurrent caller with the same key. The
// first caller runs it itself, on its own goroutine; singleflight's
// DoChan started a new goroutine per run, whose stack then grew to the
// depth of an HTTP client call on every cold unfurl (issue 2). Later
// callers wait for it, or give up with "try later" when their own ctx
// ends first. The run is
// detached from the first caller's cancellation, since others may wait on
// it, but keeps its deadline, so a first caller whose client went away
// still returns within unfurl_timeout.
func (p *Provider) shared(ctx context.Context, key resultKey, m *Match, cred Credential, opts UnfurlOptions) *Result {
	f, leader := p.results.join(key)
	if !leader {
		if p.obs != nil {
			p.obs.Collapsed(p.Name)
		}
		select {
		case <-f.done:
			return f.r
		case <-ctx.Done():
			return p.errorResult(m.URI, &unfurlError{status: 503, msg: p.messages.TryLater, cause: ctx.Err().Error()})
		}
	}
	runCtx := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithDeadline(runCtx, d)
		defer cancel()
	}
	defer func() {
		if f.r == nil {
			// run panicked: the waiters get "try later", the panic goes
			// on to the caller's recovery.
			f.r = p.errorResult(m.URI, &unfurlError{status: 503, msg: p.messages.TryLater, cause: "unfurl failed"})
		}
		p.results.land(key, f)
	}()
	r := p.run(runCtx, m, cred, opts)
	if p.cacheTTL > 0 && cacheable(r) {
		p.results.put(key, r, p.now().Add(p.cacheTTL))
	}
	f.r = r
	return r
}

// cacheable keeps attribute results and "not found", but not passing
// failures, which the next call should retry.
func cacheable(r *Result) bool {
	return r.Error == nil || r.Error.Status == 404
}

func (p *Provider) run(ctx context.Context, m *Match, cred Credential, opts UnfurlOptions) *Result {
	var tr *Trace
	if opts.Trace {
		tr = &Trace{Provider: p.Name, Pattern: m.Pattern.Name, Groups: m.Groups}
	}
	docs := make(map[string]mapping.Doc, len(m.Pattern.requests))
	var skipped map[string]string
	var spent time.Duration // in upstream requests, for the log line
	for _, rp := range m.Pattern.requests {
		doc, uerr := p.fetch(ctx, m, rp, docs, cred, opts, tr, &spent)
		if uerr != nil {
			switch {
			case rp.optional && uerr.missing != "":
				// An optional request reading a null field (an
				// unassigned issue's assignee) is skipped, as docs/configuration.md
				// promises: its attributes come out missing. An unsafe
				// value (TH-29) still fails below.
				if skipped == nil {
					skipped = map[string]string{}
				}
				skipped[rp.name] = uerr.missing
				docs[rp.name] = mapping.Doc{}
				continue
			case rp.optional && uerr.status != 400:
				docs[rp.name] = mapping.Doc{}
				continue
			}
			if uerr.failure != nil {
				uerr.failure.Pattern = m.Pattern.Name
			}
			return p.finish(m, nil, nil, uerr, tr, spent)
		}
		docs[rp.name] = doc
	}
	attrs, missing, uerr := p.render(m, docs, skipped, tr)
	return p.finish(m, attrs, missing, uerr, tr, spent)
}

func (p *Provider) finish(m *Match, attrs []notion.Attribute, missing []MissingAttribute, uerr *unfurlError, tr *Trace, spent time.Duration) *Result {
	uri := m.URI
	var r *Result
	if uerr != nil {
		r = p.errorResult(uri, uerr)
		if tr != nil {
			tr.Outcome = fmt.Sprintf("error operation %d %q: %s", uerr.status, uerr.msg, uerr.cause)
		}
	} else {
		r = p.attributesResult(uri, attrs)
		if tr != nil {
			tr.Outcome = fmt.Sprintf("%d attributes", len(attrs))
		}
	}
	r.Trace = tr
	r.Pattern, r.UpstreamLatency, r.Missing = m.Pattern.Name, spent, missing
	return r
}

func (p *Provider) attributesResult(uri string, attrs []notion.Attribute) *Result {
	env := notion.Envelope{URI: uri, Operations: []notion.Operation{notion.AttributesOp(attrs)}}
	body := encode(env)
	return &Result{Body: body, Attributes: attrs, Hash: digest(body)}
}

func (p *Provider) errorResult(uri string, uerr *unfurlError) *Result {
	set := notion.ErrorSet{Status: uerr.status, Message: uerr.msg}
	env := notion.Envelope{URI: uri, Operations: []notion.Operation{notion.ErrorOp(set.Status, set.Message)}}
	body := encode(env)
	return &Result{Body: body, Error: &set, Hash: digest(body), Cause: uerr.cause, Failure: uerr.failure}
}

// encode marshals an envelope with its hand-written encoder, which
// writes exactly what encoding/json would (valid JSON, valid UTF-8,
// TH-33) without reflection (issue 11). The buffer is sized for a
// typical envelope (an attribute takes 100-200 bytes), so that it is
// allocated once rather than grown.
func encode(env notion.Envelope) []byte {
	size := 256 + len(env.URI)
	for _, op := range env.Operations {
		if attrs, ok := op.Set.([]notion.Attribute); ok {
			size += 200 * len(attrs)
		}
	}
	return env.AppendJSON(make([]byte, 0, size))
}

// digest names a body; the uri in it is constant for one subscription, so
// equal digests mean Notion would see the same thing.
func digest(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:16])
}

// fetch runs one upstream request.
// The time spent upstream is added to *spent, unless spent is nil.
func (p *Provider) fetch(ctx context.Context, m *Match, rp *requestPlan, docs map[string]mapping.Doc, cred Credential, opts UnfurlOptions, tr *Trace, spent *time.Duration) (mapping.Doc, *unfurlError) {
	lookup := func(name, path string) (string, error) {
		if path == "" {
			return m.Groups[name], nil
		}
		doc, ok := docs[name]
		if !ok {
			return "", fmt.Errorf("no response %q", name)
		}
		v := doc.Get(path)
		if v == nil {
			return "", upstream.ErrMissingValue
		}
		s, ok := scalarText(v)
		if !ok {
			return "", fmt.Errorf("%s.%s is not a string or number", name, path)
		}
		return s, nil
	}
	u, err := rp.url.ExpandURL(p.baseURL, lookup)
	if err != nil {
		// A capture that would leave its path segment (TH-29) or a
		// missing value: the link is unusable, and nothing was sent.
		return mapping.Doc{}, p.expandError(tr, rp, "", err)
	}
	req := &upstream.Request{Method: rp.method, URL: u, Header: p.headers.Clone(), CredentialKey: cred.Key, NoCache: opts.NoCache}
	for k, t := range rp.headers {
		v, err := t.Expand(lookup)
		if err != nil {
			return mapping.Doc{}, p.expandError(tr, rp, " header "+k, err)
		}
		req.Header.Set(k, v)
	}
	if rp.body != nil {
		v, err := rp.body.build(lookup)
		if err != nil {
			return mapping.Doc{}, p.expandError(tr, rp, " body", err)
		}
		req.Body, _ = json.Marshal(v)
		req.Header.Set("Content-Type", "application/json")
	}
	if err := p.authorize(req.Header, cred); err != nil {
		// The operator's expression, not the user or the upstream, is
		// at fault; nothing was sent.
		return mapping.Doc{}, &unfurlError{status: 502, msg: p.messages.TryLater, cause: fmt.Sprintf("request %s: %v", rp.name, err),
			failure: &Failure{Request: rp.name, Kind: FailureRefused, Err: err}}
	}
	opts.probe.prepare(rp, req.Header)

	select {
	case p.sem <- struct{}{}:
	default:
		cause := "too many upstream requests in flight"
		return mapping.Doc{}, &unfurlError{status: 503, msg: p.messages.TryLater, cause: cause,
			failure: &Failure{Request: rp.name, Kind: FailureOverload, Err: errors.New(cause)}}
	}
	resp, err := p.client.Do(ctx, req)
	<-p.sem
	if spent != nil && resp != nil {
		*spent += resp.Latency
	}
	opts.probe.observe(rp, resp, err, p.now())
	if opts.Record != nil {
		opts.Record(exchange(rp, req, resp, err))
	}

	if tr != nil {
		// Only a trace needs the redacted URL (one more URL parse).
		rt := RequestTrace{Name: rp.name, Method: rp.method, URL: redactURL(u)}
		if resp != nil {
			rt.Status, rt.Latency, rt.CacheHit = resp.Status, resp.Latency, resp.CacheHit
		}
		var se *upstream.StatusError
		if errors.As(err, &se) {
			rt.Status = se.Code
		}
		if err != nil {
			rt.Error = err.Error()
		}
		p.traceRequest(tr, rt)
	}
	if err != nil {
		// errors.statuses applies to unfurls only: on the identity
		// request a 401 still means the credential was refused.
		return mapping.Doc{}, p.upstreamError(rp.name, err, !p.isIdentity(rp))
	}
	doc, err := mapping.ParseDoc(resp.Body)
	if err != nil {
		// The parser's error quotes the body; the failure does not.
		return mapping.Doc{}, &unfurlError{status: 502, msg: p.messages.TryLater, cause: fmt.Sprintf("request %s: response is not JSON", rp.name),
			failure: &Failure{Request: rp.name, Kind: FailureDecode, Err: errors.New("response is not JSON")}}
	}
	return doc, nil
}

// expandError reports a template that could not be filled in. Nothing
// was sent. A null or absent value is marked missing, so run can skip an
// optional request; the trace says which value it was.
func (p *Provider) expandError(tr *Trace, rp *requestPlan, where string, err error) *unfurlError {
	uerr := &unfurlError{status: 400, msg: p.messages.NotFound, cause: fmt.Sprintf("request %s%s: %v", rp.name, where, err)}
	rt := RequestTrace{Name: rp.name, Method: rp.method, Error: err.Error()}
	if errors.Is(err, upstream.ErrMissingValue) {
		uerr.missing = strings.TrimSpace(where + " " + err.Error())
		if rp.optional {
			rt.Error, rt.Skipped = "", uerr.missing
		}
	}
	p.traceRequest(tr, rt)
	return uerr
}

// exchange describes one upstream answer for UnfurlOptions.Record.
func exchange(rp *requestPlan, req *upstream.Request, resp *upstream.Response, err error) Exchange {
	x := Exchange{Request: rp.name, Method: req.Method, URL: req.URL}
	var se *upstream.StatusError
	switch {
	case errors.As(err, &se):
		x.Status = se.Code
	case err == nil && resp != nil:
		x.Status, x.Body = resp.Status, []byte(resp.Body)
	}
	return x
}

func (p *Provider) traceRequest(tr *Trace, rt RequestTrace) {
	if tr != nil {
		tr.Requests = append(tr.Requests, rt)
	}
}

// authorize attaches the credential: the connection's, or else the
// provider's service-wide token. The upstream client only ever sends it to
// the provider's allowed hosts (TH-27). With upstream.auth.value the
// header is what that expression makes of the credential's fields;
// otherwise, and for a single key stored before the provider asked for
// several fields, it is "<prefix> <credential>". Errors never quote the
// credential.
func (p *Provider) authorize(h http.Header, cred Credential) error {
	var fields map[string]string
	switch {
	case len(cred.Fields) > 0:
		fields = make(map[string]string, len(cred.Fields))
		for k, v := range cred.Fields {
			fields[k] = v.Reveal()
		}
	default:
		tok := cred.Token
		if tok.IsZero() {
			tok = p.staticAuth.Token
		}
		if tok.IsZero() {
			return nil
		}
		asked := p.staticAuth.APIKey.Fields
		switch {
		case p.authValue == nil || len(asked) > 1:
			// A key stored before the form asked for several fields.
			h.Set(p.staticAuth.Header, p.prefixed(tok.Reveal()))
			return nil
		case len(asked) == 1:
			// One value is what a one-field form gives, e.g. a token
			// passed to `unfurld preview --token`.
			fields = map[string]string{asked[0].Name: tok.Reveal()}
		default:
			fields = map[string]string{credentialToken: tok.Reveal()}
		}
	}
	if p.authValue == nil {
		// One form field and no expression: that field is the key.
		if len(fields) != 1 {
			// Connected while the form asked for several fields, which
			// the configuration no longer combines.
			return fmt.Errorf("the credential has %d fields and upstream.auth.value does not say how to send them", len(fields))
		}
		for _, v := range fields {
			h.Set(p.staticAuth.Header, p.prefixed(v))
		}
		return nil
	}
	secrets := make(map[string]string, len(p.staticAuth.Secrets))
	for k, v := range p.staticAuth.Secrets {
		secrets[k] = v.Reveal()
	}
	out, err := p.authValue.Eval(&mapping.Env{Records: map[string]map[string]string{recordCredential: fields, recordSecrets: secrets}})
	v, ok := out.(string)
	if err != nil || !ok || v == "" || strings.ContainsAny(v, "\r\n\x00") {
		// The evaluation's own message may quote a field: only the
		// place of the expression is reported.
		return fmt.Errorf("%s: %s gave no usable header value", p.authValue.Pos(), p.authValue)
	}
	h.Set(p.staticAuth.Header, v)
	return nil
}

// prefixed joins upstream.auth.prefix and a credential; "none" sends the
// bare credential.
func (p *Provider) prefixed(cred string) string {
	if prefix := p.staticAuth.Prefix; prefix != "" && prefix != "none" {
		return prefix + " " + cred
	}
	return cred
}

// upstreamError maps an upstream failure to a fixed error operation; the
// upstream's body never reaches Notion (TH-36).
// With remap, errors.statuses may give a status another meaning first.
func (p *Provider) upstreamError(name string, err error, remap bool) *unfurlError {
	cause := fmt.Sprintf("request %s: %v", name, err)
	fail := func(kind string, status int) *Failure {
		return &Failure{Request: name, Kind: kind, Status: status, Err: err}
	}
	var se *upstream.StatusError
	switch {
	case errors.As(err, &se):
		meaning := ""
		if remap {
			meaning = p.statuses[se.Code]
		}
		switch {
		case meaning == config.StatusNotFound:
			return &unfurlError{status: 404, msg: p.messages.NotFound, cause: cause}
		case meaning == config.StatusReconnect:
			return &unfurlError{status: http.StatusUnauthorized, msg: p.messages.Reconnect, cause: cause}
		case meaning == config.StatusTryLater:
			return &unfurlError{status: 503, msg: p.messages.TryLater, cause: cause, failure: fail(FailureStatus, se.Code)}
		case se.Code == http.StatusNotFound || se.Code == http.StatusGone:
			return &unfurlError{status: 404, msg: p.messages.NotFound, cause: cause}
		case se.Code == http.StatusTooManyRequests || se.Code >= 500 || se.RetryAfter > 0:
			// GitHub answers rate limits with 403 and Retry-After: that
			// is "try later", not "reconnect".
			return &unfurlError{status: 503, msg: p.messages.TryLater, cause: cause, failure: fail(FailureStatus, se.Code)}
		case se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden:
			// The user's credential, not the service, is at fault; the
			// caller renews it or asks for a reconnect.
			return &unfurlError{status: se.Code, msg: p.messages.Reconnect, cause: cause}
		default:
			return &unfurlError{status: 502, msg: p.messages.TryLater, cause: cause, failure: fail(FailureStatus, se.Code)}
		}
	case errors.Is(err, context.DeadlineExceeded):
		return &unfurlError{status: 504, msg: p.messages.TryLater, cause: cause, failure: fail(FailureTimeout, 0)}
	case errors.Is(err, context.Canceled):
		// The caller went away: nothing is wrong upstream.
		return &unfurlError{status: 503, msg: p.messages.TryLater, cause: cause}
	case upstream.Refused(err):
		return &unfurlError{status: 502, msg: p.messages.TryLater, cause: cause, failure: fail(FailureRefused, 0)}
	default:
		// Oversized bodies and network errors alike.
		return &unfurlError{status: 502, msg: p.messages.TryLater, cause: cause, failure: fail(FailureNetwork, 0)}
	}
}

// redactURL hides query values whose names look like credentials, so a
// trace can be pasted into an issue.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.RawQuery == "" {
		return raw
	}
	q := u.Query()
	for k := range q {
		lk := strings.ToLower(k)
		for _, s := range []string{"token", "key", "secret", "password", "sig", "auth"} {
			if strings.Contains(lk, s) {
				q.Set(k, "REDACTED")
			}
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (n *bodyNode) build(lookup upstream.Lookup) (any, error) {
	switch {
	case n.tmpl != nil:
		return n.tmpl.Expand(lookup)
	case n.obj != nil:
		out := make(map[string]any, len(n.obj))
		for k, c := range n.obj {
			v, err := c.build(lookup)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	case n.list != nil:
		out := make([]any, len(n.list))
		for i, c := range n.list {
			v, err := c.build(lookup)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	default:
		return n.value, nil
	}
}

// resultKey identifies a result: whose credential, which URI. A struct
// key costs no allocation, where a joined string would on every lookup.
type resultKey struct {
	cred, uri string
}

// resultCache keeps finished results per (credential, uri) until they
// expire, bounded in size, and collapses concurrent identical unfurls.
type resultCache struct {
	mu      sync.Mutex
	m       map[resultKey]cachedResult
	flights map[resultKey]*flight
}

type cachedResult struct {
	// hit is the result as a cache hit returns it (Cached set), made once
	// at put so that a hit allocates nothing.
	hit     *Result
	expires time.Time
}

// flight is a run in progress; r is set before done is closed.
type flight struct {
	done chan struct{}
	r    *Result
}

const maxCachedResults = 10000

func (c *resultCache) get(key resultKey, now time.Time) *Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return nil
	}
	if !now.Before(e.expires) {
		delete(c.m, key)
		return nil
	}
	return e.hit
}

func (c *resultCache) put(key resultKey, r *Result, expires time.Time) {
	hit := *r
	hit.Cached = true
	hit.UpstreamLatency = 0 // a hit sends nothing upstream
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[resultKey]cachedResult{}
	}
	if len(c.m) >= maxCachedResults {
		// Drop an arbitrary tenth; map order is random enough for a
		// cache whose entries live seconds.
		n := 0
		for k := range c.m {
			delete(c.m, k)
			if n++; n >= maxCachedResults/10 {
				break
			}
		}
	}
	c.m[key] = cachedResult{hit: &hit, expires: expires}
}

// join returns the flight for key, and whether the caller is its leader
// (it started it and must land it).
func (c *resultCache) join(key resultKey) (*flight, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.flights[key]; ok {
		return f, false
	}
	if c.flights == nil {
		c.flights = map[resultKey]*flight{}
	}
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	return f, true
}

// land ends a flight: later callers start a new one (or hit the cache),
// waiting ones wake up with f.r.
func (c *resultCache) land(key resultKey, f *flight) {
	c.mu.Lock()
	delete(c.flights, key)
	c.mu.Unlock()
	close(f.done)
}

// Forget drops cached results, so the next unfurl refetches.
func (p *Provider) Forget() {
	p.results.mu.Lock()
	p.results.m = nil
	p.results.mu.Unlock()
}

// ReconnectResult is the answer for a connection whose upstream
// credential was revoked: an error operation asking the user to reconnect
// (TH-36).
func (p *Provider) ReconnectResult(uri string) *Result {
	return p.errorResult(uri, &unfurlError{status: 401, msg: p.messages.Reconnect, cause: "reconnect required"})
}
