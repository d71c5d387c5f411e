package upstreamauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	oauthstore "github.com/go-oauth2/oauth2/v4/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/unfurld/unfurld/engine/clock/clocktest"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

const (
	fakeClientID     = "unfurld-app"
	fakeClientSecret = "cs-0123456789abcdefSECRET"
	fakeRedirect     = "https://unfurld.test/providers/example/callback"
)

// newFakeAS starts the fake upstream's authorization server for our
// client credentials.
func newFakeAS(t *testing.T, opts ...upstreamtest.Option) *upstreamtest.Server {
	t.Helper()
	return upstreamtest.New(t, append([]upstreamtest.Option{upstreamtest.WithClient(fakeClientID, fakeClientSecret)}, opts...)...)
}

func fakeOptions(f *upstreamtest.Server, clock *clocktest.Fake) Options {
	return Options{
		Provider: "example",
		OAuth2: config.OAuth2{
			AuthorizeURL: f.AuthorizeURL(),
			TokenURL:     f.TokenURL(),
			ClientID:     fakeClientID,
			ClientSecret: config.Secret(fakeClientSecret),
			Scopes:       []string{"repo", "read:user"},
			ExtraParams:  map[string]string{"prompt": "consent", "allow_signup": "false"},
		},
		RedirectURL: fakeRedirect,
		HTTPClient:  f.Client(),
		Now:         clock.Now,
	}
}

func newFakeUpstream(t *testing.T, f *upstreamtest.Server, clock *clocktest.Fake, edit ...func(*Options)) *Client {
	t.Helper()
	opts := fakeOptions(f, clock)
	for _, e := range edit {
		e(&opts)
	}
	u, err := New(opts)
	require.NoError(t, err)
	return u
}

// followAuthorize plays the browser: it requests AuthURL without
// following redirects and returns the callback query from Location.
func followAuthorize(t *testing.T, authURL string) url.Values {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, authURL, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode, "authorize must redirect")
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, fakeRedirect, loc.Scheme+"://"+loc.Host+loc.Path)
	return loc.Query()
}

// authorizeStatus requests authURL without following redirects.
func authorizeStatus(t *testing.T, authURL string) int {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, authURL, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return resp.StatusCode
}

// signIn runs Start -> authorize -> state check -> Exchange.
func signIn(t *testing.T, u *Client) Token {
	t.Helper()
	s := u.Start()
	cb := followAuthorize(t, s.AuthURL)
	require.Equal(t, s.State, cb.Get("state"))
	tok, err := u.Exchange(t.Context(), cb.Get("code"), s.Verifier)
	require.NoError(t, err)
	return tok
}

// TestUpstreamStartAuthorizeURL covers TH-06 and A5: a 256-bit state and
// an S256 challenge on every start, fresh each time, and exactly the
// parameters we mean to send (TH-07: the provider's own redirect URI).
func TestUpstreamStartAuthorizeURL(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t)
	u := newFakeUpstream(t, f, clocktest.New(clocktest.Start))

	s := u.Start()
	au, err := url.Parse(s.AuthURL)
	require.NoError(t, err)
	assert.Equal(t, f.AuthorizeURL(), au.Scheme+"://"+au.Host+au.Path)
	q := au.Query()
	keys := make([]string, 0, len(q))
	for k, v := range q {
		keys = append(keys, k)
		assert.Len(t, v, 1, "parameter %s appears once", k)
	}
	sort.Strings(keys)
	assert.Equal(t, []string{
		"allow_signup", "client_id", "code_challenge", "code_challenge_method",
		"prompt", "redirect_uri", "response_type", "scope", "state",
	}, keys)
	assert.Equal(t, "code", q.Get("response_type"))
	assert.Equal(t, fakeClientID, q.Get("client_id"))
	assert.Equal(t, fakeRedirect, q.Get("redirect_uri"))
	assert.Equal(t, "repo read:user", q.Get("scope"))
	assert.Equal(t, "consent", q.Get("prompt"))
	assert.Equal(t, "false", q.Get("allow_signup"))
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.Equal(t, upstreamtest.S256(s.Verifier), q.Get("code_challenge"))
	assert.Equal(t, s.State, q.Get("state"))

	raw, err := base64.RawURLEncoding.DecodeString(s.State)
	require.NoError(t, err, "state is base64url")
	assert.Len(t, raw, 32, "state carries 256 bits")
	assert.Len(t, s.Verifier, 43, "verifier is 32 octets base64url (RFC 7636 4.1)")
	assert.NotContains(t, s.AuthURL, s.Verifier, "the verifier never leaves us before the token request")

	// The fake saw the same challenge the browser carried.
	cb := followAuthorize(t, s.AuthURL)
	assert.Equal(t, s.State, cb.Get("state"))
	assert.Equal(t, upstreamtest.S256(s.Verifier), f.LastAuthorize().Get("code_challenge"))

	s2 := u.Start()
	assert.NotEqual(t, s.State, s2.State)
	assert.NotEqual(t, s.Verifier, s2.Verifier)
	assert.NotEqual(t, s.AuthURL, s2.AuthURL)
}

