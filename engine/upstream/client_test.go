package upstream

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"code.dny.dev/ssrf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/unfurld/unfurld/engine/clock/clocktest"
)

// newFakeClock is an injected clock that only moves when told to.
func newFakeClock() *clocktest.Fake {
	return clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// hostOf returns the host:port of a test server.
func hostOf(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	return u.Host
}

// newServerOn starts an httptest server listening on addr (e.g.
// "127.0.0.2:0"); Linux routes all of 127/8 to loopback.
func newServerOn(t *testing.T, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(h)
	require.NoError(t, srv.Listener.Close())
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// newTestClient builds a client allowed to reach srv over loopback.
func newTestClient(t *testing.T, srv *httptest.Server, mod func(*Options)) *Client {
	t.Helper()
	opts := Options{
		Provider:             "test",
		AllowedHosts:         []string{hostOf(t, srv)},
		AllowPrivateNetworks: true,
		Timeout:              10 * time.Second,
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestNewOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    Options
		wantErr []string
	}{
		{name: "minimal", opts: Options{AllowedHosts: []string{"api.github.com"}}},
		{name: "host with port and ipv6", opts: Options{AllowedHosts: []string{"Gitlab.Example.com:8443", "[::1]:8080", "[2001:db8::1]"}}},
		{name: "no hosts", opts: Options{}, wantErr: []string{"no allowed hosts"}},
		{
			name:    "bad hosts",
			opts:    Options{AllowedHosts: []string{"https://api.github.com", "api.github.com/path", "user@host", "host:0", "host:99999", "", "a b"}},
			wantErr: []string{`"https://api.github.com"`, `"api.github.com/path"`, `"user@host"`, `"host:0"`, `"host:99999"`, `""`, `"a b"`},
		},
		{
			name:    "negative values all reported",
			opts:    Options{AllowedHosts: []string{"h"}, Timeout: -1, MaxBodyBytes: -1, CacheTTL: -1, CacheEntries: -1, IdleConnsPerHost: -1},
			wantErr: []string{"timeout", "max body bytes", "cache ttl", "cache entries", "idle connections per host"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(tc.opts)
			if len(tc.wantErr) == 0 {
				require.NoError(t, err)
				require.NotNil(t, c)
				assert.Equal(t, defaultTimeout, c.timeout)
				assert.Equal(t, int64(defaultMaxBodyBytes), c.maxBody)
				assert.Equal(t, "unfurld", c.userAgent)
				assert.Nil(t, c.cache, "cache is off without a TTL")
				return
			}
			require.Error(t, err)
			for _, want := range tc.wantErr {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

// TestCheckURL covers the allowlist and URL rules without any network
// (TH-27, TH-28, TH-30).
func TestCheckURL(t *testing.T) {
	t.Parallel()
	c, err := New(Options{AllowedHosts: []string{"api.github.com", "GitLab.example.com:8443", "[2001:db8::1]"}})
	require.NoError(t, err)
	tests := []struct {
		url     string
		wantErr error // nil: allowed
		errText string
	}{
		{url: "https://api.github.com/repos/a/b"},
		{url: "https://API.GitHub.COM/repos"},
		{url: "https://api.github.com:443/repos"},
		{url: "http://api.github.com/repos"},
		{url: "https://gitlab.example.com:8443/api/v4"},
		{url: "https://[2001:db8::1]/x"},
		{url: "https://api.github.com:8443/repos", wantErr: ErrHostNotAllowed},
		{url: "https://gitlab.example.com/api/v4", wantErr: ErrHostNotAllowed},
		{url: "https://api.github.com./repos", wantErr: ErrHostNotAllowed},
		{url: "https://evil.com/repos", wantErr: ErrHostNotAllowed},
		{url: "https://api.github.com.evil.com/", wantErr: ErrHostNotAllowed},
		{url: "https://xn--pi-github-9bb.com/", wantErr: ErrHostNotAllowed},
		{url: "https://[::1]/", wantErr: ErrHostNotAllowed},
		{url: "ftp://api.github.com/", wantErr: ErrHostNotAllowed},
		{url: "file:///etc/passwd", wantErr: ErrHostNotAllowed},
		{url: "https://api.github.com@evil.com/", errText: "user info"},
		{url: "https://user:pw@api.github.com/", errText: "user info"},
		{url: "https:api.github.com", errText: "no host"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			u, err := url.Parse(tc.url)
			require.NoError(t, err)
			err = c.checkURL(u)
			switch {
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
				assert.True(t, Refused(err))
			case tc.errText != "":
				require.ErrorContains(t, err, tc.errText)
			default:
				require.NoError(t, err)
			}
		})
	}
}

// TestDoHostAllowlist proves nothing is sent to a host off the list: the
// trap server on 127.0.0.2 is never hit (TH-27, TH-30).
func TestDoHostAllowlist(t *testing.T) {
	t.Parallel()
	var trapHits atomic.Int32
	trap := newServerOn(t, "127.0.0.2:0", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { trapHits.Add(1) }))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok " + r.UserAgent()))
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv, nil)

	tests := []struct {
		name    string
		url     string
		wantErr error
		errText string
	}{
		{name: "allowed", url: srv.URL + "/x"},
		{name: "off list", url: trap.URL + "/x", wantErr: ErrHostNotAllowed},
		{name: "other port of allowed ip", url: "http://127.0.0.1:" + strconv.Itoa(trap.Listener.Addr().(*net.TCPAddr).Port) + "/", wantErr: ErrHostNotAllowed},
		{name: "scheme", url: "ftp://" + hostOf(t, srv) + "/", wantErr: ErrHostNotAllowed},
		{name: "user info", url: "http://u:p@" + hostOf(t, srv) + "/", errText: "user info"},
		{name: "relative", url: "/x", wantErr: ErrHostNotAllowed},
		{name: "unparsable", url: "http://" + hostOf(t, srv) + "/%zz", errText: "invalid url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, err := c.Do(t.Context(), &Request{URL: tc.url})
			switch {
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
			case tc.errText != "":
				require.ErrorContains(t, err, tc.errText)
			default:
				require.NoError(t, err)
				assert.Equal(t, "ok unfurld", string(resp.Body), "default User-Agent is sent")
			}
		})
	}
	t.Cleanup(func() { assert.Zero(t, trapHits.Load(), "off-list host must never be contacted") })
}

// TestDoRedirects re-checks every hop against the allowlist (TH-30).
func TestDoRedirects(t *testing.T) {
	t.Parallel()
	var trapHits atomic.Int32
	trap := newServerOn(t, "127.0.0.2:0", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { trapHits.Add(1) }))
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-trap":
			http.Redirect(w, r, trap.URL+"/stolen", http.StatusFound)
		case "/to-ftp":
			http.Redirect(w, r, "ftp://"+hostOf(t, srv)+"/x", http.StatusFound)
		case "/to-userinfo":
			http.Redirect(w, r, "http://u:p@"+hostOf(t, srv)+"/ok", http.StatusFound)
		case "/to-ok":
			http.Redirect(w, r, "/ok", http.StatusMovedPermanently)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/ok":
			_, _ = w.Write([]byte("ok"))
		}
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv, nil)

	tests := []struct {
		path    string
		wantErr error
		errText string
	}{
		{path: "/to-ok"},
		{path: "/to-trap", wantErr: ErrHostNotAllowed},
		{path: "/to-ftp", wantErr: ErrHostNotAllowed},
		{path: "/to-userinfo", errText: "user info"},
		{path: "/loop", errText: "stopped after 5 redirects"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			resp, err := c.Do(t.Context(), &Request{URL: srv.URL + tc.path})
			switch {
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
				assert.NotContains(t, err.Error(), "stolen", "errors do not repeat URLs")
			case tc.errText != "":
				require.ErrorContains(t, err, tc.errText)
			default:
				require.NoError(t, err)
				assert.Equal(t, "ok", string(resp.Body))
			}
		})
	}
	t.Cleanup(func() { assert.Zero(t, trapHits.Load(), "redirect target off the list must never be contacted") })
}

