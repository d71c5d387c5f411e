package upstreamtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// maxRequestBytes caps request bodies the fake reads.
const maxRequestBytes = 1 << 20

// Response is one scripted API answer.
type Response struct {
	// Status is the HTTP status. 0 answers 200 with the body, or 304
	// without one when the request's validators match ETag or
	// LastModified.
	Status int
	// Body is sent as is. When empty, JSON (if set) is encoded instead,
	// and an error status without either gets {"message": status text}.
	Body string
	// JSON is encoded as the body when Body is empty.
	JSON any
	// ETag and LastModified are sent as validators (see Status).
	ETag, LastModified string
	// Header entries are sent as they are; Content-Type defaults to
	// application/json.
	Header map[string]string
	// Delay holds the answer back, as a slow upstream does, unless the
	// client gives up first.
	Delay time.Duration
}

// Request is one recorded API request.
type Request struct {
	// Time is when the request arrived, by the server's clock.
	Time time.Time
	// Method is the HTTP method.
	Method string
	// Path is the escaped path, without the query.
	Path string
	// Query is the parsed query.
	Query url.Values
	// Header holds the request headers.
	Header http.Header
	// Body is the request body.
	Body []byte
	// Status is what the fake answered; 0 while the request waits or
	// when the client gave up first.
	Status int
}

// BasicAuth returns the HTTP Basic credentials of the request, as
// http.Request.BasicAuth does.
func (r Request) BasicAuth() (user, pass string, ok bool) {
	return (&http.Request{Header: r.Header}).BasicAuth()
}

// Form parses Body as a form-encoded body.
func (r Request) Form() url.Values {
	v, _ := url.ParseQuery(string(r.Body))
	return v
}

// Option configures New.
type Option func(*Server)

// WithClock sets the clock that stamps recorded requests (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now = now }
}

// WithBearerAuth makes the API answer 401 {"message":"Bad credentials"}
// unless the Authorization header, less a "Bearer " prefix, is a live
// access token of the OAuth server or a key given to AddKey.
func WithBearerAuth() Option {
	return func(s *Server) { s.bearerAuth = true }
}

// Server is a fake upstream service. It is safe for concurrent use.
type Server struct {
	srv      *httptest.Server
	now      func() time.Time
	stop     chan struct{}
	stopOnce sync.Once
	held     chan struct{}

	bearerAuth bool
	oauth      oauthSettings

	mu       sync.Mutex
	routes   map[string]Response
	scripts  map[string][]Response
	override *Response
	apiHold  chan struct{}
	keys     map[string]bool
	requests []*Request
	as       authServer
}

// New starts a fake upstream and closes it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		now:     time.Now,
		stop:    make(chan struct{}),
		held:    make(chan struct{}, 64),
		oauth:   defaultOAuthSettings(),
		routes:  map[string]Response{},
		scripts: map[string][]Response{},
		keys:    map[string]bool{},
		as:      newAuthServer(),
	}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(AuthorizePath, s.authorize)
	mux.HandleFunc(TokenPath, s.token)
	mux.HandleFunc(RevokePath, s.revoke)
	mux.HandleFunc("/", s.api)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// URL is the base URL, to put in a provider's upstream.base_url.
func (s *Server) URL() string { return s.srv.URL }

// Client returns an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close releases every held request and shuts the server down. It runs
// when the test ends; a test may call it earlier (to check for leaked
// goroutines, say).
func (s *Server) Close() {
	// Release held handlers first: the server's Close waits for them.
	s.stopOnce.Do(func() { close(s.stop) })
	s.srv.Close()
}

// Set makes path (escaped, without the query) answer r until set again.
func (s *Server) Set(path string, r Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[path] = r
}

// Script queues one-time answers for path, served in order before its
// standing answer.
func (s *Server) Script(path string, rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[path] = append(s.scripts[path], rs...)
}

// Override answers every API request with r, whatever its path and
// credentials, until Override(nil).
func (s *Server) Override(r *Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override = r
}

// AddKey makes key a valid credential for WithBearerAuth, as an API key
// is: it never expires and survives ExpireAccessTokens.
func (s *Server) AddKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = true
}

// HoldAPI keeps every API request waiting, after it is recorded and
// before it is answered, until release is called, the client gives up or
// the server closes. release may be called more than once.
func (s *Server) HoldAPI() (release func()) { return s.hold(&s.apiHold) }

