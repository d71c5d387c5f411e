package notiontest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unfurld/unfurld/engine/notion"
)

// Default integration credentials (pair B of protocol 1.2) the fake
// accepts unless WithCredentials says otherwise.
const (
	DefaultClientID     = "notiontest-client-id"
	DefaultClientSecret = "notiontest-client-secret"
)

// maxRequestBytes caps request bodies the fake reads.
const maxRequestBytes = 1 << 20

// Response is one scripted answer.
type Response struct {
	// Status is the HTTP status; 0 means 200.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Body is sent as is. When empty, a 2xx gets "{}" (204 gets nothing)
	// and an error status gets an API-style error body whose code fits
	// the status (protocol 7.4).
	Body string
	// Hang blocks the handler until the client gives up or the server
	// closes; Status and Body are then unused.
	Hang bool
	// Drop closes the connection without an answer, as a network failure
	// does; Status and Body are then unused.
	Drop bool
}

// UserOwner is the owner object of an authorization owned by the Notion
// user id (protocol 4.4), for TokenResponseJSON.Owner: each Notion user
// who connects gets a distinct one.
func UserOwner(id, name string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"type": "user", "user": map[string]any{
		"object": "user", "id": id, "type": "person", "name": name,
		"person": map[string]string{"email": name + "@example.com"},
	}})
	return b
}

// TokenResponseJSON is what the fake's token endpoint returns for a code
// (protocol 4.4). Zero fields get defaults: AccessToken a fresh random
// token, TokenType "bearer", BotID and WorkspaceID fixed ids, Owner
// {"type":"workspace","workspace":true}. Empty WorkspaceName,
// WorkspaceIcon are sent as null; an empty RefreshToken or RequestID is
// left out.
type TokenResponseJSON struct {
	// AccessToken is the Notion token; honoured by the object endpoint.
	AccessToken string
	// TokenType is sent as token_type.
	TokenType string
	// RefreshToken is sent only when set (protocol 10 #25).
	RefreshToken string
	// BotID and WorkspaceID identify the authorization.
	BotID, WorkspaceID string
	// WorkspaceName and WorkspaceIcon (a URL or an emoji) are null when
	// empty.
	WorkspaceName, WorkspaceIcon string
	// Owner is sent as is (protocol 4.4 variants).
	Owner json.RawMessage
	// RequestID is sent in the body only when set; the header always
	// carries one.
	RequestID string
	// Raw, when set, is sent instead of the JSON built from the fields
	// above; AccessToken (or the generated one) is still honoured on the
	// object endpoint. For testing lenient decoding.
	Raw string
}

// TokenRequest is the parsed JSON body of a token call (protocol 4.1).
type TokenRequest struct {
	// GrantType must be "authorization_code".
	GrantType string `json:"grant_type"`
	// Code is Notion's code being redeemed.
	Code string `json:"code"`
	// RedirectURI should stay empty in the Link Preview flow.
	RedirectURI string `json:"redirect_uri"`
	// ExternalAccount names the upstream account (protocol 4.2).
	ExternalAccount *notion.ExternalAccount `json:"external_account"`
}

// TokenCall is one recorded request to POST /v1/oauth/token.
type TokenCall struct {
	// Time is when the request arrived, by the server's clock.
	Time time.Time
	// Method is the HTTP method.
	Method string
	// Header holds the request headers.
	Header http.Header
	// Raw is the request body.
	Raw []byte
	// Body is Raw parsed; zero when Raw is not a JSON object.
	Body TokenRequest
	// Fields holds Raw's top-level keys, to assert that one is absent
	// (redirect_uri, protocol 4.1).
	Fields map[string]json.RawMessage
	// ClientID and ClientSecret are the HTTP Basic credentials; BasicOK
	// is false when the header was missing or malformed.
	ClientID, ClientSecret string
	BasicOK                bool
	// Status is what the fake answered; 0 for a call that hung or was
	// dropped.
	Status int
}

// PatchCall is one recorded request to PATCH /v1/external/object.
type PatchCall struct {
	// Time is when the request arrived, by the server's clock.
	Time time.Time
	// Method is the HTTP method.
	Method string
	// Header holds the request headers.
	Header http.Header
	// Raw is the request body.
	Raw []byte
	// Body is Raw parsed as an envelope; zero when it does not parse.
	// Operation.Set holds generic JSON ([]any or map[string]any).
	Body notion.Envelope
	// Token is the Bearer token presented, empty if none.
	Token string
	// Status is what the fake answered; 0 for a call that hung or was
	// dropped.
	Status int
}

