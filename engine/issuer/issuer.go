package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
)

// Lifetimes of what the Issuer mints.
const (
	// CodeTTL is the life of our authorization code. Notion redeems it
	// right after the redirect, so two minutes is plenty and keeps a
	// leaked code useless soon (TH-17: 60-120 s suggested, 10 min ceiling).
	CodeTTL = 2 * time.Minute
	// DefaultRefreshTTL is the inactivity limit of a refresh token: each
	// rotation starts a new one (TH-23). A connection Notion has not
	// refreshed for this long must reconnect.
	DefaultRefreshTTL = 90 * 24 * time.Hour
	// TokenTypeBearer is the token_type we send (protocol 2.3, 10 #7).
	TokenTypeBearer = "bearer"
)

// RFC 6749 5.2 error codes, plus the two the token URL needs for server
// trouble (security.md F11).
const (
	CodeInvalidRequest         = "invalid_request"
	CodeInvalidClient          = "invalid_client"
	CodeInvalidGrant           = "invalid_grant"
	CodeUnauthorizedClient     = "unauthorized_client"
	CodeUnsupportedGrantType   = "unsupported_grant_type"
	CodeInvalidScope           = "invalid_scope"
	CodeServerError            = "server_error"
	CodeTemporarilyUnavailable = "temporarily_unavailable"
)

// maxSuccessor caps the plaintext of an opened successor, which is a small
// JSON object; anything larger is not ours.
const maxSuccessor = 4096

// Error is an OAuth error answer (RFC 6749 5.2): a code from the list
// above and a human-readable description. Descriptions never hold a code,
// token or secret, since they travel to the client and into logs (TH-49).
type Error struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// grantError is the usual refusal of a code or refresh token.
func grantError(desc string) *Error { return &Error{Code: CodeInvalidGrant, Description: desc} }

// Client is what the Issuer needs to know about the OAuth client, Notion's
// integration for one provider (pair A, protocol 1.2). The caller has
// authenticated it already.
type Client struct {
	// Provider is the provider the client belongs to; codes and tokens of
	// other providers are refused (TH-18, TH-27).
	Provider string
	// AccessTokenTTL is the life of access tokens. Zero issues long-lived
	// access tokens and no refresh token (protocol 2.3, Notion's default).
	AccessTokenTTL time.Duration
	// RefreshGrace is how long a rotated refresh token still answers with
	// the pair it was rotated into (TH-23, TH-24).
	RefreshGrace time.Duration
	// RefreshTTL is the inactivity limit of refresh tokens; zero means
	// DefaultRefreshTTL.
	RefreshTTL time.Duration
}

// TokenResponse is the token URL's success body (protocol 2.3, RFC 6749
// 5.1). Its printing methods hide the token values; only encoding/json
// (the HTTP answer and the sealed successor) sees them.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// ExpiresIn is in seconds; it is always sent with RefreshToken and
	// never without it (protocol 2.3, 10 #6).
	ExpiresIn int64 `json:"expires_in,omitempty"`
}

// String describes the response without its secrets.
func (r TokenResponse) String() string {
	return fmt.Sprintf("token response(type=%s refresh=%t expires_in=%d)", r.TokenType, r.RefreshToken != "", r.ExpiresIn)
}

// Format keeps every fmt verb from printing the tokens.
func (r TokenResponse) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }

// LogValue keeps slog from printing the tokens (STYLE.md 6, TH-49).
func (r TokenResponse) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("token_type", r.TokenType),
		slog.Bool("refresh", r.RefreshToken != ""),
		slog.Int64("expires_in", r.ExpiresIn),
	)
}

var (
	_ fmt.Stringer   = TokenResponse{}
	_ fmt.Formatter  = TokenResponse{}
	_ slog.LogValuer = TokenResponse{}
)

