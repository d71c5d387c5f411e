package upstreamtest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Default OAuth client credentials the fake accepts unless WithClient
// says otherwise.
const (
	DefaultClientID     = "upstreamtest-client-id"
	DefaultClientSecret = "upstreamtest-client-secret-0123456789"
)

// Prefixes of what the OAuth server issues, so a test can scan logs and
// pages for any of them.
const (
	CodePrefix    = "up-code-"
	AccessPrefix  = "up-at-"
	RefreshPrefix = "up-rt-"
)

// Paths of the OAuth endpoints; every other path belongs to the API.
const (
	AuthorizePath = "/oauth/authorize"
	TokenPath     = "/oauth/token"
	RevokePath    = "/oauth/revoke"
)

// DefaultExpiresIn is the expires_in of issued access tokens, in seconds.
const DefaultExpiresIn = 3600

// oauthSettings are the OAuth server's fixed settings.
type oauthSettings struct {
	clientID, clientSecret string
	requirePKCE            bool
	formEncoded            bool
	keepRefresh            bool
	expiresIn              int
}

func defaultOAuthSettings() oauthSettings {
	return oauthSettings{clientID: DefaultClientID, clientSecret: DefaultClientSecret, expiresIn: DefaultExpiresIn}
}

// WithClient sets the OAuth client id and secret the server accepts.
func WithClient(id, secret string) Option {
	return func(s *Server) { s.oauth.clientID, s.oauth.clientSecret = id, secret }
}

// WithRequiredPKCE makes the authorize endpoint refuse a request without
// an S256 code challenge, as an upstream that enforces PKCE does.
func WithRequiredPKCE() Option {
	return func(s *Server) { s.oauth.requirePKCE = true }
}

// WithExpiresIn sets expires_in of issued access tokens, in seconds.
func WithExpiresIn(seconds int) Option {
	return func(s *Server) { s.oauth.expiresIn = seconds }
}

// WithFormEncodedTokens answers token requests form-encoded, the way
// GitHub does by default, instead of with JSON.
func WithFormEncodedTokens() Option {
	return func(s *Server) { s.oauth.formEncoded = true }
}

// WithoutNewRefreshToken answers refreshes with a new access token only:
// the refresh token stays valid and is not rotated.
func WithoutNewRefreshToken() Option {
	return func(s *Server) { s.oauth.keepRefresh = true }
}

// TokenCall is one recorded request to the token endpoint.
type TokenCall struct {
	// Time is when the request arrived, by the server's clock.
	Time time.Time
	// GrantType is the grant_type parameter.
	GrantType string
	// Form holds the body parameters.
	Form url.Values
	// ClientOK is true when the client authenticated with its id and
	// secret in exactly one way.
	ClientOK bool
	// Status is what the fake answered; 0 while the request waits or when
	// the client gave up first.
	Status int
}

// RevokeCall is one recorded request to the revocation endpoint.
type RevokeCall struct {
	// Token and Hint are the token and token_type_hint parameters.
	Token, Hint string
	// ClientOK is as in TokenCall.
	ClientOK bool
}

// Family is the state of one grant: the refresh tokens rotated from one
// authorization code.
type Family struct {
	// Current is the refresh token that is valid now.
	Current string
	// Revoked is true once a spent refresh token came back or the grant
	// was revoked.
	Revoked bool
}

// authServer is the OAuth server's state, guarded by Server.mu.
type authServer struct {
	codes         map[string]*authCode
	families      map[string]*family
	familyOf      map[string]*family // refresh and access tokens -> family
	lastAuthorize url.Values
	tokenCalls    []*TokenCall
	revocations   []RevokeCall
	refreshHold   chan struct{}
	// refreshStatus and refreshError, when set, answer every refresh.
	refreshStatus int
	refreshError  string
}

// authCode is one issued authorization code.
type authCode struct {
	challenge, method, redirect string
	used                        bool
}

// family is one grant's token state.
type family struct {
	current string          // the valid refresh token
	access  string          // the live access token; "" once expired
	spent   map[string]bool // rotated-away refresh tokens
	revoked bool
}

func newAuthServer() authServer {
	return authServer{codes: map[string]*authCode{}, families: map[string]*family{}, familyOf: map[string]*family{}}
}

// liveAccess reports whether tok is the live access token of a live
// grant.
func (a *authServer) liveAccess(tok string) bool {
	f := a.familyOf[tok]
	return f != nil && !f.revoked && f.access == tok
}

// AuthorizeURL is the authorization endpoint, for auth.oauth2.authorize_url.
func (s *Server) AuthorizeURL() string { return s.srv.URL + AuthorizePath }

// TokenURL is the token endpoint, for auth.oauth2.token_url.
func (s *Server) TokenURL() string { return s.srv.URL + TokenPath }

// RevokeURL is the RFC 7009 endpoint, for auth.oauth2.revocation.url.
func (s *Server) RevokeURL() string { return s.srv.URL + RevokePath }