// Option configures New.
type Option func(*Server)

// WithCredentials sets the integration client id and secret the token
// endpoint accepts.
func WithCredentials(id, secret string) Option {
	return func(s *Server) { s.clientID, s.clientSecret = id, secret }
}

// WithClock sets the clock used to stamp recorded calls (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now = now }
}

// WithTokenHang makes every token call hang until the client gives up
// (security.md F7).
func WithTokenHang() Option {
	return func(s *Server) { s.tokenHang = true }
}

// WithTokenStatus makes every token call fail with status and a fitting
// error body (security.md F7): OAuth style for 400 and 401, API style
// otherwise.
func WithTokenStatus(status int) Option {
	return func(s *Server) { s.tokenStatus = status }
}

// Server is a fake Notion API. It is safe for concurrent use.
type Server struct {
	srv  *httptest.Server
	now  func() time.Time
	stop chan struct{}
	hung chan struct{}

	clientID, clientSecret string
	tokenHang              bool
	tokenStatus            int

	mu          sync.Mutex
	codes       map[string]TokenResponseJSON
	used        map[string]bool
	tokens      map[string]bool
	tokenScript []Response
	patchScript []Response
	tokenCalls  []*TokenCall
	patchCalls  []*PatchCall
	seq         int
}

// New starts a fake Notion and closes it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		now:          time.Now,
		stop:         make(chan struct{}),
		hung:         make(chan struct{}, 64),
		clientID:     DefaultClientID,
		clientSecret: DefaultClientSecret,
		codes:        map[string]TokenResponseJSON{},
		used:         map[string]bool{},
		tokens:       map[string]bool{},
	}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/oauth/token", s.token)
	mux.HandleFunc("/v1/external/object", s.object)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		// Release hung handlers first: Close waits for them.
		close(s.stop)
		s.srv.Close()
	})
	return s
}

// URL is the base URL to put in notion.ClientOptions.BaseURL.
func (s *Server) URL() string { return s.srv.URL }

// ClientID is the integration client id the token endpoint accepts.
func (s *Server) ClientID() string { return s.clientID }

// ClientSecret is the integration client secret the token endpoint
// accepts.
func (s *Server) ClientSecret() string { return s.clientSecret }

// Hung receives one value each time a handler starts hanging, so a test
// can cancel the call at that moment instead of sleeping. Up to 64 are
// buffered; more are dropped.
func (s *Server) Hung() <-chan struct{} { return s.hung }

// AddCode makes code redeemable once at the token endpoint, answering
// resp. The access token is honoured by the object endpoint from the
// moment the code is redeemed.
func (s *Server) AddCode(code string, resp TokenResponseJSON) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = resp
	delete(s.used, code)
}

// AddToken makes token valid at the object endpoint.
func (s *Server) AddToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = true
}

// RevokeToken makes token invalid at the object endpoint, as when the
// user disconnects the integration in Notion.
func (s *Server) RevokeToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, token)
}

// ScriptToken queues answers for the next token calls, consumed in order
// before credentials and codes are checked (the code stays unused).
// Normal handling resumes when the script runs out.
func (s *Server) ScriptToken(rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenScript = append(s.tokenScript, rs...)
}

// ScriptPatch queues answers for the next authorized, well-formed object
// calls, consumed in order; then 200 {}.
func (s *Server) ScriptPatch(rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.patchScript = append(s.patchScript, rs...)
}

// TokenCalls returns copies of the recorded token calls, oldest first.
func (s *Server) TokenCalls() []TokenCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TokenCall, len(s.tokenCalls))
	for i, c := range s.tokenCalls {
		out[i] = *c
		out[i].Header = c.Header.Clone()
	}
	return out
}

// PatchCalls returns copies of the recorded object calls, oldest first.
func (s *Server) PatchCalls() []PatchCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PatchCall, len(s.patchCalls))
	for i, c := range s.patchCalls {
		out[i] = *c
		out[i].Header = c.Header.Clone()
	}
	return out
}

