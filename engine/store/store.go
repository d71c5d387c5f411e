// Package store defines unfurld's persistent state: the Store interface,
// its record types and its sentinel errors. Implementations live in
// sub-packages (bolt for production, memory for tests) and every one of
// them must pass the conformance suite in storetest (STYLE.md 8).
//
// Records are plain values: callers get copies and give copies. Secret
// material never enters a record in clear: our own tokens are stored as
// SHA-256 digests and third-party credentials as sealed bytes
// (security.md TH-41). The store neither hashes nor seals; the oauth
// package does, so that no implementation can get it wrong.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrNotFound means no record has that key.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists means a record with that key exists already.
	ErrAlreadyExists = errors.New("already exists")
)

// TokenKind distinguishes our issued secrets. Kinds live in one bucket but
// a lookup names the kind it expects, so a code presented as a bearer
// token never matches (TH-25).
type TokenKind string

// Token kinds.
const (
	KindAccess  TokenKind = "access"
	KindRefresh TokenKind = "refresh"
	KindCode    TokenKind = "code"
)

// Token is a secret we issued to Notion (protocol 2), stored by digest.
type Token struct {
	// Digest is the hex SHA-256 of the token's text: the key.
	Digest string
	// Kind is access, refresh or code.
	Kind TokenKind
	// Provider is the provider the token was issued for; a token is only
	// accepted on that provider's routes (TH-27).
	Provider string
	// ConnectionID is the connection the token acts for.
	ConnectionID string
	// GrantID ties together the tokens of one authorization, so that a
	// replayed code or refresh token can revoke the whole family (TH-16,
	// TH-23).
	GrantID string
	// CreatedAt is when the token was issued.
	CreatedAt time.Time
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time
}

// Expired reports whether the token has expired at now.
func (t Token) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// Connection status values.
const (
	// StatusActive connections unfurl normally.
	StatusActive = "active"
	// StatusReconnect connections lost their upstream credential; unfurls
	// answer an error operation asking the user to reconnect.
	StatusReconnect = "reconnect_required"
)

// Connection is one user's link between a Notion workspace and an upstream
// account, for one provider (protocol 1.6).
type Connection struct {
	// ID is a random identifier: the key.
	ID string
	// Provider is the provider name.
	Provider string
	// AccountKey is external_account.key: a stable upstream account id,
	// never a secret (TH-14).
	AccountKey string
	// AccountName is external_account.name: display text.
	AccountName string
	// WorkspaceID, WorkspaceName and BotID come from Notion's token
	// response (protocol 4.4).
	WorkspaceID   string
	WorkspaceName string
	BotID         string
	// NotionToken is Notion's access token, sealed.
	NotionToken []byte
	// UpstreamCredential is the user's upstream credential (an OAuth
	// token pair or an API key), sealed.
	UpstreamCredential []byte
	// UpstreamExpiry is when the upstream access token expires; zero if it
	// does not.
	UpstreamExpiry time.Time
	// Status is active or reconnect_required.
	Status string
	// CreatedAt and UpdatedAt are bookkeeping times.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SubscriptionKey identifies a subscription.
type SubscriptionKey struct {
	Provider     string
	ConnectionID string
	URI          string
}

// Subscription records that a connection unfurled a URI, so later changes
// can be pushed to Notion (protocol 1.6, 7).
type Subscription struct {
	SubscriptionKey
	// AttrHash is a digest of the attributes last sent to Notion; an
	// unfurl writes the record only when it changes, so unfurls do not
	// each cost an fsync'd commit.
	AttrHash string
	// ETag and LastModified are the upstream validators of the last
	// fetch, for conditional polling.
	ETag         string
	LastModified string
	// CreatedAt is when the URI was first unfurled; UpdatedAt when the
	// record last changed.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Store is unfurld's persistent state. Every method is safe for concurrent
// use. Update-style methods run read-modify-write in one transaction, so
// concurrent callers cannot lose each other's writes.
type Store interface {
	// CreateToken stores t; ErrAlreadyExists if its digest is taken.
	CreateToken(ctx context.Context, t Token) error
	// GetToken returns the token of that kind and digest; ErrNotFound if
	// there is none or it is of another kind.
	GetToken(ctx context.Context, kind TokenKind, digest string) (Token, error)
	// DeleteToken removes a token; ErrNotFound if absent.
	DeleteToken(ctx context.Context, digest string) error

	// CreateConnection stores c; ErrAlreadyExists if its ID is taken.
	CreateConnection(ctx context.Context, c Connection) error
	// GetConnection returns a connection; ErrNotFound if absent.
	GetConnection(ctx context.Context, id string) (Connection, error)
	// UpdateConnection replaces a connection with fn's result in one
	// transaction; ErrNotFound if absent. An error from fn aborts.
	UpdateConnection(ctx context.Context, id string, fn func(Connection) (Connection, error)) error
	// DeleteConnection removes a connection together with every token and
	// subscription that refers to it, in one transaction (TH-40).
	// ErrNotFound if absent.
	DeleteConnection(ctx context.Context, id string) error
	// ListConnections returns the connections of a provider ("" for all).
	ListConnections(ctx context.Context, provider string) ([]Connection, error)

	// PutSubscription stores s unless an identical record (same AttrHash,
	// ETag and LastModified) is stored already; it reports whether it
	// wrote. CreatedAt is kept from the old record.
	PutSubscription(ctx context.Context, s Subscription) (bool, error)
	// GetSubscription returns a subscription; ErrNotFound if absent.
	GetSubscription(ctx context.Context, k SubscriptionKey) (Subscription, error)
	// DeleteSubscription removes one subscription; ErrNotFound if absent.
	DeleteSubscription(ctx context.Context, k SubscriptionKey) error
	// DeleteSubscriptionsByURI removes every subscription of a provider's
	// URI, whatever the connection, and says how many it removed.
	DeleteSubscriptionsByURI(ctx context.Context, provider, uri string) (int, error)
	// ListSubscriptions calls fn for each subscription of a provider (""
	// for all) in key order; an error from fn stops the walk and is
	// returned.
	ListSubscriptions(ctx context.Context, provider string, fn func(Subscription) error) error

	// Close releases the store.
	Close() error
}
