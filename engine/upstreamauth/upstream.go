package upstreamauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/unfurld/unfurld/engine/config"
)

// ErrReauthorize means the upstream refused the stored grant (invalid_grant,
// or 401 from its token endpoint): refreshing again cannot help, and the
// caller marks the connection reconnect_required. It is only ever wrapped.
var ErrReauthorize = errors.New("upstream grant is no longer valid, the user must reconnect")

// Defaults and limits of the upstream flow.
const (
	// DefaultRefreshTimeout bounds one shared refresh, commit included.
	DefaultRefreshTimeout = 30 * time.Second
	// stateBytes is the entropy of the upstream state: 256 bits, well above
	// TH-06's 128.
	stateBytes = 32
	// rememberFor is how long Refresh remembers which refresh token a
	// connection spent, so a caller that loaded the pair just before the
	// rotation was committed does not present the spent token (TH-37).
	rememberFor = 10 * time.Minute
	// rememberUncommittedFor keeps a pair whose commit failed for longer:
	// it is the only copy of a live grant, and the store may be down for a
	// while (F11).
	rememberUncommittedFor = 24 * time.Hour
	// maxErrorCode caps the RFC 6749 5.2 error code we keep from an
	// upstream refusal.
	maxErrorCode = 64
)

// token request kinds, used in errors.
const (
	opExchange = "exchange"
	opRefresh  = "refresh"
)

// reservedParams are authorize-URL parameters the flow sets itself. An
// ExtraParams entry with one of these names would overwrite it (x/oauth2
// applies options after the base values), e.g. replace our random state
// or drop the PKCE challenge, so New refuses them.
var reservedParams = []string{
	"response_type", "client_id", "client_secret", "redirect_uri", "scope",
	"state", "code_challenge", "code_challenge_method", "code_verifier",
}

// Options configures New.
type Options struct {
	// Provider names the provider, for errors and the redirect check.
	Provider string
	// OAuth2 is the provider's upstream OAuth 2 configuration.
	OAuth2 config.OAuth2
	// RedirectURL is <public_url>/providers/<name>/callback, distinct per
	// provider so a flow cannot finish on another provider's callback
	// (TH-07) and never built from a request's Host (TH-13).
	RedirectURL string
	// HTTPClient is the guarded client for calls to the token endpoint
	// (timeouts, SSRF guard). Required.
	HTTPClient *http.Client
	// ClientAuthInParams sends client_id and client_secret in the token
	// request body instead of HTTP Basic (RFC 6749 2.3.1). x/oauth2's
	// auto-detection is deliberately not used: after any failed request it
	// resends the same code or refresh token in the other style, which an
	// upstream that rotates refresh tokens sees as reuse (TH-08, TH-37).
	ClientAuthInParams bool
	// RefreshTimeout bounds one shared refresh including commit. Default
	// DefaultRefreshTimeout.
	RefreshTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Client is the client side of one provider's upstream OAuth 2
// authorization-code flow: it builds authorize URLs, redeems codes and
// refreshes tokens through golang.org/x/oauth2. It is safe for concurrent
// use and holds no HTTP framing.
type Client struct {
	provider       string
	cfg            *oauth2.Config
	pkce           bool
	extra          []oauth2.AuthCodeOption
	client         *http.Client
	now            func() time.Time
	refreshTimeout time.Duration
	flight         *singleflight.Group
	spent          *spentTokens
	revocation     config.Revocation
	paramsAuth     bool
	revokeDelay    time.Duration
}

// New checks opts and returns the flow client for one provider.
func New(opts Options) (*Client, error) {
	o := opts.OAuth2
	var problems []string
	if opts.Provider == "" {
		problems = append(problems, "provider is empty")
	}
	if opts.HTTPClient == nil {
		problems = append(problems, "http client is required")
	}
	if o.ClientID == "" {
		problems = append(problems, "client_id is empty")
	}
	if err := checkAbsURL(o.AuthorizeURL); err != nil {
		problems = append(problems, "authorize_url "+err.Error())
	}
	if err := checkAbsURL(o.TokenURL); err != nil {
		problems = append(problems, "token_url "+err.Error())
	}
	if o.Revocation.URL != "" {
		if err := checkAbsURL(o.Revocation.URL); err != nil {
			problems = append(problems, "revocation url "+err.Error())
		}
		if o.Revocation.Style != config.RevocationRFC7009 && o.Revocation.Style != config.RevocationGitHubGrant {
			problems = append(problems, fmt.Sprintf("revocation style %q is unknown", o.Revocation.Style))
		}
	}
	if err := checkRedirect(opts.RedirectURL, opts.Provider); err != nil {
		problems = append(problems, "redirect url "+err.Error())
	}
	names := make([]string, 0, len(o.ExtraParams))
	for k := range o.ExtraParams {
		if slices.Contains(reservedParams, strings.ToLower(k)) {
			problems = append(problems, fmt.Sprintf("extra param %q is set by the flow itself", k))
		}
		names = append(names, k)
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, fmt.Errorf("upstream oauth2 for %q: %s", opts.Provider, strings.Join(problems, "; "))
	}
	// Sorted so the authorize URL is the same for the same config.
	slices.Sort(names)
	extra := make([]oauth2.AuthCodeOption, 0, len(names))
	for _, k := range names {
		extra = append(extra, oauth2.SetAuthURLParam(k, o.ExtraParams[k]))
	}

	style := oauth2.AuthStyleInHeader
	if opts.ClientAuthInParams {
		style = oauth2.AuthStyleInParams
	}
	u := &Client{
		provider: opts.Provider,
		cfg: &oauth2.Config{
			ClientID:     o.ClientID,
			ClientSecret: o.ClientSecret.Reveal(),
			Endpoint: oauth2.Endpoint{
				AuthURL:   o.AuthorizeURL,
				TokenURL:  o.TokenURL,
				AuthStyle: style,
			},
			RedirectURL: opts.RedirectURL,
			Scopes:      slices.Clone(o.Scopes),
		},
		pkce:           !o.DisablePKCE,
		extra:          extra,
		client:         opts.HTTPClient,
		now:            opts.Now,
		refreshTimeout: opts.RefreshTimeout,
		flight:         &singleflight.Group{},
		spent:          &spentTokens{byConn: map[string]spentToken{}},
		revocation:     revocationFor(o),
		paramsAuth:     opts.ClientAuthInParams,
		revokeDelay:    revokeRetryDelay,
	}
	if u.now == nil {
		u.now = time.Now
	}
	if u.refreshTimeout <= 0 {
		u.refreshTimeout = DefaultRefreshTimeout
	}
	return u, nil
}

// revocationFor fills in the client id where the revocation URL names it
// (GitHub's /applications/{client_id}/grant).
func revocationFor(o config.OAuth2) config.Revocation {
	r := o.Revocation
	r.URL = strings.ReplaceAll(r.URL, "{client_id}", url.PathEscape(o.ClientID))
	return r
}

// checkAbsURL accepts an absolute http(s) URL without a fragment.
func checkAbsURL(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	p, err := url.Parse(s)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return errors.New("must be an absolute http(s) URL")
	}
	if p.Fragment != "" {
		return errors.New("must not have a fragment")
	}
	return nil
}