// token serves POST /v1/oauth/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	call := &TokenCall{Time: s.now(), Method: r.Method, Header: r.Header.Clone(), Raw: raw}
	call.ClientID, call.ClientSecret, call.BasicOK = r.BasicAuth()
	if json.Unmarshal(raw, &call.Fields) == nil {
		_ = json.Unmarshal(raw, &call.Body)
	}
	s.mu.Lock()
	s.tokenCalls = append(s.tokenCalls, call)
	var scripted *Response
	if len(s.tokenScript) > 0 {
		scripted = &s.tokenScript[0]
		s.tokenScript = s.tokenScript[1:]
	}
	s.mu.Unlock()

	switch {
	case s.tokenHang:
		s.hang(r)
		return
	case s.tokenStatus != 0:
		s.tokenFail(w, call, s.tokenStatus)
		return
	case scripted != nil:
		s.respond(w, r, scripted, func(st int) { s.setTokenStatus(call, st) })
		return
	case r.Method != http.MethodPost:
		s.setTokenStatus(call, s.apiError(w, http.StatusMethodNotAllowed, "invalid_request_url", "Invalid request URL."))
		return
	case !call.BasicOK || !equal(call.ClientID, s.clientID) || !equal(call.ClientSecret, s.clientSecret):
		// Real Notion: 401 with an OAuth-style body (protocol 4.5, [BA]).
		s.setTokenStatus(call, s.oauthError(w, http.StatusUnauthorized, "invalid_client", "Invalid client credentials."))
		return
	case call.Fields == nil:
		s.setTokenStatus(call, s.oauthError(w, http.StatusBadRequest, "invalid_request", "body failed validation: body should be an object."))
		return
	case call.Body.GrantType != "authorization_code":
		s.setTokenStatus(call, s.oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant type."))
		return
	}

	s.mu.Lock()
	resp, known := s.codes[call.Body.Code]
	if !known || s.used[call.Body.Code] {
		s.mu.Unlock()
		s.setTokenStatus(call, s.oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid code: this code has been revoked."))
		return
	}
	s.used[call.Body.Code] = true
	if resp.AccessToken == "" {
		resp.AccessToken = "ntn_fake_" + randomHex()
	}
	s.tokens[resp.AccessToken] = true
	s.mu.Unlock()

	body := resp.Raw
	if body == "" {
		body = resp.encode()
	}
	s.setTokenStatus(call, http.StatusOK)
	s.write(w, http.StatusOK, "", body)
}

// tokenFail answers a WithTokenStatus failure.
func (s *Server) tokenFail(w http.ResponseWriter, call *TokenCall, status int) {
	switch status {
	case http.StatusBadRequest:
		s.setTokenStatus(call, s.oauthError(w, status, "invalid_grant", "Invalid code: this code has been revoked."))
	case http.StatusUnauthorized:
		s.setTokenStatus(call, s.oauthError(w, status, "invalid_client", "Invalid client credentials."))
	default:
		s.setTokenStatus(call, s.apiError(w, status, codeFor(status), http.StatusText(status)))
	}
}

// object serves PATCH /v1/external/object.
func (s *Server) object(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	call := &PatchCall{Time: s.now(), Method: r.Method, Header: r.Header.Clone(), Raw: raw}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		call.Token = tok
	}
	parseErr := json.Unmarshal(raw, &call.Body)
	s.mu.Lock()
	s.patchCalls = append(s.patchCalls, call)
	authorized := call.Token != "" && s.tokens[call.Token]
	s.mu.Unlock()

	switch {
	case r.Method != http.MethodPatch:
		s.setPatchStatus(call, s.apiError(w, http.StatusMethodNotAllowed, "invalid_request_url", "Invalid request URL."))
		return
	case !authorized:
		s.setPatchStatus(call, s.apiError(w, http.StatusUnauthorized, "unauthorized", "API token is invalid."))
		return
	case r.Header.Get("Notion-Version") == "":
		// Notion refuses unversioned requests ([VER]).
		s.setPatchStatus(call, s.apiError(w, http.StatusBadRequest, "missing_version", "Notion-Version header failed validation."))
		return
	case parseErr != nil:
		s.setPatchStatus(call, s.apiError(w, http.StatusBadRequest, "invalid_json", "Error parsing JSON body."))
		return
	}
	s.mu.Lock()
	resp := Response{Status: http.StatusOK}
	if len(s.patchScript) > 0 {
		resp = s.patchScript[0]
		s.patchScript = s.patchScript[1:]
	}
	s.mu.Unlock()
	s.respond(w, r, &resp, func(st int) { s.setPatchStatus(call, st) })
}