// hold puts a new hold in *slot, guarded by s.mu, and returns its
// release.
func (s *Server) hold(slot *chan struct{}) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hold := make(chan struct{})
	*slot = hold
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if *slot == hold {
				*slot = nil
			}
			close(hold)
		})
	}
}

// Held gets a value (while it has room for 64) each time a request
// starts waiting on HoldAPI or HoldRefresh.
func (s *Server) Held() <-chan struct{} { return s.held }

// Requests returns copies of the recorded API requests, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = *r
		out[i].Header = r.Header.Clone()
	}
	return out
}

// RequestsTo returns the recorded API requests for path, oldest first.
func (s *Server) RequestsTo(path string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// LastRequest returns the newest recorded API request; false if there is
// none.
func (s *Server) LastRequest() (Request, bool) {
	rs := s.Requests()
	if len(rs) == 0 {
		return Request{}, false
	}
	return rs[len(rs)-1], true
}

// api serves every path but the OAuth endpoints.
func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	req := &Request{
		Time: s.now(), Method: r.Method, Path: r.URL.EscapedPath(),
		Query: r.URL.Query(), Header: r.Header.Clone(), Body: body,
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	hold := s.apiHold
	s.mu.Unlock()
	if hold != nil && !s.wait(r, hold) {
		return
	}
	s.respond(w, r, req, s.answer(req))
}

// answer picks the response for req: an override, a refusal of its
// credentials, the path's script, its standing answer, or 404.
func (s *Server) answer(req *Request) Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.override != nil {
		return *s.override
	}
	if s.bearerAuth && !s.authorized(strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")) {
		return Response{Status: http.StatusUnauthorized, Body: `{"message":"Bad credentials"}`}
	}
	if q := s.scripts[req.Path]; len(q) > 0 {
		s.scripts[req.Path] = q[1:]
		return q[0]
	}
	if a, ok := s.routes[req.Path]; ok {
		return a
	}
	return Response{Status: http.StatusNotFound, Body: `{"message":"Not Found"}`}
}

// authorized reports whether cred is a key or a live access token. The
// caller holds s.mu.
func (s *Server) authorized(cred string) bool {
	return cred != "" && (s.keys[cred] || s.as.liveAccess(cred))
}

// respond writes resp and records its status on req.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, req *Request, resp Response) {
	if resp.Delay > 0 {
		t := time.NewTimer(resp.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		}
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
		if notModified(r.Header, resp) {
			status = http.StatusNotModified
		}
	}
	body := resp.Body
	if body == "" && resp.JSON != nil {
		b, _ := json.Marshal(resp.JSON)
		body = string(b)
	}
	if body == "" && status >= 400 {
		b, _ := json.Marshal(map[string]string{"message": http.StatusText(status)})
		body = string(b)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	for k, v := range resp.Header {
		h.Set(k, v)
	}
	if resp.ETag != "" {
		h.Set("ETag", resp.ETag)
	}
	if resp.LastModified != "" {
		h.Set("Last-Modified", resp.LastModified)
	}
	s.mu.Lock()
	req.Status = status
	s.mu.Unlock()
	w.WriteHeader(status)
	if status != http.StatusNotModified && status != http.StatusNoContent {
		_, _ = io.WriteString(w, body)
	}
}

// notModified reports whether the request's validators match resp, in
// the order RFC 9110 13.2.2 evaluates them: If-None-Match when the
// request has one, If-Modified-Since only when it has none. A stale ETag
// beside a matching date is a changed object, as a real server answers.
func notModified(h http.Header, resp Response) bool {
	if inm := h.Get("If-None-Match"); inm != "" {
		return resp.ETag != "" && inm == resp.ETag
	}
	ims := h.Get("If-Modified-Since")
	return ims != "" && ims == resp.LastModified
}

// wait blocks on hold and reports whether the request should still be
// answered: false when the client went away or the server is closing.
func (s *Server) wait(r *http.Request, hold <-chan struct{}) bool {
	select {
	case s.held <- struct{}{}:
	default:
	}
	select {
	case <-hold:
		return true
	case <-r.Context().Done():
		return false
	case <-s.stop:
		return false
	}
}
