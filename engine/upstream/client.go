package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// Defaults applied by New when an Options field is zero.
const (
	defaultTimeout      = 5 * time.Second
	defaultMaxBodyBytes = 2 << 20
	defaultCacheEntries = 10000
	defaultUserAgent    = "unfurld"
	// defaultIdleConnsPerHost is Options.IdleConnsPerHost's default.
	defaultIdleConnsPerHost = 64

	// maxRedirects bounds redirect chains; every hop is still checked
	// against the allowlist (TH-30).
	maxRedirects = 5
	// drainBytes is how much of an error body we read (and discard) so the
	// connection can be reused; the rest is dropped with the connection.
	drainBytes = 64 << 10
	// maxConnectTimeout bounds dialing and the TLS handshake even when the
	// request timeout is long.
	maxConnectTimeout = 10 * time.Second
	// maxPooledBuffer bounds the read buffers kept for reuse: typical API
	// answers fit, a rare multi-megabyte one is not kept.
	maxPooledBuffer = 256 << 10
)

// Options configures a Client. Zero values take the defaults named on each
// field.
type Options struct {
	// Provider names the provider in error messages.
	Provider string
	// AllowedHosts lists every "host" or "host:port" that requests and
	// redirects may reach, compared lower-case and exactly (a trailing dot
	// or another port is a different host). A "host" entry matches the
	// scheme's default port. Required: New fails on an empty list.
	AllowedHosts []string
	// AllowPrivateNetworks turns off the dial-time guard that refuses
	// loopback, private, link-local, metadata and other special-purpose
	// addresses (TH-30). Only for local fakes and tests.
	AllowPrivateNetworks bool
	// Timeout bounds each upstream request, body included. The caller's
	// ctx may end sooner. Default 5s.
	Timeout time.Duration
	// MaxBodyBytes caps the decompressed response body; longer bodies fail
	// with ErrBodyTooLarge (TH-32). Default 2 MiB.
	MaxBodyBytes int64
	// CacheTTL keeps 2xx responses this long. 0 disables the cache.
	CacheTTL time.Duration
	// CacheEntries bounds the number of cached responses; the oldest is
	// dropped when full. Default 10000.
	CacheEntries int
	// UserAgent is sent when a request sets none. Default "unfurld".
	UserAgent string
	// Now gives the time for cache expiry and Retry-After dates. Default
	// time.Now.
	Now func() time.Time
	// Observer learns of every exchange and refused call, for metrics;
	// nil observes nothing.
	Observer Observer
	// IdleConnsPerHost is how many idle keep-alive connections to one
	// host are kept for reuse. Default 64. Set it to the number of calls
	// that may be in flight at once: callers answered by one group
	// commit send their next calls together, and a burst wider than the
	// idle pool closes the extra connections, so the next burst dials
	// (and runs the dial guard) again.
	IdleConnsPerHost int
}

// Observer learns what a Client does upstream, for metrics. Its methods
// run on the request path and must not block. engine/metrics implements
// it; the provider name is the Client's Options.Provider.
type Observer interface {
	// Exchange reports one HTTP exchange sent upstream: its status code
	// (0 when no answer came: timeout, network error, oversized body)
	// and how long it took. Cache hits and callers collapsed onto
	// another's call are not exchanges.
	Exchange(provider string, status int, d time.Duration)
	// Refused reports a call unfurld refused to make: a host off the
	// allowlist, a redirect leaving it, a private address (TH-30).
	Refused(provider string)
}

// Request is one upstream call.
type Request struct {
	// Method is the HTTP method. Default GET.
	Method string
	// URL is the absolute http(s) URL, usually from Template.ExpandURL.
	URL string
	// Header is sent as is (the credential included). A Host entry is
	// ignored, as net/http does for client requests. Do takes it over: the
	// call may outlive the caller (another caller may have joined it), so
	// the caller must not change the map, nor Body, once Do is called.
	Header http.Header
	// Body is sent when non-nil.
	Body []byte
	// CredentialKey identifies whose credential the request carries (for
	// example "static" or a connection id), never the secret itself. It is
	// part of the cache and collapsing keys so that answers are never
	// shared across credentials (TH-27).
	CredentialKey string
	// NoCache skips the cache read. Identical concurrent requests are still
	// collapsed, and a 2xx result is still stored.
	NoCache bool
}