// TestUpstreamStartWithoutPKCE covers DisablePKCE: no challenge, no
// verifier, and Exchange sends none.
func TestUpstreamStartWithoutPKCE(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t)
	u := newFakeUpstream(t, f, clocktest.New(clocktest.Start), func(o *Options) { o.OAuth2.DisablePKCE = true })
	s := u.Start()
	assert.Empty(t, s.Verifier)
	q := must(url.Parse(s.AuthURL)).Query()
	assert.False(t, q.Has("code_challenge"))
	assert.False(t, q.Has("code_challenge_method"))
	cb := followAuthorize(t, s.AuthURL)
	tok, err := u.Exchange(t.Context(), cb.Get("code"), "")
	require.NoError(t, err)
	assert.False(t, tok.AccessToken.IsZero())
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestUpstreamExchange covers A5 and TH-08: the fake checks the
// verifier's S256 against the recorded challenge; each Exchange sends
// exactly one token request, even when it fails (x/oauth2's auth-style
// probing would send a second).
func TestUpstreamExchange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		formEncoded bool
		verifier    func(Start) string
		replay      bool
		wantErr     string
		wantCalls   int
	}{
		{name: "right verifier", verifier: func(s Start) string { return s.Verifier }, wantCalls: 1},
		{name: "form encoded response", formEncoded: true, verifier: func(s Start) string { return s.Verifier }, wantCalls: 1},
		{name: "wrong verifier", verifier: func(Start) string { return oauth2Verifier() }, wantErr: "invalid_grant", wantCalls: 1},
		{name: "empty verifier is refused before any request", verifier: func(Start) string { return "" }, wantErr: "verifier is empty", wantCalls: 0},
		{name: "code replay", verifier: func(s Start) string { return s.Verifier }, replay: true, wantErr: "invalid_grant", wantCalls: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []upstreamtest.Option
			if tc.formEncoded {
				opts = append(opts, upstreamtest.WithFormEncodedTokens())
			}
			f := newFakeAS(t, opts...)
			clock := clocktest.New(clocktest.Start)
			u := newFakeUpstream(t, f, clock)
			s := u.Start()
			cb := followAuthorize(t, s.AuthURL)
			tok, err := u.Exchange(t.Context(), cb.Get("code"), tc.verifier(s))
			if tc.replay {
				require.NoError(t, err)
				tok, err = u.Exchange(t.Context(), cb.Get("code"), tc.verifier(s))
			}
			assert.Equal(t, tc.wantCalls, f.CountTokenCalls("authorization_code"), "token requests")
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				assert.Equal(t, Token{}, tok)
				assert.NotErrorIs(t, err, ErrReauthorize, "a bad code is not a dead grant")
				return
			}
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(tok.AccessToken.Reveal(), upstreamtest.AccessPrefix))
			assert.True(t, strings.HasPrefix(tok.RefreshToken.Reveal(), upstreamtest.RefreshPrefix))
			assert.Equal(t, "Bearer", tok.TokenType)
			assert.Equal(t, clock.Now().Add(time.Hour), tok.Expiry, "expiry from expires_in on our clock")
		})
	}
}

// oauth2Verifier is a well-formed verifier that matches no challenge.
func oauth2Verifier() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b) + "0123456789"
}