// TestDialGuard proves that with AllowPrivateNetworks false the dial-time
// guard refuses loopback in all its spellings, even when the allowlist
// names it, and that the same setup connects when the guard is off
// (TH-30, security.md A13).
func TestDialGuard(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) })
	v4 := newServerOn(t, "127.0.0.1:0", h)
	v6 := newServerOn(t, "[::1]:0", h)
	port4 := strconv.Itoa(v4.Listener.Addr().(*net.TCPAddr).Port)
	port6 := strconv.Itoa(v6.Listener.Addr().(*net.TCPAddr).Port)
	targets := []string{
		"127.0.0.1:" + port4,
		"[::1]:" + port6,
		"0.0.0.0:" + port4,
		"[::ffff:127.0.0.1]:" + port4,
		"localhost:" + port4,
	}
	guarded, err := New(Options{AllowedHosts: targets, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(guarded.CloseIdleConnections)

	for _, host := range targets {
		t.Run(host, func(t *testing.T) {
			_, err := guarded.Do(t.Context(), &Request{URL: "http://" + host + "/"})
			require.ErrorIs(t, err, ssrf.ErrProhibitedIP)
			assert.ErrorIs(t, err, ErrAddressNotAllowed)
			assert.True(t, Refused(err), "the unfurl log tells a refused call from a failed one")
		})
	}
	assert.Zero(t, hits.Load(), "the guard refuses before connecting")

	// Control: without the guard the same request does arrive.
	open, err := New(Options{AllowedHosts: targets, AllowPrivateNetworks: true, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(open.CloseIdleConnections)
	_, err = open.Do(t.Context(), &Request{URL: "http://" + targets[0] + "/"})
	require.NoError(t, err)
	assert.Equal(t, int32(1), hits.Load())
}

func gzipBytes(t testing.TB, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(plain)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// TestDoBodyCap caps the decompressed body (TH-32).
func TestDoBodyCap(t *testing.T) {
	t.Parallel()
	const limit = 1024
	plain := func(n int) []byte { return bytes.Repeat([]byte("a"), n) }
	tests := []struct {
		name     string
		body     []byte
		gzip     bool
		chunked  bool
		wantErr  error
		wantBody []byte
	}{
		{name: "under", body: plain(limit - 1), wantBody: plain(limit - 1)},
		{name: "exactly", body: plain(limit), wantBody: plain(limit)},
		{name: "over with length", body: plain(limit + 1), wantErr: ErrBodyTooLarge},
		{name: "over chunked", body: plain(limit + 1), chunked: true, wantErr: ErrBodyTooLarge},
		{name: "gzip under", body: plain(limit), gzip: true, wantBody: plain(limit)},
		{name: "gzip over", body: plain(limit + 1), gzip: true, wantErr: ErrBodyTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			payload := tc.body
			if tc.gzip {
				payload = gzipBytes(t, tc.body)
				require.Less(t, len(payload), limit, "the compressed form fits the cap")
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.gzip {
					// The transport asked for gzip itself (we never set it).
					assert.Equal(t, "gzip", r.Header.Get("Accept-Encoding"))
					w.Header().Set("Content-Encoding", "gzip")
				}
				if tc.chunked {
					_, _ = w.Write(payload[:10])
					w.(http.Flusher).Flush()
					_, _ = w.Write(payload[10:])
					return
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
				_, _ = w.Write(payload)
			}))
			t.Cleanup(srv.Close)
			c := newTestClient(t, srv, func(o *Options) { o.MaxBodyBytes = limit })
			resp, err := c.Do(t.Context(), &Request{URL: srv.URL})
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, string(tc.wantBody), resp.Body)
		})
	}
}

// TestDoGzipBomb sends 50 MB of zeros gzip-compressed; the read stops at
// the cap and memory stays bounded (TH-32). Not parallel: it measures
// allocations.
func TestDoGzipBomb(t *testing.T) {
	bomb := gzipBytes(t, make([]byte, 50<<20))
	require.Less(t, len(bomb), 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(bomb)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv, func(o *Options) { o.MaxBodyBytes = 1 << 20 })

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := c.Do(t.Context(), &Request{URL: srv.URL})
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrBodyTooLarge)
	allocated := after.TotalAlloc - before.TotalAlloc
	assert.Less(t, allocated, uint64(16<<20), "allocated %d bytes for a 1 MiB cap", allocated)
}