// Issuer mints our authorization codes and redeems them and refresh tokens
// for Notion (protocol 2). Every redemption is one store transaction, so a
// code or refresh token is consumed and its successors created together or
// not at all (TH-16, TH-24, TH-44).
type Issuer struct {
	// Store keeps the digests of what we issue.
	Store store.Store
	// Keyring seals the successor pair kept on a consumed refresh token
	// for the grace window (TH-41). Needed only when access tokens expire.
	Keyring *sealing.Keyring
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (i *Issuer) now() time.Time {
	if i.Now == nil {
		return time.Now()
	}
	return i.Now()
}

// MintCode creates our one-time authorization code for the redirect to
// Notion (protocol 1.5 R3): a new grant for connectionID, bound to provider
// and to the redirect_uri seen at authorize (TH-18), alive for CodeTTL
// (TH-17).
func (i *Issuer) MintCode(ctx context.Context, provider, connectionID, redirectURI string) (string, error) {
	now := i.now()
	code, digest := Mint(store.KindCode)
	err := i.Store.CreateToken(ctx, store.Token{
		Digest:       digest,
		Kind:         store.KindCode,
		Provider:     provider,
		ConnectionID: connectionID,
		GrantID:      NewID(),
		CreatedAt:    now,
		ExpiresAt:    now.Add(CodeTTL),
		RedirectURI:  redirectURI,
	})
	if err != nil {
		return "", fmt.Errorf("store authorization code: %w", err)
	}
	return code, nil
}

// RedeemCode answers the authorization_code grant (protocol 2.2 step 3).
// The code must be ours, live, unexpired and of client's provider, and
// redirectURI must match the one bound at authorize (matchRedirect). A
// mismatching redirect_uri is refused without burning the code; a second
// redemption revokes every token the first one issued (TH-16).
//
// Refusals are *Error; any other error is the store failing, and nothing
// was issued (TH-46).
func (i *Issuer) RedeemCode(ctx context.Context, client Client, code, redirectURI string) (TokenResponse, error) {
	// A token of another kind is refused before any lookup (TH-25); the
	// store would not match it either.
	if kind, ok := KindOf(code); !ok || kind != store.KindCode {
		return TokenResponse{}, grantError("authorization code is invalid")
	}
	now := i.now()
	var resp TokenResponse
	_, _, err := i.Store.ConsumeToken(ctx, store.Consume{
		Kind:     store.KindCode,
		Digest:   Digest(code),
		Provider: client.Provider,
		Now:      now,
		// A code's second use is always a replay.
		Grace: 0,
		Issue: func(old store.Token) ([]store.Token, []byte, error) {
			if !matchRedirect(old.RedirectURI, redirectURI) {
				return nil, nil, grantError("redirect_uri does not match the authorization request")
			}
			var toks []store.Token
			resp, toks = i.mintPair(client, old, now)
			// No successor: a code has no grace window.
			return toks, nil, nil
		},
	})
	switch {
	case err == nil:
		return resp, nil
	case errors.Is(err, store.ErrNotFound):
		return TokenResponse{}, grantError("authorization code is invalid")
	case errors.Is(err, store.ErrExpired):
		return TokenResponse{}, grantError("authorization code expired")
	case errors.Is(err, store.ErrReplayed), errors.Is(err, store.ErrInGrace):
		return TokenResponse{}, grantError("authorization code was already used; the tokens issued for it are revoked")
	}
	var oe *Error
	if errors.As(err, &oe) {
		return TokenResponse{}, oe
	}
	return TokenResponse{}, fmt.Errorf("redeem authorization code: %w", err)
}

// Refresh answers the refresh_token grant (protocol 2.2 step 4). Every use
// rotates the refresh token (TH-23). The new pair is sealed onto the spent
// token, so a retry or a concurrent refresh within the client's grace gets
// that same pair and never a second one (TH-24); a use after the grace
// revokes the whole grant, access tokens included (TH-23).
func (i *Issuer) Refresh(ctx context.Context, client Client, refreshToken string) (TokenResponse, error) {
	if kind, ok := KindOf(refreshToken); !ok || kind != store.KindRefresh {
		return TokenResponse{}, grantError("refresh token is invalid")
	}
	if client.AccessTokenTTL <= 0 {
		// We issue no refresh tokens for long-lived access tokens, so a
		// refresh token left from an earlier configuration is refused
		// rather than answered with a pair Notion cannot refresh.
		return TokenResponse{}, &Error{Code: CodeUnsupportedGrantType, Description: "this provider issues long-lived access tokens and no refresh tokens"}
	}
	if i.Keyring == nil {
		return TokenResponse{}, errors.New("refresh: no keyring to seal the successor")
	}
	now := i.now()
	digest := Digest(refreshToken)
	aad := sealing.SuccessorAAD(digest)
	var resp TokenResponse
	_, spent, err := i.Store.ConsumeToken(ctx, store.Consume{
		Kind:     store.KindRefresh,
		Digest:   digest,
		Provider: client.Provider,
		Now:      now,
		Grace:    client.RefreshGrace,
		Issue: func(old store.Token) ([]store.Token, []byte, error) {
			var toks []store.Token
			resp, toks = i.mintPair(client, old, now)
			plain, err := json.Marshal(resp)
			if err != nil {
				return nil, nil, fmt.Errorf("encode successor: %w", err)
			}
			sealed, err := i.Keyring.Seal(plain, aad)
			if err != nil {
				return nil, nil, fmt.Errorf("seal successor: %w", err)
			}
			return toks, sealed, nil
		},
	})
	switch {
	case err == nil:
		return resp, nil
	case errors.Is(err, store.ErrInGrace):
		return i.openSuccessor(spent, aad)
	case errors.Is(err, store.ErrNotFound):
		return TokenResponse{}, grantError("refresh token is invalid")
	case errors.Is(err, store.ErrExpired):
		return TokenResponse{}, grantError("refresh token expired")
	case errors.Is(err, store.ErrReplayed):
		return TokenResponse{}, grantError("refresh token was already used; the grant is revoked")
	}
	return TokenResponse{}, fmt.Errorf("refresh: %w", err)
}

// openSuccessor returns the pair a spent refresh token was rotated into.
// If it cannot be opened (key retired, record damaged) the retry is
// refused: there is no pair we could give without minting a second one.
func (i *Issuer) openSuccessor(spent store.Token, aad []byte) (TokenResponse, error) {
	if len(spent.Successor) == 0 {
		return TokenResponse{}, grantError("refresh token was already used")
	}
	plain, err := i.Keyring.Open(spent.Successor, aad)
	if err != nil {
		return TokenResponse{}, grantError("refresh token was already used")
	}
	var resp TokenResponse
	if len(plain) > maxSuccessor || json.Unmarshal(plain, &resp) != nil || resp.AccessToken == "" {
		return TokenResponse{}, grantError("refresh token was already used")
	}
	return resp, nil
}

// mintPair mints the tokens that follow old in its grant: an access token,
// plus a refresh token when access tokens expire (protocol 2.3: never a
// refresh_token without expires_in). Pure computation, as ConsumeToken's
// Issue must be (TH-43).
func (i *Issuer) mintPair(client Client, old store.Token, now time.Time) (TokenResponse, []store.Token) {
	access, accessDigest := Mint(store.KindAccess)
	resp := TokenResponse{AccessToken: access, TokenType: TokenTypeBearer}
	at := store.Token{
		Digest:       accessDigest,
		Kind:         store.KindAccess,
		Provider:     client.Provider,
		ConnectionID: old.ConnectionID,
		GrantID:      old.GrantID,
		CreatedAt:    now,
	}
	if client.AccessTokenTTL <= 0 {
		return resp, []store.Token{at}
	}
	at.ExpiresAt = now.Add(client.AccessTokenTTL)
	refreshTTL := client.RefreshTTL
	if refreshTTL <= 0 {
		refreshTTL = DefaultRefreshTTL
	}
	refresh, refreshDigest := Mint(store.KindRefresh)
	rt := store.Token{
		Digest:       refreshDigest,
		Kind:         store.KindRefresh,
		Provider:     client.Provider,
		ConnectionID: old.ConnectionID,
		GrantID:      old.GrantID,
		CreatedAt:    now,
		ExpiresAt:    now.Add(refreshTTL),
	}
	resp.RefreshToken = refresh
	resp.ExpiresIn = int64(client.AccessTokenTTL / time.Second)
	if resp.ExpiresIn < 1 {
		resp.ExpiresIn = 1 // expires_in 0 would read as "absent"
	}
	return resp, []store.Token{at, rt}
}

// matchRedirect compares the redirect_uri of the token request with the one
// bound to the code at authorize (TH-18). Exact equality passes. So do the
// spellings protocol 2.2 tolerates, because Notion's docs print the leg B
// value without a scheme while the authorize value has one (protocol 2.1,
// 3.4, 10 #3): an empty value, or one that normalises like the bound one.
// The bound value already passed the exact allowlist at authorize (TH-01),
// so tolerance here cannot send a code anywhere new.
func matchRedirect(bound, presented string) bool {
	if presented == bound || presented == "" {
		return true
	}
	n := normaliseRedirect(presented)
	return n != "" && n == normaliseRedirect(bound)
}

// normaliseRedirect applies protocol 2.2's tolerant normalisation: add
// https:// when there is no scheme, lowercase scheme, host and path, drop
// a leading "www." and a trailing slash. Values with user info, a query or
// a fragment normalise to "" and never match.
func normaliseRedirect(s string) string {
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Host == "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return ""
	}
	host := strings.TrimPrefix(strings.ToLower(u.Host), "www.")
	path := strings.TrimSuffix(strings.ToLower(u.Path), "/")
	return strings.ToLower(u.Scheme) + "://" + host + path
}