// TestUpstreamExchangeTokenError checks the typed error: status and code
// only, never the upstream body.
func TestUpstreamExchangeTokenError(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t)
	u := newFakeUpstream(t, f, clocktest.New(clocktest.Start))
	_, err := u.Exchange(t.Context(), "code-unknown", oauth2Verifier())
	var te *TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, TokenError{Provider: "example", Op: "exchange", Status: http.StatusBadRequest, Code: "invalid_grant"}, *te)
	assert.NotContains(t, err.Error(), "code-unknown")
	assert.NotContains(t, err.Error(), "rejected")
}

// refreshRecorder is a commit func that records what it stored.
type refreshRecorder struct {
	mu      sync.Mutex
	stored  []Token
	failN   int // fail this many calls first
	ctxErrs []error
}

var errCommit = errors.New("store is full")

func (r *refreshRecorder) commit(ctx context.Context, t Token) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctxErrs = append(r.ctxErrs, ctx.Err())
	if r.failN > 0 {
		r.failN--
		return errCommit
	}
	r.stored = append(r.stored, t)
	return nil
}

func (r *refreshRecorder) committed() []Token {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Token(nil), r.stored...)
}

type refreshResult struct {
	tok Token
	err error
}

// TestUpstreamRefreshSingleFlight is F6 / TH-37: the fake rotates refresh
// tokens and revokes the family on reuse; 20 concurrent refreshes of one
// connection send one refresh request, all get the same new pair, commit
// runs once, and the stored refresh token is the newest.
func TestUpstreamRefreshSingleFlight(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t)
	u := newFakeUpstream(t, f, clocktest.New(clocktest.Start))
	old := signIn(t, u)
	release := f.HoldRefresh()
	rec := &refreshRecorder{}

	const n = 20
	results := make([]refreshResult, n)
	var done sync.WaitGroup
	call := func(i int) {
		defer done.Done()
		tok, err := u.Refresh(t.Context(), "conn-1", old, rec.commit)
		results[i] = refreshResult{tok, err}
	}
	done.Add(n)
	go call(0)
	<-f.Held() // the shared request is at the upstream, held there
	var started sync.WaitGroup
	started.Add(n - 1)
	for i := 1; i < n; i++ {
		go func() {
			started.Done()
			call(i)
		}()
	}
	started.Wait()
	release()
	done.Wait()

	assert.Equal(t, 1, f.CountTokenCalls("refresh_token"), "exactly one refresh request")
	stored := rec.committed()
	require.Len(t, stored, 1, "commit runs once")
	for i, r := range results {
		require.NoError(t, r.err, "caller %d", i)
		assert.Equal(t, stored[0], r.tok, "caller %d gets the committed pair", i)
	}
	assert.NotEqual(t, old.RefreshToken, stored[0].RefreshToken)
	fam := f.Family(stored[0].RefreshToken.Reveal())
	assert.False(t, fam.Revoked, "the upstream never saw a reuse")
	assert.Equal(t, fam.Current, stored[0].RefreshToken.Reveal(), "the stored refresh token is the newest")
}

// TestUpstreamRefreshSpentToken covers TH-37 for callers that loaded the
// pair just before a rotation was committed: presenting the spent refresh
// token again returns the committed pair without a second request.
func TestUpstreamRefreshSpentToken(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t)
	clock := clocktest.New(clocktest.Start)
	u := newFakeUpstream(t, f, clock)
	old := signIn(t, u)
	rec := &refreshRecorder{}

	first, err := u.Refresh(t.Context(), "conn-1", old, rec.commit)
	require.NoError(t, err)
	late, err := u.Refresh(t.Context(), "conn-1", old, rec.commit)
	require.NoError(t, err)
	assert.Equal(t, first, late)
	assert.Equal(t, 1, f.CountTokenCalls("refresh_token"))
	assert.Len(t, rec.committed(), 1)

	// Memory is per connection: conn-2 presenting the same spent token is
	// plain reuse, and the fake revokes the family.
	_, err = u.Refresh(t.Context(), "conn-2", old, rec.commit)
	require.ErrorIs(t, err, ErrReauthorize)
}