// TestDoTimeout: an upstream slower than the timeout ends with
// context.DeadlineExceeded, in time, and leaves no goroutine behind (F4,
// TH-54). Not parallel: goleak checks the whole process.
func TestDoTimeout(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))

	run := func(t *testing.T, clientTimeout, callerTimeout time.Duration) {
		c, err := New(Options{AllowedHosts: []string{hostOf(t, srv)}, AllowPrivateNetworks: true, Timeout: clientTimeout})
		require.NoError(t, err)
		defer c.CloseIdleConnections()
		ctx := t.Context()
		if callerTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, callerTimeout)
			defer cancel()
		}
		start := time.Now()
		_, err = c.Do(ctx, &Request{URL: srv.URL})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		deadline := clientTimeout
		if callerTimeout > 0 {
			deadline = min(deadline, callerTimeout)
		}
		assert.Less(t, time.Since(start), deadline+time.Second)
	}
	t.Run("client timeout", func(t *testing.T) { run(t, 50*time.Millisecond, 0) })
	t.Run("caller deadline shorter", func(t *testing.T) { run(t, 10*time.Second, 50*time.Millisecond) })

	close(release)
	srv.Close()
	goleak.VerifyNone(t, ignore)
}

// TestDoCallerCancel: a cancelled caller stops waiting at once (STYLE 5),
// its call included, and a caller that had joined that call is not handed
// the cancellation: it starts over and gets its answer from a call of its
// own.
func TestDoCallerCancel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	arrived := make(chan struct{}, 2)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		arrived <- struct{}{}
		<-release
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv, nil)
	var joined sync.WaitGroup
	joined.Add(2)
	c.joined = joined.Done

	ctx1, cancel1 := context.WithCancel(t.Context())
	defer cancel1()
	done1 := make(chan error, 1)
	done2 := make(chan *Response, 1)
	go func() {
		_, err := c.Do(ctx1, &Request{URL: srv.URL})
		done1 <- err
	}()
	<-arrived // caller 1 started the flight
	go func() {
		resp, err := c.Do(t.Context(), &Request{URL: srv.URL})
		assert.NoError(t, err)
		done2 <- resp
	}()
	joined.Wait() // caller 2 joined it

	cancel1()
	require.ErrorIs(t, <-done1, context.Canceled)
	<-arrived // caller 2 started over with a call of its own

	close(release)
	resp := <-done2
	require.NotNil(t, resp)
	assert.Equal(t, "ok", string(resp.Body))
	assert.False(t, resp.Shared)
	assert.Equal(t, int32(2), hits.Load())
}