// Response is a 2xx or 304 upstream answer.
type Response struct {
	// Status is the HTTP status code.
	Status int
	// Header is the response header. It may be shared with other callers
	// and the cache: treat it as read-only.
	Header http.Header
	// Body is the decompressed body, at most Options.MaxBodyBytes long,
	// as a string: it may be shared with other callers and the cache, and
	// the mapping reads it as it is.
	Body string
	// CacheHit is true when the response came from the cache.
	CacheHit bool
	// Shared is true when the response was the result of a call collapsed
	// with other concurrent identical calls.
	Shared bool
	// Latency is the time this caller spent in Do.
	Latency time.Duration
}

// Client makes upstream calls for one provider. It is safe for concurrent
// use.
type Client struct {
	provider  string
	allowed   map[string]bool
	timeout   time.Duration
	maxBody   int64
	userAgent string
	now       func() time.Time
	transport *http.Transport
	hc        *http.Client
	flights   flights
	cache     *cache // nil when disabled
	obs       Observer
	// bufs holds *bytes.Buffer for reading bodies of unknown length.
	bufs sync.Pool

	// joined, when non-nil, runs after a caller has joined (or started) a
	// flight and before it waits. Tests use it to know that every caller
	// is collapsed without sleeping.
	joined func()
}

// New checks the options and builds a Client with its own transport.
func New(opts Options) (*Client, error) {
	var errs []error
	if opts.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", opts.Timeout))
	}
	if opts.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max body bytes %d is negative", opts.MaxBodyBytes))
	}
	if opts.CacheTTL < 0 {
		errs = append(errs, fmt.Errorf("cache ttl %s is negative", opts.CacheTTL))
	}
	if opts.IdleConnsPerHost < 0 {
		errs = append(errs, fmt.Errorf("idle connections per host %d is negative", opts.IdleConnsPerHost))
	}
	if opts.CacheEntries < 0 {
		errs = append(errs, fmt.Errorf("cache entries %d is negative", opts.CacheEntries))
	}
	if len(opts.AllowedHosts) == 0 {
		errs = append(errs, errors.New("no allowed hosts"))
	}
	allowed := map[string]bool{}
	// The guard allows the web ports plus any port the allowlist names, so
	// that it refuses by address, while the allowlist decides the port.
	ports := []uint16{80, 443}
	for _, h := range opts.AllowedHosts {
		key, port, err := parseAllowedHost(h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		allowed[key] = true
		if port != 0 && !slices.Contains(ports, port) {
			ports = append(ports, port)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	c := &Client{
		provider:  opts.Provider,
		allowed:   allowed,
		timeout:   orDefault(opts.Timeout, defaultTimeout),
		maxBody:   orDefault(opts.MaxBodyBytes, defaultMaxBodyBytes),
		userAgent: orDefault(opts.UserAgent, defaultUserAgent),
		now:       opts.Now,
		obs:       opts.Observer,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if opts.CacheTTL > 0 {
		c.cache = newCache(opts.CacheTTL, orDefault(opts.CacheEntries, defaultCacheEntries))
	}

	connectTimeout := min(c.timeout, maxConnectTimeout)
	idlePerHost := orDefault(opts.IdleConnsPerHost, defaultIdleConnsPerHost)
	dialer := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	if !opts.AllowPrivateNetworks {
		// Control sees the resolved IP of every connection, redirects
		// included, which defeats DNS rebinding and alternate IP spellings
		// that a URL check would miss (security.md A13).
		guard := ssrf.New(ssrf.WithPorts(ports...))
		dialer.Control = func(network, address string, conn syscall.RawConn) error {
			if err := guard.Safe(network, address, conn); err != nil {
				return fmt.Errorf("%w: %w", ErrAddressNotAllowed, err)
			}
			return nil
		}
	}
	c.transport = &http.Transport{
		// Never from the environment: a proxy would bypass the dial guard.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           max(256, idlePerHost),
		MaxIdleConnsPerHost:    idlePerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    connectTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		// An API response of a few KB (a GitHub issue is 5-10 KB) then
		// comes in with its header in one read(2) instead of one per
		// 4 KB: one syscall fewer per uncached unfurl of the load test's
		// 5.9 KB item, for 12 KB more per open connection
		// (docs/operations.md, "Cold unfurls, third pass").
		ReadBufferSize: 16 << 10,
	}
	c.hc = &http.Client{Transport: c.transport, CheckRedirect: c.checkRedirect}
	return c, nil
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// parseAllowedHost validates one allowlist entry and returns its lookup key
// and explicit port (0 when none).
func parseAllowedHost(h string) (string, uint16, error) {
	lh := strings.ToLower(h)
	u, err := url.Parse("//" + lh)
	if err != nil || u.Host != lh || u.Hostname() == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", 0, fmt.Errorf("allowed host %q: want host or host:port", h)
	}
	var port uint16
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return "", 0, fmt.Errorf("allowed host %q: bad port", h)
		}
		port = uint16(n)
	}
	return authority(u.Hostname(), u.Port()), port, nil
}

// authority joins host and port, bracketing IPv6 literals.
func authority(host, port string) string {
	if port == "" {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}

// checkURL enforces scheme, no user info and the host allowlist on a
// request URL or a redirect target.
func (c *Client) checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: %w", u.Scheme, ErrHostNotAllowed)
	}
	if u.User != nil {
		return errors.New("url must not carry user info")
	}
	if u.Opaque != "" || u.Host == "" {
		return errors.New("url has no host")
	}
	host := strings.ToLower(u.Hostname())
	def := "443"
	if u.Scheme == "http" {
		def = "80"
	}
	var keys []string
	switch p := u.Port(); p {
	case "", def:
		keys = []string{authority(host, ""), authority(host, def)}
	default:
		keys = []string{authority(host, p)}
	}
	for _, k := range keys {
		if c.allowed[k] {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", u.Host, ErrHostNotAllowed)
}

// checkRedirect re-applies the URL checks on every hop, so an allowed
// upstream cannot bounce us (and the credential) elsewhere (TH-30).
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if err := c.checkURL(req.URL); err != nil {
		return fmt.Errorf("redirect: %w", err)
	}
	return nil
}

// flight is a call in progress for the callers of one key. Its outcome
// fields are set before done is closed and never after.
type flight struct {
	done chan struct{}
	res  *result
	err  error
	// abandoned means the leader's own ctx ended the call: those waiting
	// start over.
	abandoned bool
	// joiners counts the callers that joined; guarded by flights.mu.
	joiners int
}

// flights holds the calls in progress by request key.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// join returns the flight for key, and whether the caller leads it (it
// makes the call and must land it).
func (fs *flights) join(key string) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[key]; ok {
		f.joiners++
		return f, false
	}
	if fs.m == nil {
		fs.m = map[string]*flight{}
	}
	f := &flight{done: make(chan struct{})}
	fs.m[key] = f
	return f, true
}