// TestUpstreamRefreshChains covers a stale caller whose remembered pair
// has expired too: the refresh starts from the newest refresh token we
// hold, committed or not, never from the spent one (TH-37).
func TestUpstreamRefreshChains(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		expiresIn int
		failFirst bool
		advance   time.Duration
	}{
		{name: "committed pair expired", expiresIn: 60, advance: 2 * time.Minute},
		{name: "uncommitted pair expired", expiresIn: 3600, failFirst: true, advance: 2 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAS(t, upstreamtest.WithExpiresIn(tc.expiresIn))
			clock := clocktest.New(clocktest.Start)
			u := newFakeUpstream(t, f, clock)
			old := signIn(t, u)
			rec := &refreshRecorder{}
			if tc.failFirst {
				rec.failN = 1
			}
			first, err := u.Refresh(t.Context(), "conn-1", old, rec.commit)
			if tc.failFirst {
				require.ErrorIs(t, err, errCommit)
			} else {
				require.NoError(t, err)
			}

			clock.Advance(tc.advance)
			chained, err := u.Refresh(t.Context(), "conn-1", old, rec.commit)
			require.NoError(t, err)
			assert.NotEqual(t, first, chained)
			assert.Equal(t, 2, f.CountTokenCalls("refresh_token"))
			stored := rec.committed()
			require.NotEmpty(t, stored)
			assert.Equal(t, chained, stored[len(stored)-1])
			fam := f.Family(chained.RefreshToken.Reveal())
			assert.False(t, fam.Revoked, "the spent token was never presented again")
			assert.Equal(t, fam.Current, chained.RefreshToken.Reveal())
		})
	}
}

// TestUpstreamRefreshCommitFails covers TH-37's "commit before discard":
// a failed commit fails the refresh and hands out no token; the next
// attempt commits the pair already bought instead of presenting the spent
// refresh token.
func TestUpstreamRefreshCommitFails(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t)
	u := newFakeUpstream(t, f, clocktest.New(clocktest.Start))
	old := signIn(t, u)
	rec := &refreshRecorder{failN: 1}

	tok, err := u.Refresh(t.Context(), "conn-1", old, rec.commit)
	require.ErrorIs(t, err, errCommit)
	assert.NotErrorIs(t, err, ErrReauthorize)
	assert.Equal(t, Token{}, tok)
	assert.Empty(t, rec.committed())

	tok, err = u.Refresh(t.Context(), "conn-1", old, rec.commit)
	require.NoError(t, err)
	assert.Equal(t, []Token{tok}, rec.committed())
	assert.Equal(t, 1, f.CountTokenCalls("refresh_token"), "the retry did not present the spent token")
	fam := f.Family(tok.RefreshToken.Reveal())
	assert.False(t, fam.Revoked)
	assert.Equal(t, fam.Current, tok.RefreshToken.Reveal())
}

// TestUpstreamRefreshErrors covers the classification: a dead grant wraps
// ErrReauthorize (the connection becomes reconnect_required), anything
// else is temporary.
func TestUpstreamRefreshErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		code       string
		noRefresh  bool
		wantReauth bool
		wantStatus int
	}{
		{name: "invalid_grant", status: http.StatusBadRequest, code: "invalid_grant", wantReauth: true, wantStatus: 400},
		{name: "401", status: http.StatusUnauthorized, code: "invalid_client", wantReauth: true, wantStatus: 401},
		{name: "server error is temporary", status: http.StatusInternalServerError, code: "server_error", wantStatus: 500},
		{name: "rate limit is temporary", status: http.StatusTooManyRequests, code: "slow_down", wantStatus: 429},
		{name: "malformed code is dropped", status: http.StatusBadRequest, code: "bad\"code\n", wantStatus: 400},
		{name: "no refresh token", noRefresh: true, wantReauth: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAS(t)
			u := newFakeUpstream(t, f, clocktest.New(clocktest.Start))
			old := signIn(t, u)
			f.FailRefresh(tc.status, tc.code)
			if tc.noRefresh {
				old.RefreshToken = ""
			}
			rec := &refreshRecorder{}
			tok, err := u.Refresh(t.Context(), "conn-1", old, rec.commit)
			require.Error(t, err)
			assert.Equal(t, Token{}, tok)
			assert.Empty(t, rec.committed())
			assert.Equal(t, tc.wantReauth, errors.Is(err, ErrReauthorize))
			if tc.wantStatus != 0 {
				var te *TokenError
				require.ErrorAs(t, err, &te)
				assert.Equal(t, tc.wantStatus, te.Status)
				assert.Equal(t, 1, f.CountTokenCalls("refresh_token"), "one request, no auth-style retry")
				if !strings.ContainsAny(tc.code, "\"\n") {
					assert.Equal(t, tc.code, te.Code)
				} else {
					assert.Empty(t, te.Code)
				}
			} else {
				assert.Equal(t, 0, f.CountTokenCalls("refresh_token"))
			}
		})
	}
}