// TestDoSharesFailures: callers collapsed onto one call share its failure
// too, when the upstream (not a caller's own ctx) caused it: one upstream
// request, the same *StatusError for all (TH-38).
func TestDoSharesFailures(t *testing.T) {
	t.Parallel()
	const n = 8
	var hits atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		<-release
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv, nil)
	var joined sync.WaitGroup
	joined.Add(n)
	c.joined = joined.Done

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = c.Do(t.Context(), &Request{URL: srv.URL + "/x"})
		})
	}
	joined.Wait()
	close(release)
	wg.Wait()

	assert.Equal(t, int32(1), hits.Load())
	for _, err := range errs {
		var se *StatusError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, http.StatusServiceUnavailable, se.Code)
	}
}

// TestDoStatus maps statuses to Response or *StatusError and never puts the
// upstream body into the error (TH-36).
func TestDoStatus(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		if ra := r.URL.Query().Get("retry"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte("secret upstream body"))
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv, func(o *Options) { o.Now = clock.Now })

	tests := []struct {
		name      string
		code      int
		retry     string
		wantRetry time.Duration
		wantOK    bool
	}{
		{name: "200", code: 200, wantOK: true},
		{name: "204", code: 204, wantOK: true},
		{name: "304", code: 304, wantOK: true},
		{name: "400", code: 400},
		{name: "401", code: 401},
		{name: "403", code: 403},
		{name: "404", code: 404},
		{name: "429 seconds", code: 429, retry: "30", wantRetry: 30 * time.Second},
		{name: "503 date", code: 503, retry: clock.Now().Add(90 * time.Second).Format(http.TimeFormat), wantRetry: 90 * time.Second},
		{name: "500 garbage retry", code: 500, retry: "soon"},
		{name: "502", code: 502},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := url.Values{"code": {strconv.Itoa(tc.code)}, "api_key": {"SECRETKEY"}}
			if tc.retry != "" {
				q.Set("retry", tc.retry)
			}
			resp, err := c.Do(t.Context(), &Request{URL: srv.URL + "/?" + q.Encode()})
			if tc.wantOK {
				require.NoError(t, err)
				assert.Equal(t, tc.code, resp.Status)
				return
			}
			var se *StatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.code, se.Code)
			assert.Equal(t, tc.wantRetry, se.RetryAfter)
			assert.NotContains(t, err.Error(), "secret")
			assert.NotContains(t, err.Error(), "SECRETKEY")
			assert.Contains(t, err.Error(), "upstream test: GET 127.0.0.1:")
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := newFakeClock().Now()
	tests := []struct {
		in   string
		want time.Duration
	}{
		{in: "", want: 0},
		{in: "0", want: 0},
		{in: "1", want: time.Second},
		{in: " 120 ", want: 2 * time.Minute},
		{in: "-5", want: 0},
		{in: "1.5", want: 0},
		{in: "99999999999999999999", want: 0},
		{in: "9999999999", want: 24 * time.Hour},
		{in: now.Add(time.Hour).Format(http.TimeFormat), want: time.Hour},
		{in: now.Add(-time.Hour).Format(http.TimeFormat), want: 0},
		{in: now.Add(72 * time.Hour).Format(http.TimeFormat), want: 24 * time.Hour},
		{in: "Mon, 99 Foo 2026", want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, parseRetryAfter(tc.in, now))
		})
	}
}