// checkRedirect insists on the provider's own callback path, so two
// providers can never share a redirect URI (TH-07).
func checkRedirect(s, provider string) error {
	if err := checkAbsURL(s); err != nil {
		return err
	}
	p, _ := url.Parse(s)
	if p.RawQuery != "" || !strings.HasSuffix(p.Path, "/providers/"+provider+"/callback") {
		return fmt.Errorf("must end in /providers/%s/callback", provider)
	}
	return nil
}

// Provider returns the provider name this client serves.
func (u *Client) Provider() string { return u.provider }

// String names the provider only; the client secret never prints.
func (u *Client) String() string { return "upstreamauth.Client{" + u.provider + "}" }

// GoString is String, for %#v.
func (u *Client) GoString() string { return u.String() }

// Format prints String for every verb, so no verb reaches the fields.
func (u *Client) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(u.String())) }

// LogValue logs the provider only.
func (u *Client) LogValue() slog.Value { return slog.StringValue(u.String()) }

// Start is the beginning of one sign-in at the upstream.
type Start struct {
	// AuthURL is where the browser is sent (303).
	AuthURL string
	// State is the one-time upstream state. The caller stores its digest
	// (issuer.Digest) in the pending flow and compares it before the code
	// is redeemed (TH-06, A10).
	State string
	// Verifier is the PKCE code verifier, sealed into the pending flow and
	// passed to Exchange. Empty when PKCE is disabled.
	Verifier string
}

// redactedStart is what a formatted Start prints.
const redactedStart = "upstreamauth.Start{AuthURL:<redacted> State:<redacted> Verifier:<redacted>}"

// String hides the state and verifier, and the URL that carries the state.
func (s Start) String() string { return redactedStart }

// GoString is String, for %#v.
func (s Start) GoString() string { return redactedStart }