// ClientID is the OAuth client id the server accepts.
func (s *Server) ClientID() string { return s.oauth.clientID }

// ClientSecret is the OAuth client secret the server accepts.
func (s *Server) ClientSecret() string { return s.oauth.clientSecret }

// FailRefresh answers every refresh with status and an RFC 6749 5.2 error
// code (invalid_grant for a revoked grant, say); status 0 ends it.
func (s *Server) FailRefresh(status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.as.refreshStatus, s.as.refreshError = status, code
}

// HoldRefresh keeps every refresh request waiting, once recorded, until
// release is called, the client gives up or the server closes. Held
// reports each one that starts waiting.
func (s *Server) HoldRefresh() (release func()) { return s.hold(&s.as.refreshHold) }

// ExpireAccessTokens ends every access token issued so far, as an
// upstream that expires them early does; refresh tokens and keys stay
// valid.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.as.families {
		f.access = ""
	}
}

// LastAuthorize returns the query of the newest authorize request.
func (s *Server) LastAuthorize() url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := url.Values{}
	for k, vs := range s.as.lastAuthorize {
		v[k] = append([]string(nil), vs...)
	}
	return v
}

// TokenCalls returns copies of the recorded token requests, oldest
// first.
func (s *Server) TokenCalls() []TokenCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TokenCall, len(s.as.tokenCalls))
	for i, c := range s.as.tokenCalls {
		out[i] = *c
	}
	return out
}

// CountTokenCalls counts the recorded token requests of grantType
// ("authorization_code", "refresh_token").
func (s *Server) CountTokenCalls(grantType string) int {
	n := 0
	for _, c := range s.TokenCalls() {
		if c.GrantType == grantType {
			n++
		}
	}
	return n
}

// Revocations returns the recorded revocation requests, oldest first.
func (s *Server) Revocations() []RevokeCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RevokeCall(nil), s.as.revocations...)
}

// RefreshTokens returns the refresh token of every live grant, in no
// particular order.
func (s *Server) RefreshTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, f := range s.as.families {
		if !f.revoked {
			out = append(out, f.current)
		}
	}
	return out
}

// Family returns the state of the grant refreshToken belongs to; zero if
// it belongs to none.
func (s *Server) Family(refreshToken string) Family {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.as.familyOf[refreshToken]
	if f == nil {
		return Family{}
	}
	return Family{Current: f.current, Revoked: f.revoked}
}

// authorize is the user's sign-in: it approves at once and redirects to
// redirect_uri with a code bound to it and to the PKCE challenge.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case r.Method != http.MethodGet,
		q.Get("response_type") != "code", q.Get("client_id") != s.oauth.clientID, q.Get("state") == "",
		challenge != "" && method != "S256",
		s.oauth.requirePKCE && challenge == "":
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	loc, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !loc.IsAbs() {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	code := random(CodePrefix)
	s.mu.Lock()
	s.as.lastAuthorize = q
	s.as.codes[code] = &authCode{challenge: challenge, method: method, redirect: q.Get("redirect_uri")}
	s.mu.Unlock()
	lq := loc.Query()
	lq.Set("code", code)
	lq.Set("state", q.Get("state"))
	loc.RawQuery = lq.Encode()
	http.Redirect(w, r, loc.String(), http.StatusFound)
}

// clientOK checks the client's credentials: HTTP Basic (form-encoded
// first, RFC 6749 2.3.1) or client_id and client_secret in the body, and
// never both (RFC 6749 2.3).
func (s *Server) clientOK(r *http.Request) bool {
	user, pass, basic := r.BasicAuth()
	inBody := r.PostForm.Has("client_secret")
	switch {
	case basic && inBody, !basic && !inBody:
		return false
	case basic:
		u, uerr := url.QueryUnescape(user)
		p, perr := url.QueryUnescape(pass)
		return uerr == nil && perr == nil && equal(u, s.oauth.clientID) && equal(p, s.oauth.clientSecret)
	default:
		return equal(r.PostForm.Get("client_id"), s.oauth.clientID) && equal(r.PostForm.Get("client_secret"), s.oauth.clientSecret)
	}
}