// TestDoSingleflight: 64 identical concurrent calls make one upstream
// request (TH-38); every caller sees the answer's header, which they
// share read-only (no copy per caller, issue 11).
func TestDoSingleflight(t *testing.T) {
	t.Parallel()
	const n = 64
	var hits atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		<-release
		w.Header().Set("X-Test", "v")
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv, nil) // no cache: only the collapsing is tested
	var joined sync.WaitGroup
	joined.Add(n)
	c.joined = joined.Done

	resps := make([]*Response, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resps[i], errs[i] = c.Do(t.Context(), &Request{URL: srv.URL + "/x", CredentialKey: "static"})
		})
	}
	joined.Wait() // every caller is attached to the flight
	close(release)
	wg.Wait()

	assert.Equal(t, int32(1), hits.Load())
	for i := range n {
		require.NoError(t, errs[i])
		assert.Equal(t, "ok", string(resps[i].Body))
		assert.True(t, resps[i].Shared)
		assert.False(t, resps[i].CacheHit)
		assert.Equal(t, "v", resps[i].Header.Get("X-Test"))
	}
}

// TestDoCache: hits within the TTL, misses after Now passes it, and keys
// separate credentials, headers and bodies (TH-27, TH-38).
func TestDoCache(t *testing.T) {
	t.Parallel()
	const ttl = 30 * time.Second
	clock := newFakeClock()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = fmt.Fprintf(w, "n=%d", n)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv, func(o *Options) { o.CacheTTL = ttl; o.Now = clock.Now })

	get := func(cred string) *Request { return &Request{URL: srv.URL + "/a", CredentialKey: cred} }
	steps := []struct {
		name     string
		req      *Request
		advance  time.Duration
		reset    bool
		wantHit  bool
		wantBody string // empty: an error is expected
	}{
		{name: "first call misses", req: get("u1"), wantBody: "n=1"},
		{name: "second call hits", req: get("u1"), wantHit: true, wantBody: "n=1"},
		{name: "other credential misses", req: get("u2"), wantBody: "n=2"},
		{name: "other credential hits its own", req: get("u2"), wantHit: true, wantBody: "n=2"},
		{name: "extra header misses", req: &Request{URL: srv.URL + "/a", CredentialKey: "u1", Header: http.Header{"Accept": {"x"}}}, wantBody: "n=3"},
		{name: "NoCache skips the read", req: &Request{URL: srv.URL + "/a", CredentialKey: "u1", NoCache: true}, wantBody: "n=4"},
		{name: "NoCache result was stored", req: get("u1"), wantHit: true, wantBody: "n=4"},
		{name: "just before expiry hits", req: get("u1"), advance: ttl - time.Nanosecond, wantHit: true, wantBody: "n=4"},
		{name: "at expiry misses", req: get("u1"), advance: time.Nanosecond, wantBody: "n=5"},
		{name: "post body x", req: &Request{Method: http.MethodPost, URL: srv.URL + "/a", Body: []byte("x")}, wantBody: "n=6"},
		{name: "post body y", req: &Request{Method: http.MethodPost, URL: srv.URL + "/a", Body: []byte("y")}, wantBody: "n=7"},
		{name: "post body x hits", req: &Request{Method: http.MethodPost, URL: srv.URL + "/a", Body: []byte("x")}, wantHit: true, wantBody: "n=6"},
		{name: "errors are not cached 1", req: &Request{URL: srv.URL + "/fail"}},
		{name: "errors are not cached 2", req: &Request{URL: srv.URL + "/fail"}},
		{name: "after Invalidate misses", req: get("u1"), reset: true, wantBody: "n=10"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			clock.Advance(st.advance)
			if st.reset {
				c.Invalidate()
			}
			resp, err := c.Do(t.Context(), st.req)
			if st.wantBody == "" {
				var se *StatusError
				require.ErrorAs(t, err, &se)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, st.wantHit, resp.CacheHit)
			assert.Equal(t, st.wantBody, string(resp.Body))
		})
	}
}