// respond writes a scripted Response and reports the status sent.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, resp *Response, done func(int)) {
	if resp.Hang {
		s.hang(r)
		return
	}
	if resp.Drop {
		drop(w)
		return
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	body := resp.Body
	if body == "" {
		switch {
		case status == http.StatusNoContent:
		case status >= 200 && status <= 299:
			body = "{}"
		default:
			body = s.apiErrorBody(status, codeFor(status), http.StatusText(status))
		}
	}
	// The status is recorded before the body is written: a client that
	// stops reading at its cap has its answer, and may look at the
	// recorded calls, before a long body is all written.
	done(status)
	s.write(w, status, resp.RetryAfter, body)
}

// hang blocks until the client goes away or the server closes.
func (s *Server) hang(r *http.Request) {
	select {
	case s.hung <- struct{}{}:
	default:
	}
	select {
	case <-r.Context().Done():
	case <-s.stop:
	}
}

// drop closes the client's connection without writing a response.
func drop(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	// No hijacking (HTTP/2): abort the handler, which resets the stream.
	panic(http.ErrAbortHandler)
}

// oauthError writes an OAuth-style error body (protocol 4.5) and returns
// the status.
func (s *Server) oauthError(w http.ResponseWriter, status int, code, desc string) int {
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc, "request_id": s.requestID()})
	s.write(w, status, "", string(b))
	return status
}

// apiError writes an API-style error body (protocol 7.4) and returns the
// status.
func (s *Server) apiError(w http.ResponseWriter, status int, code, msg string) int {
	s.write(w, status, "", s.apiErrorBody(status, code, msg))
	return status
}

func (s *Server) apiErrorBody(status int, code, msg string) string {
	b, _ := json.Marshal(map[string]any{"object": "error", "status": status, "code": code, "message": msg, "request_id": s.requestID()})
	return string(b)
}

// write sends a JSON answer with Notion's request-id header.
func (s *Server) write(w http.ResponseWriter, status int, retryAfter, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("x-notion-request-id", s.requestID())
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// requestID returns a fresh id shaped like Notion's (a UUID).
func (s *Server) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", s.seq)
}

func (s *Server) setTokenStatus(c *TokenCall, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Status = status
}

func (s *Server) setPatchStatus(c *PatchCall, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Status = status
}

// encode builds the JSON of a successful exchange with defaults filled in.
func (r TokenResponseJSON) encode() string {
	nullable := func(v string) any {
		if v == "" {
			return nil
		}
		return v
	}
	owner := r.Owner
	if owner == nil {
		owner = json.RawMessage(`{"type":"workspace","workspace":true}`)
	}
	m := map[string]any{
		"access_token":           r.AccessToken,
		"token_type":             orDefault(r.TokenType, "bearer"),
		"bot_id":                 orDefault(r.BotID, "b0000000-0000-4000-8000-000000000001"),
		"workspace_id":           orDefault(r.WorkspaceID, "c0000000-0000-4000-8000-000000000001"),
		"workspace_name":         nullable(r.WorkspaceName),
		"workspace_icon":         nullable(r.WorkspaceIcon),
		"owner":                  owner,
		"duplicated_template_id": nil,
	}
	if r.RefreshToken != "" {
		m["refresh_token"] = r.RefreshToken
	}
	if r.RequestID != "" {
		m["request_id"] = r.RequestID
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// codeFor gives the API-style code Notion uses for a status (protocol
// 7.4).
func codeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "validation_error"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "restricted_resource"
	case http.StatusNotFound:
		return "object_not_found"
	case http.StatusConflict:
		return "conflict_error"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusBadGateway:
		return "bad_gateway"
	case http.StatusServiceUnavailable:
		return "service_unavailable"
	case http.StatusGatewayTimeout:
		return "gateway_timeout"
	case notion.StatusServiceOverload:
		return "service_overload"
	}
	if status >= 500 {
		return "internal_server_error"
	}
	return "status_" + strconv.Itoa(status)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// equal compares credentials in constant time, as a real server would.
func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// randomHex returns 16 random bytes in hex.
func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