// land ends f: later callers start a new flight (or hit the cache), and
// those waiting wake up to its outcome. It reports whether anyone
// joined.
func (fs *flights) land(key string, f *flight) bool {
	fs.mu.Lock()
	delete(fs.m, key)
	joined := f.joiners > 0
	fs.mu.Unlock()
	close(f.done)
	return joined
}

// result is what a flight produces and the cache stores. It is never
// modified after creation, so it can be shared.
type result struct {
	status int
	header http.Header
	body   string
}

func (r *result) response(start time.Time, hit, shared bool) *Response {
	return &Response{
		Status:   r.status,
		Header:   r.header,
		Body:     r.body,
		CacheHit: hit,
		Shared:   shared,
		Latency:  time.Since(start),
	}
}

// Do sends req, or serves it from the cache, or joins an identical call
// already in flight. A 2xx or 304 answer gives a Response; any other status
// gives a *StatusError. If ctx ends first, Do returns at once with an error
// wrapping ctx.Err().
//
// The first caller of a key makes the call itself, on its own goroutine
// and under its own ctx (bounded by the client timeout): a goroutine per
// call, as singleflight's DoChan started, had its stack grown to the
// depth of an HTTP exchange on every cold unfurl (issue 11). Callers
// that join wait for its outcome; when the first caller's ctx ended
// before the answer (it went away, or its deadline was shorter), the
// ones still waiting start over, and one of them makes the call, so a
// departed caller neither holds them up nor hands them its
// cancellation.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	start := time.Now()
	method := orDefault(req.Method, http.MethodGet)
	u, err := url.Parse(req.URL)
	if err != nil {
		// url.Error would repeat the whole URL, query included.
		return nil, c.wrap(method, "", fmt.Errorf("invalid url: %w", unwrapURLError(err)))
	}
	if err := c.checkURL(u); err != nil {
		if c.obs != nil && Refused(err) {
			c.obs.Refused(c.provider)
		}
		return nil, c.wrap(method, u.Host, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.wrap(method, u.Host, err)
	}
	key := requestKey(method, req)
	if c.cache != nil && !req.NoCache {
		if r, ok := c.cache.get(key, c.now()); ok {
			return r.response(start, true, false), nil
		}
	}
	for first := true; ; first = false {
		f, leader := c.flights.join(key)
		if first && c.joined != nil {
			c.joined()
		}
		if leader {
			return c.lead(ctx, key, f, method, u.Host, req, start)
		}
		select {
		case <-ctx.Done():
			return nil, c.wrap(method, u.Host, ctx.Err())
		case <-f.done:
		}
		switch {
		case f.abandoned:
			continue
		case f.err != nil:
			return nil, f.err
		}
		return f.res.response(start, false, true), nil
	}
}