// TestUpstreamRefreshReuseRevokesFamily shows what single-flight prevents:
// two clients that do not share it present one refresh token twice, the
// upstream revokes the family, and the second gets ErrReauthorize.
func TestUpstreamRefreshReuseRevokesFamily(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t)
	clock := clocktest.New(clocktest.Start)
	u := newFakeUpstream(t, f, clock)
	other := newFakeUpstream(t, f, clock)
	old := signIn(t, u)
	rec := &refreshRecorder{}
	tok, err := u.Refresh(t.Context(), "conn-1", old, rec.commit)
	require.NoError(t, err)
	_, err = other.Refresh(t.Context(), "conn-1", old, rec.commit)
	require.ErrorIs(t, err, ErrReauthorize)
	assert.True(t, f.Family(tok.RefreshToken.Reveal()).Revoked)
}

// TestUpstreamRefreshKeepsRefreshToken: a response without a refresh
// token keeps the old one.
func TestUpstreamRefreshKeepsRefreshToken(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t, upstreamtest.WithoutNewRefreshToken())
	clock := clocktest.New(clocktest.Start)
	u := newFakeUpstream(t, f, clock)
	old := signIn(t, u)
	clock.Advance(30 * time.Minute)
	rec := &refreshRecorder{}
	tok, err := u.Refresh(t.Context(), "conn-1", old, rec.commit)
	require.NoError(t, err)
	assert.Equal(t, old.RefreshToken, tok.RefreshToken)
	assert.NotEqual(t, old.AccessToken, tok.AccessToken)
	assert.Equal(t, clock.Now().Add(time.Hour), tok.Expiry)
	assert.Equal(t, []Token{tok}, rec.committed())
}

// TestUpstreamRefreshCallerCancel covers TH-37 and TH-54: the first
// caller leaving does not cancel the shared request; it returns on its
// own ctx at once, a second caller still gets the committed pair, and no
// goroutine is left behind. Not parallel: goleak looks at the process.
func TestUpstreamRefreshCallerCancel(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	f := newFakeAS(t)
	tr := &http.Transport{}
	u := newFakeUpstream(t, f, clocktest.New(clocktest.Start), func(o *Options) { o.HTTPClient = &http.Client{Transport: tr} })
	old := signIn(t, u)
	release := f.HoldRefresh()
	rec := &refreshRecorder{}

	ctxA, cancelA := context.WithCancel(t.Context())
	aDone := make(chan refreshResult, 1)
	go func() {
		tok, err := u.Refresh(ctxA, "conn-1", old, rec.commit)
		aDone <- refreshResult{tok, err}
	}()
	<-f.Held()
	bDone := make(chan refreshResult, 1)
	go func() {
		tok, err := u.Refresh(t.Context(), "conn-1", old, rec.commit)
		bDone <- refreshResult{tok, err}
	}()
	cancelA()
	select {
	case a := <-aDone:
		require.ErrorIs(t, a.err, context.Canceled)
		assert.Equal(t, Token{}, a.tok)
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled caller did not return while the refresh was held")
	}
	release()
	b := <-bDone
	require.NoError(t, b.err)
	assert.Equal(t, []Token{b.tok}, rec.committed())
	assert.Equal(t, []error{nil}, rec.ctxErrs, "commit ran with a live context")
	assert.Equal(t, 1, f.CountTokenCalls("refresh_token"))

	tr.CloseIdleConnections()
	f.Close()
	goleak.VerifyNone(t, ignore)
}

// TestUpstreamRefreshTimeout: a hung token endpoint is bounded by
// RefreshTimeout, not by the callers' contexts.
func TestUpstreamRefreshTimeout(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t)
	u := newFakeUpstream(t, f, clocktest.New(clocktest.Start), func(o *Options) { o.RefreshTimeout = 50 * time.Millisecond })
	old := signIn(t, u)
	t.Cleanup(f.HoldRefresh())
	rec := &refreshRecorder{}
	_, err := u.Refresh(t.Context(), "conn-1", old, rec.commit)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, ErrReauthorize)
	assert.Empty(t, rec.committed())
}

