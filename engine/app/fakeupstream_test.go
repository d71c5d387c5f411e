package app_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// fakeService is an upstream service with its own OAuth 2 server
// (authorization code + PKCE S256 + rotating refresh tokens) and an API
// that answers only its current access token. It checks what a careful
// upstream checks, so a client mistake fails the test.
type fakeService struct {
	*httptest.Server
	t *testing.T

	mu        sync.Mutex
	clientID  string
	secret    string
	redirect  string
	codes     map[string]pending // upstream code -> pending grant
	access    map[string]bool    // live access tokens
	refresh   map[string]bool    // live refresh tokens
	seq       int
	expiresIn int
	// refuseRefresh makes the token endpoint answer invalid_grant to
	// refresh requests (a revoked grant).
	refuseRefresh bool
	// rateLimited makes the API answer 401 with a Retry-After, as an
	// upstream that limits unauthenticated-looking bursts does.
	rateLimited bool
	// tokenCalls counts token endpoint requests by grant type.
	tokenCalls map[string]int
	// apiAuth records the Authorization header of each API call.
	apiAuth []string
	items   map[string]string
	// revoked records each call to the revocation endpoint.
	revoked []revokeCall
}

// revokeCall is one request to the fake's RFC 7009 endpoint.
type revokeCall struct {
	token, hint string
	clientOK    bool
}

type pending struct {
	challenge, redirect string
}

func newFakeService(t *testing.T) *fakeService {
	f := &fakeService{
		t: t, clientID: "upstream-app", secret: "upstream-app-secret-0123456789",
		codes: map[string]pending{}, access: map[string]bool{}, refresh: map[string]bool{},
		tokenCalls: map[string]int{}, items: map[string]string{}, expiresIn: 3600,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oauth/authorize", f.authorize)
	mux.HandleFunc("POST /oauth/token", f.token)
	mux.HandleFunc("POST /oauth/revoke", f.revoke)
	mux.HandleFunc("GET /api/user", f.api(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"id": 4242, "login": "octo-user", "name": "Octo User"}`))
	}))
	mux.HandleFunc("GET /api/items/{id}", f.api(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		body, ok := f.items[r.PathValue("id")]
		f.mu.Unlock()
		if !ok {
			http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// authorize is the user's sign-in: it approves at once and redirects back
// with a code bound to the PKCE challenge.
func (f *fakeService) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != f.clientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" {
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.seq++
	code := fmt.Sprintf("upcode-%d", f.seq)
	f.codes[code] = pending{challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri")}
	f.mu.Unlock()
	u, _ := url.Parse(q.Get("redirect_uri"))
	v := url.Values{"code": {code}, "state": {q.Get("state")}}
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (f *fakeService) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok || id != f.clientID || secret != f.secret {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	_ = r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	grant := r.PostForm.Get("grant_type")
	f.tokenCalls[grant]++
	fail := func() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
	}
	switch grant {
	case "authorization_code":
		p, ok := f.codes[r.PostForm.Get("code")]
		delete(f.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != p.challenge || r.PostForm.Get("redirect_uri") != p.redirect {
			fail()
			return
		}
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		if f.refuseRefresh || !f.refresh[rt] {
			fail()
			return
		}
		delete(f.refresh, rt) // rotation: a reused refresh token fails
	default:
		fail()
		return
	}
	f.seq++
	at, rt := fmt.Sprintf("up-access-%d-secretvalue", f.seq), fmt.Sprintf("up-refresh-%d-secretvalue", f.seq)
	f.access = map[string]bool{at: true} // older access tokens die
	f.refresh[rt] = true
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": at, "refresh_token": rt, "token_type": "bearer", "expires_in": f.expiresIn})
}

// revoke is RFC 7009's endpoint: it records the call and forgets the
// token; 200 whatever the token (RFC 7009 2.2).
func (f *fakeService) revoke(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	_ = r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := r.PostForm.Get("token")
	f.revoked = append(f.revoked, revokeCall{token: tok, hint: r.PostForm.Get("token_type_hint"), clientOK: ok && id == f.clientID && secret == f.secret})
	delete(f.refresh, tok)
	delete(f.access, tok)
}

func (f *fakeService) revocations() []revokeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]revokeCall(nil), f.revoked...)
}

func (f *fakeService) api(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		f.mu.Lock()
		f.apiAuth = append(f.apiAuth, auth)
		ok := f.access[strings.TrimPrefix(auth, "Bearer ")]
		limited := f.rateLimited
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if limited {
			w.Header().Set("Retry-After", "30")
			ok = false
		}
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"message":"Bad credentials"}`))
			return
		}
		next(w, r)
	}
}

// killAccess revokes every live access token, as when the upstream
// expires them early.
func (f *fakeService) killAccess() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.access = map[string]bool{}
}

// addKey makes key a valid API key (it is also accepted as an access
// token, which is what an API key is to the API).
func (f *fakeService) addKey(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.access[key] = true
}

func (f *fakeService) setItem(id, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items[id] = body
}

func (f *fakeService) calls(grant string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenCalls[grant]
}

func (f *fakeService) lastAuth() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.apiAuth) == 0 {
		return ""
	}
	return f.apiAuth[len(f.apiAuth)-1]
}