// TestCacheBound drops the oldest entry when full.
func TestCacheBound(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	c := newCache(time.Minute, 2)
	r := &result{status: 200}
	c.put("a", r, clock.Now())
	c.put("b", r, clock.Now())
	c.put("a", r, clock.Now()) // refresh: a is now the newest
	c.put("c", r, clock.Now())
	assert.Equal(t, 2, c.len())
	_, ok := c.get("b", clock.Now())
	assert.False(t, ok, "oldest entry evicted")
	_, ok = c.get("a", clock.Now())
	assert.True(t, ok)
	_, ok = c.get("c", clock.Now())
	assert.True(t, ok)

	clock.Advance(time.Minute)
	c.put("d", r, clock.Now())
	assert.Equal(t, 1, c.len(), "expired entries go first")
}

func TestRequestKey(t *testing.T) {
	t.Parallel()
	base := Request{URL: "https://h/x", CredentialKey: "c", Header: http.Header{"Accept": {"a"}, "X-B": {"1", "2"}}, Body: []byte("b")}
	same := base
	same.Header = http.Header{"X-B": {"1", "2"}, "Accept": {"a"}}
	lower := base
	lower.Header = http.Header{"accept": {"a"}, "X-B": {"1", "2"}}
	assert.Equal(t, requestKey("GET", &base), requestKey("GET", &same))
	assert.Equal(t, requestKey("GET", &base), requestKey("GET", &lower), "header names are canonicalised")

	variants := map[string]func(r *Request) string{
		"method": func(r *Request) string { return requestKey("POST", r) },
		"url":    func(r *Request) string { r.URL += "y"; return requestKey("GET", r) },
		"cred":   func(r *Request) string { r.CredentialKey = "d"; return requestKey("GET", r) },
		"body":   func(r *Request) string { r.Body = []byte("c"); return requestKey("GET", r) },
		"value": func(r *Request) string {
			r.Header = http.Header{"Accept": {"a"}, "X-B": {"12"}}
			return requestKey("GET", r)
		},
		"split": func(r *Request) string { r.URL, r.CredentialKey = "https://h/xc", ""; return requestKey("GET", r) },
	}
	for name, f := range variants {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := base
			assert.NotEqual(t, requestKey("GET", &base), f(&r))
		})
	}
}