// newGoOAuth2Server starts github.com/go-oauth2/oauth2/v4, an OAuth 2
// server we did not write, with PKCE S256 forced and an authorize handler
// that approves user-42 at once. /me answers the user id for a valid
// bearer token.
func newGoOAuth2Server(t *testing.T, clientAuthInParams bool) *httptest.Server {
	t.Helper()
	manager := manage.NewDefaultManager()
	manager.MustTokenStorage(oauthstore.NewMemoryTokenStore())
	clients := oauthstore.NewClientStore()
	require.NoError(t, clients.Set(fakeClientID, &models.Client{ID: fakeClientID, Secret: fakeClientSecret, Domain: "https://unfurld.test"}))
	manager.MapClientStorage(clients)

	cfg := server.NewConfig()
	cfg.ForcePKCE = true
	cfg.AllowedCodeChallengeMethods = cfg.AllowedCodeChallengeMethods[:0]
	cfg.AllowedCodeChallengeMethods = append(cfg.AllowedCodeChallengeMethods, "S256")
	srv := server.NewServer(cfg, manager)
	if clientAuthInParams {
		srv.ClientInfoHandler = server.ClientFormHandler
	}
	srv.UserAuthorizationHandler = func(http.ResponseWriter, *http.Request) (string, error) { return "user-42", nil }

	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", func(w http.ResponseWriter, r *http.Request) {
		if err := srv.HandleAuthorizeRequest(w, r); err != nil {
			http.Error(w, "authorize refused", http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		_ = srv.HandleTokenRequest(w, r)
	})
	mux.HandleFunc("/me", func(w http.ResponseWriter, r *http.Request) {
		ti, err := srv.ValidationBearerToken(r)
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(ti.GetUserID()))
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs
}

// whoAmI calls /me with tok the way engine/upstream will: "<type> <token>".
func whoAmI(t *testing.T, base string, tok Token) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/me", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", tok.TokenType+" "+tok.AccessToken.Reveal())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestUpstreamAgainstGoOAuth2Server runs the same client code against a
// real OAuth 2 server implementation (go-oauth2/oauth2 v4) with PKCE S256
// forced: Start -> authorize -> Exchange -> Refresh, a wrong verifier
// refused, a spent refresh token refused as ErrReauthorize, and the
// tokens accepted or rejected by its bearer check. Both client auth
// styles (TH-06, TH-08, TH-37, A5).
func TestUpstreamAgainstGoOAuth2Server(t *testing.T) {
	t.Parallel()
	for _, inParams := range []bool{false, true} {
		t.Run(fmt.Sprintf("client auth in params %v", inParams), func(t *testing.T) {
			t.Parallel()
			hs := newGoOAuth2Server(t, inParams)
			clock := clocktest.New(clocktest.Start)
			opts := Options{
				Provider: "example",
				OAuth2: config.OAuth2{
					AuthorizeURL: hs.URL + "/authorize",
					TokenURL:     hs.URL + "/token",
					ClientID:     fakeClientID,
					ClientSecret: config.Secret(fakeClientSecret),
					Scopes:       []string{"read"},
				},
				RedirectURL:        fakeRedirect,
				HTTPClient:         hs.Client(),
				ClientAuthInParams: inParams,
				Now:                clock.Now,
			}
			u, err := New(opts)
			require.NoError(t, err)

			// A wrong verifier is refused by their PKCE check.
			s := u.Start()
			cb := followAuthorize(t, s.AuthURL)
			require.Equal(t, s.State, cb.Get("state"))
			_, err = u.Exchange(t.Context(), cb.Get("code"), oauth2Verifier())
			var te *TokenError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, "invalid_grant", te.Code)

			// Without PKCE their forced-PKCE authorize refuses us outright.
			plain := opts
			plain.OAuth2.DisablePKCE = true
			pu, err := New(plain)
			require.NoError(t, err)
			assert.Equal(t, http.StatusBadRequest, authorizeStatus(t, pu.Start().AuthURL))

			// The full flow.
			tok := signIn(t, u)
			assert.Equal(t, "Bearer", tok.TokenType)
			assert.Equal(t, clock.Now().Add(2*time.Hour), tok.Expiry)
			require.False(t, tok.RefreshToken.IsZero())
			code, who := whoAmI(t, hs.URL, tok)
			assert.Equal(t, http.StatusOK, code)
			assert.Equal(t, "user-42", who)

			rec := &refreshRecorder{}
			fresh, err := u.Refresh(t.Context(), "conn-1", tok, rec.commit)
			require.NoError(t, err)
			assert.Equal(t, []Token{fresh}, rec.committed())
			assert.NotEqual(t, tok.AccessToken, fresh.AccessToken)
			assert.NotEqual(t, tok.RefreshToken, fresh.RefreshToken, "go-oauth2 rotates refresh tokens")
			code, who = whoAmI(t, hs.URL, fresh)
			assert.Equal(t, http.StatusOK, code)
			assert.Equal(t, "user-42", who)
			code, _ = whoAmI(t, hs.URL, tok)
			assert.Equal(t, http.StatusUnauthorized, code, "the old access token was revoked by the refresh")

			// Another client without our memory presents the spent token.
			other, err := New(opts)
			require.NoError(t, err)
			_, err = other.Refresh(t.Context(), "conn-1", tok, rec.commit)
			require.ErrorIs(t, err, ErrReauthorize)
			require.ErrorAs(t, err, &te)
			assert.Equal(t, "invalid_grant", te.Code)

			// The new pair refreshes again.
			again, err := u.Refresh(t.Context(), "conn-1", fresh, rec.commit)
			require.NoError(t, err)
			assert.NotEqual(t, fresh.RefreshToken, again.RefreshToken)
		})
	}
}