// Format prints String for every verb.
func (s Start) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redactedStart)) }

// LogValue logs nothing secret.
func (s Start) LogValue() slog.Value { return slog.StringValue(redactedStart) }

// MarshalJSON keeps a Start out of JSON by accident; store issuer.Digest(State)
// and the sealed Verifier instead.
func (s Start) MarshalJSON() ([]byte, error) { return json.Marshal(redactedStart) }

// Start begins a sign-in: a fresh random state (32 bytes, base64url) and
// PKCE verifier (RFC 7636 4.1, security.md A5), and the authorize URL with
// client_id, redirect_uri, scope, state, code_challenge (S256) and the
// configured extra params.
func (u *Client) Start() Start {
	b := make([]byte, stateBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	s := Start{State: base64.RawURLEncoding.EncodeToString(b)}
	opts := slices.Clone(u.extra)
	if u.pkce {
		s.Verifier = oauth2.GenerateVerifier()
		opts = append(opts, oauth2.S256ChallengeOption(s.Verifier))
	}
	s.AuthURL = u.cfg.AuthCodeURL(s.State, opts...)
	return s
}

// clientContext hands the guarded client to x/oauth2, which otherwise
// falls back to http.DefaultClient.
func (u *Client) clientContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, u.client)
}

// Exchange redeems the upstream code with the PKCE verifier. The caller
// has already checked the state against its pending flow: state first,
// code second (TH-06; security.md A10's "one thing not to copy"). One call
// sends exactly one token request (TH-08).
func (u *Client) Exchange(ctx context.Context, code, verifier string) (Token, error) {
	if code == "" {
		return Token{}, fmt.Errorf("exchange upstream code for %s: code is empty", u.provider)
	}
	var opts []oauth2.AuthCodeOption
	if u.pkce {
		if verifier == "" {
			return Token{}, fmt.Errorf("exchange upstream code for %s: pkce verifier is empty", u.provider)
		}
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	t, err := u.cfg.Exchange(u.clientContext(ctx), code, opts...)
	if err != nil {
		return Token{}, u.tokenError(opExchange, err)
	}
	return u.fromOAuth2(t), nil
}

// fromOAuth2 converts a token response. The expiry is recomputed from
// expires_in with our clock, since x/oauth2 uses the wall clock.
func (u *Client) fromOAuth2(t *oauth2.Token) Token {
	ut := Token{
		AccessToken:  config.Secret(t.AccessToken),
		RefreshToken: config.Secret(t.RefreshToken),
		TokenType:    t.Type(),
		Expiry:       t.Expiry,
	}
	secs := t.ExpiresIn
	if secs == 0 {
		// Form-encoded responses (GitHub's default) leave ExpiresIn unset;
		// Extra parses the form value.
		switch v := t.Extra("expires_in").(type) {
		case int64:
			secs = v
		case float64:
			secs = int64(v)
		case string:
			secs, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if secs > 0 {
		ut.Expiry = u.now().Add(time.Duration(secs) * time.Second).UTC()
	}
	return ut
}

// TokenError is a refusal from the upstream token endpoint. It keeps only
// the HTTP status and the RFC 6749 5.2 error code: the body and
// error_description are upstream text that may echo what we sent, so they
// are dropped (TH-49, TH-36).
type TokenError struct {
	// Provider names the provider.
	Provider string
	// Op is "exchange" or "refresh".
	Op string
	// Status is the HTTP status of the answer.
	Status int
	// Code is the RFC 6749 5.2 error code, empty when absent or malformed.
	Code string
}

// Error names the operation, status and code.
func (e *TokenError) Error() string {
	return fmt.Sprintf("%s upstream token for %s: status %d, error %q", e.Op, e.Provider, e.Status, e.Code)
}

// Unwrap is ErrReauthorize when a refresh was refused for good:
// invalid_grant, or 401 from the token endpoint.
func (e *TokenError) Unwrap() error {
	if e.Op == opRefresh && (e.Code == "invalid_grant" || e.Status == http.StatusUnauthorized) {
		return ErrReauthorize
	}
	return nil
}

// tokenError turns x/oauth2's error into ours. *oauth2.RetrieveError is
// deliberately not wrapped: its Error text includes the upstream body.
func (u *Client) tokenError(op string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		te := &TokenError{Provider: u.provider, Op: op, Code: cleanErrorCode(re.ErrorCode)}
		if re.Response != nil {
			te.Status = re.Response.StatusCode
		}
		return te
	}
	return fmt.Errorf("%s upstream token for %s: %w", op, u.provider, err)
}

// cleanErrorCode keeps an error code only if it is short and in RFC 6749
// 5.2's character set, so an upstream cannot put arbitrary text into our
// errors and logs.
func cleanErrorCode(code string) string {
	if len(code) > maxErrorCode {
		return ""
	}
	for _, c := range []byte(code) {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return ""
		}
	}
	return code
}

// Token is a user's credential at the upstream. Access and refresh
// tokens are config.Secret, so printing, logging or JSON-encoding the
// struct shows <redacted>; Encode is the one way to the real values.
type Token struct {
	// AccessToken is sent to the upstream API.
	AccessToken config.Secret
	// RefreshToken renews AccessToken; empty if the upstream gave none.
	RefreshToken config.Secret
	// TokenType is the normalised token type, usually "Bearer".
	TokenType string
	// Expiry is when AccessToken expires; zero means it does not.
	Expiry time.Time
	// Fields are the values of an API-key form that asks for several
	// (upstream.auth.api_key.fields), sealed together as one credential;
	// AccessToken is then empty.
	Fields map[string]config.Secret
}

// upstreamTokenV is the version of the encoded form. fields was added
// without a new version: every record written before it still decodes.
const upstreamTokenV = 1

// sealedUpstreamToken is the encoded form, with real values.
type sealedUpstreamToken struct {
	V            int               `json:"v"`
	AccessToken  string            `json:"access_token"`
	RefreshToken string            `json:"refresh_token,omitempty"`
	TokenType    string            `json:"token_type,omitempty"`
	Expiry       time.Time         `json:"expiry,omitzero"`
	Fields       map[string]string `json:"fields,omitempty"`
}

// Encode returns JSON with the real token values, for the caller to seal
// with the Keyring before it is stored (TH-41). Never store or log it
// unsealed.
func (t Token) Encode() ([]byte, error) {
	if t.AccessToken.IsZero() && len(t.Fields) == 0 {
		return nil, errors.New("encode upstream token: access token is empty")
	}
	var fields map[string]string
	if len(t.Fields) > 0 {
		fields = make(map[string]string, len(t.Fields))
		for k, v := range t.Fields {
			fields[k] = v.Reveal()
		}
	}
	return json.Marshal(sealedUpstreamToken{
		V:            upstreamTokenV,
		AccessToken:  t.AccessToken.Reveal(),
		RefreshToken: t.RefreshToken.Reveal(),
		TokenType:    t.TokenType,
		Expiry:       t.Expiry,
		Fields:       fields,
	})
}

// DecodeToken reads what Encode wrote (after the caller opened the
// seal).
func DecodeToken(b []byte) (Token, error) {
	var s sealedUpstreamToken
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Token{}, fmt.Errorf("decode upstream token: %w", err)
	}
	if s.V != upstreamTokenV {
		return Token{}, fmt.Errorf("decode upstream token: unknown version %d", s.V)
	}
	if s.AccessToken == "" && len(s.Fields) == 0 {
		return Token{}, errors.New("decode upstream token: access token is empty")
	}
	t := Token{
		AccessToken:  config.Secret(s.AccessToken),
		RefreshToken: config.Secret(s.RefreshToken),
		TokenType:    s.TokenType,
		Expiry:       s.Expiry,
	}
	if len(s.Fields) > 0 {
		t.Fields = make(map[string]config.Secret, len(s.Fields))
		for k, v := range s.Fields {
			t.Fields[k] = config.Secret(v)
		}
	}
	return t, nil
}

