package issuer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// Token prefixes make our token kinds tell apart at a glance, for secret
// scanners and against type confusion (security.md A8, TH-25).
const (
	PrefixAccess  = "ufd_at_"
	PrefixRefresh = "ufd_rt_"
	PrefixCode    = "ufd_ac_"
)

// prefixes maps kinds to prefixes.
func prefix(kind store.TokenKind) string {
	switch kind {
	case store.KindAccess:
		return PrefixAccess
	case store.KindRefresh:
		return PrefixRefresh
	default:
		return PrefixCode
	}
}

// Mint returns a new random token of kind: its prefix and 32 random bytes
// (256 bits, above RFC 6749 10.10's 2^-160 "should"; TH-20), and the
// digest to store.
func Mint(kind store.TokenKind) (token, digest string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	token = prefix(kind) + base64.RawURLEncoding.EncodeToString(b)
	return token, Digest(token)
}

// Digest is the storage key of a token: hex SHA-256 of its text. A lookup
// by digest is a map lookup on a value an attacker cannot choose to
// collide, so it leaks no timing about the secret (TH-19).
func Digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// KindOf tells a token's kind from its prefix.
func KindOf(token string) (store.TokenKind, bool) {
	switch {
	case strings.HasPrefix(token, PrefixAccess):
		return store.KindAccess, true
	case strings.HasPrefix(token, PrefixRefresh):
		return store.KindRefresh, true
	case strings.HasPrefix(token, PrefixCode):
		return store.KindCode, true
	}
	return "", false
}

// IssueAccessToken creates a connection-bound access token for provider
// and stores its digest. ttl 0 means the token does not expire (Notion's
// default, protocol 2.3). It backs `unfurld token` and tests until the
// token URL of the OAuth flow issues tokens.
func IssueAccessToken(ctx context.Context, st store.Store, provider, connectionID string, now time.Time, ttl time.Duration) (string, error) {
	tok, dig := Mint(store.KindAccess)
	t := store.Token{
		Digest:       dig,
		Kind:         store.KindAccess,
		Provider:     provider,
		ConnectionID: connectionID,
		GrantID:      connectionID,
		CreatedAt:    now,
	}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl)
	}
	if err := st.CreateToken(ctx, t); err != nil {
		return "", fmt.Errorf("store access token: %w", err)
	}
	return tok, nil
}

// NewID returns a random identifier for records (not a secret).
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