// TestUpstreamNoSecretsInOutput covers TH-49: client secret, tokens,
// codes, state and verifier appear in no error, formatted value, log
// line or JSON of our types, even when the upstream echoes them.
func TestUpstreamNoSecretsInOutput(t *testing.T) {
	t.Parallel()
	f := newFakeAS(t)
	u := newFakeUpstream(t, f, clocktest.New(clocktest.Start))
	s := u.Start()
	cb := followAuthorize(t, s.AuthURL)
	tok, err := u.Exchange(t.Context(), cb.Get("code"), s.Verifier)
	require.NoError(t, err)
	secrets := []string{fakeClientSecret, tok.AccessToken.Reveal(), tok.RefreshToken.Reveal(), cb.Get("code"), s.State, s.Verifier}

	var out bytes.Buffer
	// The fake echoes the code and verifier, then the refresh token, in
	// its error descriptions.
	_, err = u.Exchange(t.Context(), cb.Get("code"), s.Verifier)
	require.Error(t, err)
	fmt.Fprintln(&out, err, fmt.Sprintf("%+v %#v", err, err))
	f.FailRefresh(http.StatusBadRequest, "invalid_grant")
	_, err = u.Refresh(t.Context(), "conn-1", tok, (&refreshRecorder{}).commit)
	require.ErrorIs(t, err, ErrReauthorize)
	fmt.Fprintln(&out, err, fmt.Sprintf("%+v %#v", err, err))
	f.FailRefresh(http.StatusBadGateway, "")
	_, err = u.Refresh(t.Context(), "conn-2", tok, (&refreshRecorder{}).commit)
	require.Error(t, err)
	fmt.Fprintln(&out, err)

	_, err = New(Options{Provider: "x", OAuth2: config.OAuth2{ClientSecret: config.Secret(fakeClientSecret)}})
	require.Error(t, err)
	fmt.Fprintln(&out, err)

	for _, v := range []any{tok, &tok, s, &s, u} {
		fmt.Fprintf(&out, "%v %+v %#v %s %q\n", v, v, v, v, v)
		b, err := json.Marshal(v)
		require.NoError(t, err)
		out.Write(b)
	}
	logger := slog.New(slog.NewJSONHandler(&out, nil))
	logger.Info("values", "token", tok, "start", s, "upstream", u)
	slog.New(slog.NewTextHandler(&out, nil)).Info("values", "token", tok, "start", s, "upstream", u)

	require.NotEmpty(t, out.String())
	for _, secret := range secrets {
		require.NotEmpty(t, secret)
		assert.NotContains(t, out.String(), secret)
	}
}