// Expired reports whether the access token is missing or expires within
// skew of now. A zero Expiry never expires (GitHub OAuth app tokens).
func (t Token) Expired(now time.Time, skew time.Duration) bool {
	if t.AccessToken.IsZero() && len(t.Fields) == 0 {
		return true
	}
	return !t.Expiry.IsZero() && !now.Add(skew).Before(t.Expiry)
}

// Refresh renews old for connectionID. Concurrent callers for one
// connection share one refresh request (TH-37, F6): an upstream that
// rotates refresh tokens and revokes the family on reuse must never see
// the same refresh token twice. commit persists the new pair and runs
// before anyone gets it, so the new pair is stored before the old one is
// dropped; if commit fails, Refresh fails and the old pair stays stored.
// The shared call is detached from the first caller's ctx (bounded by
// RefreshTimeout), and each caller returns on its own ctx.Done().
//
// A token response without a refresh token keeps the old one. Errors wrap
// ErrReauthorize when the upstream refused the grant (the caller marks the
// connection reconnect_required); any other error is temporary.
func (u *Client) Refresh(ctx context.Context, connectionID string, old Token, commit func(context.Context, Token) error) (Token, error) {
	switch {
	case connectionID == "":
		return Token{}, fmt.Errorf("refresh upstream token for %s: connection id is empty", u.provider)
	case commit == nil:
		return Token{}, fmt.Errorf("refresh upstream token for %s: commit is nil", u.provider)
	case old.RefreshToken.IsZero():
		return Token{}, fmt.Errorf("refresh upstream token for %s: no refresh token: %w", u.provider, ErrReauthorize)
	}
	ch := u.flight.DoChan(connectionID, func() (any, error) {
		// Detached: the first caller leaving must not abort a request the
		// others wait for, nor one the upstream may already have honoured.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.refreshTimeout)
		defer cancel()
		return u.refresh(fctx, connectionID, old, commit)
	})
	select {
	case <-ctx.Done():
		return Token{}, fmt.Errorf("refresh upstream token for %s: %w", u.provider, context.Cause(ctx))
	case r := <-ch:
		if r.Err != nil {
			return Token{}, r.Err
		}
		return r.Val.(Token), nil
	}
}