// lead makes the call of flight f, lands it for the callers that joined
// and returns its outcome. The client timeout needs a context of its own
// only when ctx's deadline is later, which on the unfurl path (whose
// deadline is unfurl_timeout) it seldom is. Do owns req's header and body
// (see Request), so nothing is copied.
func (c *Client) lead(ctx context.Context, key string, f *flight, method, host string, req *Request, start time.Time) (*Response, error) {
	landed := false
	defer func() {
		if !landed {
			// observe panicked: those waiting start over, the panic goes
			// on to the caller's recovery.
			f.abandoned = true
			c.flights.land(key, f)
		}
	}()
	fctx := ctx
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > c.timeout {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	r, err := c.observe(fctx, method, req.URL, req.Header, req.Body)
	switch {
	case err != nil:
		err = c.wrap(method, host, err)
		// The caller's own ctx ended the call, not the upstream or the
		// client timeout: it is no answer for anyone else.
		f.abandoned = ctx.Err() != nil
	case c.cache != nil && r.status/100 == 2:
		c.cache.put(key, r, c.now())
	}
	f.res, f.err = r, err
	shared := c.flights.land(key, f)
	landed = true
	if err != nil {
		return nil, err
	}
	return r.response(start, false, shared), nil
}

// observe sends and reports the exchange, or the refusal, to the
// observer.
func (c *Client) observe(ctx context.Context, method, rawURL string, header http.Header, body []byte) (*result, error) {
	if c.obs == nil {
		return c.send(ctx, method, rawURL, header, body)
	}
	start := time.Now()
	r, err := c.send(ctx, method, rawURL, header, body)
	var se *StatusError
	switch {
	case err == nil:
		c.obs.Exchange(c.provider, r.status, time.Since(start))
	case errors.As(err, &se):
		c.obs.Exchange(c.provider, se.Code, time.Since(start))
	case Refused(err):
		// Refused at dial time or on a redirect: nothing, or nothing
		// more, was sent to the refused address.
		c.obs.Refused(c.provider)
	default:
		c.obs.Exchange(c.provider, 0, time.Since(start))
	}
	return r, err
}

// send makes one HTTP exchange under ctx.
func (c *Client) send(ctx context.Context, method, rawURL string, header http.Header, body []byte) (*result, error) {
	var rb io.Reader
	if body != nil {
		rb = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, rawURL, rb)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", unwrapURLError(err))
	}
	if header != nil {
		hreq.Header = header
	}
	if hreq.Header.Get("User-Agent") == "" {
		hreq.Header.Set("User-Agent", c.userAgent)
	}
	// Accept-Encoding is left to the transport, which then decompresses
	// gzip itself; the cap below applies to the decompressed bytes.
	resp, err := c.hc.Do(hreq)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	defer func() { _ = resp.Body.Close() }()

	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotModified {
		_, _ = io.CopyN(io.Discard, resp.Body, drainBytes)
		return nil, &StatusError{
			Code:       resp.StatusCode,
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), c.now()),
			RateLimit:  ParseRateLimit(resp.Header, c.now()),
		}
	}
	if resp.ContentLength > c.maxBody {
		return nil, ErrBodyTooLarge
	}
	data, err := c.readBody(io.LimitReader(resp.Body, c.maxBody+1), resp.ContentLength)
	if err != nil {
		return nil, c.transportError(ctx, fmt.Errorf("read body: %w", err))
	}
	if int64(len(data)) > c.maxBody {
		return nil, ErrBodyTooLarge
	}
	return &result{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// readBody reads r to its end into a buffer reused across calls, grown
// first to an announced length (plus bytes.MinRead, so that ReadFrom
// finds room for the body and its EOF at once), and returns it as a
// string copied out at its exact size, since the body outlives the call
// (shared, cached). A string, because that is what the mapping reads:
// the one copy made here is the only one (issue 11: the body used to be
// copied again into the document).
func (c *Client) readBody(r io.Reader, size int64) (string, error) {
	buf, _ := c.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer func() {
		// A buffer grown by an unusually large body is dropped rather
		// than kept for every later call.
		if buf.Cap() <= maxPooledBuffer {
			buf.Reset()
			c.bufs.Put(buf)
		}
	}()
	if size >= 0 {
		buf.Grow(int(size) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(r)
	return buf.String(), err
}

// transportError makes a deadline or cancellation recognisable with
// errors.Is and drops url.Error, whose text repeats the full URL.
func (c *Client) transportError(ctx context.Context, err error) error {
	err = unwrapURLError(err)
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *Client) wrap(method, host string, err error) error {
	if host == "" {
		return fmt.Errorf("upstream %s: %s: %w", c.provider, method, err)
	}
	return fmt.Errorf("upstream %s: %s %s: %w", c.provider, method, host, err)
}

// Invalidate drops every cached response.
func (c *Client) Invalidate() {
	if c.cache != nil {
		c.cache.reset()
	}
}

// CloseIdleConnections closes the transport's idle connections, for
// shutdown and tests.
func (c *Client) CloseIdleConnections() {
	c.transport.CloseIdleConnections()
}

// requestKey identifies a request for the cache and for collapsing
// identical calls: method, URL, credential identity, a digest of the body
// and the headers sorted by canonical name. Every field is length-prefixed
// so that no two requests share a key. The fields are appended to one buffer and hashed once: two
// streaming hashes, a merged header map and a []byte conversion per field
// cost about a dozen allocations on every upstream call (issue 2).
func requestKey(method string, req *Request) string {
	header := req.Header
	for k := range header {
		if http.CanonicalHeaderKey(k) != k {
			// Rare (Header.Set canonicalises): merge "accept" into
			// "Accept" so that spellings share a key.
			header = make(http.Header, len(req.Header))
			for k, vs := range req.Header {
				ck := http.CanonicalHeaderKey(k)
				header[ck] = append(header[ck], vs...)
			}
			break
		}
	}
	names := make([]string, 0, len(header))
	for k := range header {
		names = append(names, k)
	}
	slices.Sort(names)

	buf := make([]byte, 0, 512)
	buf = appendField(buf, method)
	buf = appendField(buf, req.URL)
	buf = appendField(buf, req.CredentialKey)
	bodySum := sha256.Sum256(req.Body)
	buf = append(buf, bodySum[:]...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(names)))
	for _, k := range names {
		buf = appendField(buf, k)
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(header[k])))
		for _, v := range header[k] {
			buf = appendField(buf, v)
		}
	}
	sum := sha256.Sum256(buf)
	return string(sum[:])
}

// appendField appends s with its length in front.
func appendField(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}