// TestNewUpstreamRefuses checks the options: the guarded client is
// required, reserved parameters cannot be overridden (state, PKCE), and
// the redirect URI is the provider's own (TH-07).
func TestNewUpstreamRefuses(t *testing.T) {
	t.Parallel()
	good := Options{
		Provider: "example",
		OAuth2: config.OAuth2{
			AuthorizeURL: "https://up.test/authorize",
			TokenURL:     "https://up.test/token",
			ClientID:     "id",
		},
		RedirectURL: fakeRedirect,
		HTTPClient:  http.DefaultClient,
	}
	_, err := New(good)
	require.NoError(t, err)
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no http client", func(o *Options) { o.HTTPClient = nil }, "http client is required"},
		{"no provider", func(o *Options) { o.Provider = "" }, "provider is empty"},
		{"no client id", func(o *Options) { o.OAuth2.ClientID = "" }, "client_id is empty"},
		{"relative authorize url", func(o *Options) { o.OAuth2.AuthorizeURL = "/authorize" }, "authorize_url must be an absolute"},
		{"no token url", func(o *Options) { o.OAuth2.TokenURL = "" }, "token_url is empty"},
		{"other provider's callback", func(o *Options) {
			o.RedirectURL = "https://unfurld.test/providers/other/callback"
		}, "must end in /providers/example/callback"},
		{"redirect with query", func(o *Options) { o.RedirectURL = fakeRedirect + "?x=1" }, "must end in"},
		{"extra param overrides state", func(o *Options) { o.OAuth2.ExtraParams = map[string]string{"state": "fixed"} }, `extra param "state"`},
		{"extra param overrides pkce", func(o *Options) {
			o.OAuth2.ExtraParams = map[string]string{"Code_Challenge_Method": "plain"}
		}, `extra param "Code_Challenge_Method"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := good
			tc.edit(&o)
			_, err := New(o)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestUpstreamTokenEncode checks the sealed form round-trips the real
// values and refuses what it did not write.
func TestUpstreamTokenEncode(t *testing.T) {
	t.Parallel()
	exp := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
	full := Token{AccessToken: "at-1", RefreshToken: "rt-1", TokenType: "Bearer", Expiry: exp}
	b, err := full.Encode()
	require.NoError(t, err)
	assert.JSONEq(t, `{"v":1,"access_token":"at-1","refresh_token":"rt-1","token_type":"Bearer","expiry":"2026-03-01T13:00:00Z"}`, string(b))
	got, err := DecodeToken(b)
	require.NoError(t, err)
	assert.Equal(t, full, got)

	bare := Token{AccessToken: "at-2", TokenType: "Bearer"}
	b, err = bare.Encode()
	require.NoError(t, err)
	assert.JSONEq(t, `{"v":1,"access_token":"at-2","token_type":"Bearer"}`, string(b))
	got, err = DecodeToken(b)
	require.NoError(t, err)
	assert.Equal(t, bare, got)

	_, err = Token{}.Encode()
	require.Error(t, err)

	bad := []struct{ name, in, want string }{
		{"not json", `at-secret`, "decode upstream token"},
		{"unknown version", `{"v":2,"access_token":"a"}`, "unknown version 2"},
		{"unknown field", `{"v":1,"access_token":"a","x":1}`, "unknown field"},
		{"empty access token", `{"v":1,"access_token":""}`, "access token is empty"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeToken([]byte(tc.in))
			require.ErrorContains(t, err, tc.want)
			assert.NotContains(t, err.Error(), "at-secret")
		})
	}
}

// TestUpstreamTokenExpired checks the boundary and the skew.
func TestUpstreamTokenExpired(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		tok  Token
		skew time.Duration
		want bool
	}{
		{"no expiry", Token{AccessToken: "a"}, time.Minute, false},
		{"well before", Token{AccessToken: "a", Expiry: now.Add(time.Hour)}, time.Minute, false},
		{"inside skew", Token{AccessToken: "a", Expiry: now.Add(30 * time.Second)}, time.Minute, true},
		{"exactly at expiry", Token{AccessToken: "a", Expiry: now}, 0, true},
		{"one ns before", Token{AccessToken: "a", Expiry: now.Add(time.Nanosecond)}, 0, false},
		{"no access token", Token{}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, tc.tok.Expired(now, tc.skew))
		})
	}
}