// refresh is the shared body of Refresh: at most one token request.
func (u *Client) refresh(ctx context.Context, connectionID string, old Token, commit func(context.Context, Token) error) (Token, error) {
	now := u.now()
	from := digest(old.RefreshToken.Reveal())
	cur := old
	if s, ok := u.spent.get(connectionID, now); ok && s.from == from {
		// old was already spent by an earlier refresh: this caller loaded
		// the pair before that refresh was committed, or its commit
		// failed. Presenting old again would be reuse.
		if !s.to.Expired(now, 0) {
			if !s.committed {
				if err := commit(ctx, s.to); err != nil {
					return Token{}, fmt.Errorf("refresh upstream token for %s: commit: %w", u.provider, err)
				}
				u.spent.markCommitted(connectionID, from)
			}
			return s.to, nil
		}
		// Expired too: refresh from the newest pair we hold. If that pair
		// was never committed, the store still holds old.
		cur = s.to
		if s.committed {
			from = digest(s.to.RefreshToken.Reveal())
		}
	}

	src := u.cfg.TokenSource(u.clientContext(ctx), &oauth2.Token{RefreshToken: cur.RefreshToken.Reveal()})
	t, err := src.Token()
	if err != nil {
		return Token{}, u.tokenError(opRefresh, err)
	}
	nt := u.fromOAuth2(t)
	if nt.RefreshToken.IsZero() {
		nt.RefreshToken = cur.RefreshToken
	}
	// Remembered before commit: if commit fails, the next Refresh retries
	// committing this pair instead of presenting the spent token.
	u.spent.put(connectionID, spentToken{from: from, to: nt, at: now}, now)
	if err := commit(ctx, nt); err != nil {
		return Token{}, fmt.Errorf("refresh upstream token for %s: commit: %w", u.provider, err)
	}
	u.spent.markCommitted(connectionID, from)
	return nt, nil
}

// spentTokens remembers, per connection, the refresh token last spent and
// the pair it bought. Entries are dropped after rememberFor, or
// rememberUncommittedFor while their commit has not succeeded.
type spentTokens struct {
	mu     sync.Mutex
	byConn map[string]spentToken
}

// spentToken is one remembered rotation.
type spentToken struct {
	from      string // digest of the refresh token the store held
	to        Token
	committed bool
	at        time.Time
}

func (s *spentTokens) get(conn string, now time.Time) (spentToken, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byConn[conn]
	if !ok || e.stale(now) {
		return spentToken{}, false
	}
	return e, true
}

// stale reports whether the entry is past its keeping time.
func (e spentToken) stale(now time.Time) bool {
	keep := rememberFor
	if !e.committed {
		keep = rememberUncommittedFor
	}
	return now.Sub(e.at) > keep
}

func (s *spentTokens) put(conn string, e spentToken, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Sweep here, once per real refresh, so the map stays bounded by the
	// connections refreshed within rememberFor.
	for k, v := range s.byConn {
		if v.stale(now) {
			delete(s.byConn, k)
		}
	}
	s.byConn[conn] = e
}

func (s *spentTokens) markCommitted(conn, from string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.byConn[conn]; ok && e.from == from {
		e.committed = true
		s.byConn[conn] = e
	}
}

// digest is the hex SHA-256 of a refresh token: spentTokens compares
// tokens by it, so the map never holds a spent token in clear. It is the
// same function as issuer.Digest, kept here so that the upstream client
// does not depend on the issuer of our own tokens.
func digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