// token serves the token endpoint: authorization_code and refresh_token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		s.tokenError(w, nil, http.StatusBadRequest, "invalid_request", "")
		return
	}
	call := &TokenCall{Time: s.now(), GrantType: r.PostForm.Get("grant_type"), Form: r.PostForm, ClientOK: s.clientOK(r)}
	s.mu.Lock()
	s.as.tokenCalls = append(s.as.tokenCalls, call)
	hold := s.as.refreshHold
	s.mu.Unlock()
	switch {
	case !call.ClientOK:
		s.tokenError(w, call, http.StatusUnauthorized, "invalid_client", "")
	case call.GrantType == "authorization_code":
		s.exchange(w, r, call)
	case call.GrantType == "refresh_token":
		if hold != nil && !s.wait(r, hold) {
			return
		}
		s.refresh(w, r, call)
	default:
		s.tokenError(w, call, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

// exchange redeems a code: once, with its redirect_uri and, when it was
// bound to a challenge, the verifier whose S256 it is.
func (s *Server) exchange(w http.ResponseWriter, r *http.Request, call *TokenCall) {
	code, verifier := r.PostForm.Get("code"), r.PostForm.Get("code_verifier")
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.as.codes[code]
	switch {
	case !ok || c.used, r.PostForm.Get("redirect_uri") != c.redirect:
		s.tokenErrorLocked(w, call, http.StatusBadRequest, "invalid_grant", code)
		return
	case c.challenge != "" && (c.method != "S256" || S256(verifier) != c.challenge):
		c.used = true // a failed redemption still burns the code
		s.tokenErrorLocked(w, call, http.StatusBadRequest, "invalid_grant", code+" "+verifier)
		return
	case c.challenge == "" && verifier != "":
		s.tokenErrorLocked(w, call, http.StatusBadRequest, "invalid_request", verifier)
		return
	}
	c.used = true
	f := &family{current: random(RefreshPrefix), access: random(AccessPrefix), spent: map[string]bool{}}
	s.as.families[f.current] = f
	s.as.familyOf[f.current], s.as.familyOf[f.access] = f, f
	s.writeTokenLocked(w, call, f.access, f.current)
}

// refresh rotates a refresh token; a spent one coming back revokes its
// family (RFC 9700 4.14).
func (s *Server) refresh(w http.ResponseWriter, r *http.Request, call *TokenCall) {
	rt := r.PostForm.Get("refresh_token")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.as.refreshStatus != 0 {
		s.tokenErrorLocked(w, call, s.as.refreshStatus, s.as.refreshError, rt)
		return
	}
	f := s.as.familyOf[rt]
	switch {
	case f == nil || f.revoked:
		s.tokenErrorLocked(w, call, http.StatusBadRequest, "invalid_grant", rt)
		return
	case f.spent[rt] || f.current != rt:
		f.revoked = true // reuse: kill the family
		s.tokenErrorLocked(w, call, http.StatusBadRequest, "invalid_grant", rt)
		return
	}
	f.access = random(AccessPrefix) // the older access token dies
	s.as.familyOf[f.access] = f
	if s.oauth.keepRefresh {
		s.writeTokenLocked(w, call, f.access, "")
		return
	}
	f.spent[rt] = true
	f.current = random(RefreshPrefix)
	s.as.familyOf[f.current] = f
	s.writeTokenLocked(w, call, f.access, f.current)
}

// revoke is RFC 7009's endpoint: an authenticated client revokes the
// whole grant of the token it names; 200 whatever the token (RFC 7009
// 2.2).
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		s.tokenError(w, nil, http.StatusBadRequest, "invalid_request", "")
		return
	}
	call := RevokeCall{Token: r.PostForm.Get("token"), Hint: r.PostForm.Get("token_type_hint"), ClientOK: s.clientOK(r)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.as.revocations = append(s.as.revocations, call)
	if !call.ClientOK {
		s.tokenErrorLocked(w, nil, http.StatusUnauthorized, "invalid_client", "")
		return
	}
	if f := s.as.familyOf[call.Token]; f != nil {
		f.revoked = true
	}
	delete(s.keys, call.Token)
	w.WriteHeader(http.StatusOK)
}

// tokenError answers like RFC 6749 5.2, with a description that echoes
// what the client sent: a careless client would put it in its errors.
func (s *Server) tokenError(w http.ResponseWriter, call *TokenCall, status int, code, echo string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenErrorLocked(w, call, status, code, echo)
}

func (s *Server) tokenErrorLocked(w http.ResponseWriter, call *TokenCall, status int, code, echo string) {
	if call != nil {
		call.Status = status
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "rejected " + echo})
}

// writeTokenLocked answers a successful token request; rt is left out
// when empty.
func (s *Server) writeTokenLocked(w http.ResponseWriter, call *TokenCall, at, rt string) {
	call.Status = http.StatusOK
	if s.oauth.formEncoded {
		v := url.Values{"access_token": {at}, "token_type": {"bearer"}, "expires_in": {strconv.Itoa(s.oauth.expiresIn)}}
		if rt != "" {
			v.Set("refresh_token", rt)
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		_, _ = w.Write([]byte(v.Encode()))
		return
	}
	body := map[string]any{"access_token": at, "token_type": "bearer", "expires_in": s.oauth.expiresIn}
	if rt != "" {
		body["refresh_token"] = rt
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// random returns prefix and 16 random bytes, base64url.
func random(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// S256 is the PKCE code challenge of verifier (RFC 7636 4.2), written
// out here rather than taken from golang.org/x/oauth2, so that a client
// is checked against an independent computation.
func S256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// equal compares credentials in constant time, as a real server would.
func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