// TestDoSendsRequest checks method, headers, body and that a Host header
// cannot redirect the request.
func TestDoSendsRequest(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := new(bytes.Buffer)
		_, _ = body.ReadFrom(r.Body)
		_, _ = fmt.Fprintf(w, "%s %s %s %s %s", r.Method, r.Host, r.Header.Get("Authorization"), r.UserAgent(), body)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv, func(o *Options) { o.UserAgent = "unfurld-test" })
	resp, err := c.Do(t.Context(), &Request{
		Method: http.MethodPost,
		URL:    srv.URL,
		Header: http.Header{"Authorization": {"Bearer t"}, "Host": {"evil.com"}},
		Body:   []byte(`{"q":1}`),
	})
	require.NoError(t, err)
	assert.Equal(t, "POST "+hostOf(t, srv)+` Bearer t unfurld-test {"q":1}`, string(resp.Body))
	assert.Positive(t, resp.Latency)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"))
}

func BenchmarkDoCached(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"title":"x"}`))
	}))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	require.NoError(b, err)
	c, err := New(Options{AllowedHosts: []string{u.Host}, AllowPrivateNetworks: true, CacheTTL: time.Hour})
	require.NoError(b, err)
	defer c.CloseIdleConnections()
	req := &Request{URL: srv.URL + "/repos/a/b/issues/1", CredentialKey: "static", Header: http.Header{"Accept": {"application/json"}, "Authorization": {"Bearer x"}}}
	_, err = c.Do(b.Context(), req)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Do(b.Context(), req)
		if err != nil || !resp.CacheHit {
			b.Fatalf("want a cache hit, got %v", err)
		}
	}
}

// TestIdleConnsPerHost: a burst of calls as wide as IdleConnsPerHost
// leaves its connections open for the next burst, which dials none
// (issue 11: callers released together by one group commit sent bursts
// wider than the old fixed pool of 64, and every burst dialed again).
// Without the option, a burst of 100 keeps only 64.
func TestIdleConnsPerHost(t *testing.T) {
	t.Parallel()
	const n = 100
	for _, tc := range []struct {
		name     string
		idle     int
		minDials int64 // dials of the second burst, at least
		maxDials int64 // and at most
	}{
		// The transport puts a connection back just after its caller
		// has read the answer, so a few may still be on their way when
		// the next burst starts.
		{"as wide as the bursts", n, 0, 10},
		{"default pool of 64", 0, n - defaultIdleConnsPerHost, n},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var dials atomic.Int64
			arrived := make(chan struct{}, n)
			var release atomic.Pointer[chan struct{}]
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				gate := *release.Load()
				arrived <- struct{}{}
				<-gate
				_, _ = w.Write([]byte("ok"))
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					dials.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			c := newTestClient(t, srv, func(o *Options) { o.IdleConnsPerHost = tc.idle })
			burst := func(round int) {
				gate := make(chan struct{})
				release.Store(&gate)
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						_, err := c.Do(t.Context(), &Request{URL: fmt.Sprintf("%s/r%d/%d", srv.URL, round, i)})
						assert.NoError(t, err)
					})
				}
				for range n {
					<-arrived // every call holds its own connection
				}
				close(gate)
				wg.Wait()
			}
			burst(1)
			require.Equal(t, int64(n), dials.Load())
			burst(2)
			second := dials.Load() - n
			assert.GreaterOrEqual(t, second, tc.minDials)
			assert.LessOrEqual(t, second, tc.maxDials)
		})
	}
}
