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
	// ErrExpired means the record exists but its time is up; the store
	// deletes it as it answers.
	ErrExpired = errors.New("expired")
	// ErrInGrace means a consumed token was presented again within its
	// grace window; the returned Token carries the sealed Successor so the
	// caller can answer the retry with the same pair (TH-23, TH-24).
	ErrInGrace = errors.New("already consumed, within grace")
	// ErrReplayed means a consumed token was presented again after its
	// grace window (a code: at once). The store has deleted every token of
	// the grant in the same transaction (TH-16, TH-23).
	ErrReplayed = errors.New("already consumed: grant revoked")
	// ErrTooMany means a cap on live records was reached (TH-12).
	ErrTooMany = errors.New("too many live records")
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
	// RedirectURI binds a code to the redirect_uri seen at authorize
	// (TH-18); empty for other kinds.
	RedirectURI string
	// ConsumedAt is when a code or refresh token was redeemed; zero while
	// it is live. A consumed token is kept as a marker so that a replay
	// is recognised (TH-16, TH-23) until Sweep removes it.
	ConsumedAt time.Time
	// Successor is the response minted when the token was consumed,
	// sealed by the caller, returned to a retry within the grace window.
	Successor []byte
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
	// Owner names who in Notion owns the authorization, derived from the
	// token response's owner ("user:<id>", "workspace", "bot:<bot_id>",
	// see notion.TokenResponse.OwnerKey): a stable id, never a secret or
	// a display name. It is part of the identity UpsertConnection
	// matches on, so two Notion users of one workspace who connect the
	// same upstream account keep a connection each (TH-39). Empty in
	// records written before owners were kept.
	Owner string
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
	// UpstreamRefreshedAt is when the upstream credential was last
	// renewed with its refresh token; zero if it never was.
	UpstreamRefreshedAt time.Time
	// Reconnect says why Status became reconnect_required: which call,
	// when, which status. Zero while the connection is active, and for
	// connections marked before it was kept.
	Reconnect ConnectionEvent
	// Failures are the connection's last failed unfurls, oldest first, at
	// most MaxConnectionFailures (WithFailure). They are written only when
	// an unfurl fails, never on a successful one.
	Failures []ConnectionEvent
}

// MaxConnectionFailures bounds Connection.Failures: enough to see a
// pattern, small enough that the record stays a few hundred bytes.
const MaxConnectionFailures = 5

// ConnectionEvent is one thing that went wrong for a connection, for
// `unfurld status --connection` and the admin API. It holds no secret:
// no token, no credential, no upstream body.
type ConnectionEvent struct {
	// At is when it happened.
	At time.Time
	// Call names what was being done: "unfurl", "upstream request",
	// "upstream token refresh", "open credential", "notion push", "key
	// rotation".
	Call string
	// URI is the link being unfurled or pushed, if any.
	URI string
	// Status is the HTTP status that was answered; 0 when there was none.
	Status int
	// Detail explains it in a line.
	Detail string
}

// WithFailure returns c with ev appended to Failures, dropping the oldest
// beyond MaxConnectionFailures. It never shares c's slice, so a caller's
// copy is not changed under it.
func (c Connection) WithFailure(ev ConnectionEvent) Connection {
	keep := c.Failures
	if len(keep) >= MaxConnectionFailures {
		keep = keep[len(keep)-MaxConnectionFailures+1:]
	}
	out := make([]ConnectionEvent, 0, len(keep)+1)
	c.Failures = append(append(out, keep...), ev)
	return c
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
	// record last changed, a webhook's pending mark aside
	// (MergeSubscription).
	CreatedAt time.Time
	UpdatedAt time.Time
	// Refresh is the story of the last live refresh (issue 4 item 5);
	// zero until the first one.
	Refresh RefreshRecord
	// DeliveredAt is when Notion last accepted a PATCH of this link
	// (Outbox.AckOutbox sets it in the transaction that settles the
	// item, so it costs no commit of its own); zero until then.
	DeliveredAt time.Time
	// NextPollAt is when the poller fetches the link next (Schedule);
	// zero means never scheduled, which counts as due at once, so that
	// records from older versions, and those of a provider that just
	// turned polling on, get polled. Only Schedule.SchedulePolls
	// changes it on a stored record; a put that creates the record
	// takes it as given (so migrate-store copies it), and every other
	// put keeps the stored one.
	NextPollAt time.Time
	// UnfurledAt is when the link was last unfurled, coarsely: an
	// unfurl's put moves it only UnfurledGranularity or more forward
	// (see MergeSubscription), so warm unfurls write nothing. Zero in
	// records written before it was kept (UnfurledAtOrUpdated).
	UnfurledAt time.Time
}

// RefreshRecord is what the last live refresh of a subscription did, for
// `unfurld status` and the admin endpoint. It holds no secret.
type RefreshRecord struct {
	// At is when the refresh began (for a pending mark, when the webhook
	// was accepted); Trigger is "poll" or "webhook".
	At      time.Time
	Trigger string
	// Outcome is one of "unchanged", "not_modified", "changed", "error",
	// "gone" (an error operation was pushed), "skipped", or "pending"
	// (RefreshPending: asked for by a webhook, not run yet).
	Outcome string
	// Status is the upstream's HTTP status or the error operation's.
	Status int
	// Detail explains errors; never upstream bodies or tokens.
	Detail string
}

// Store is unfurld's persistent state. Every method is safe for concurrent
// use. Update-style methods run read-modify-write in one transaction, so
// concurrent callers cannot lose each other's writes.
type Store interface {
	GrantStore
	Outbox
	SealedStore
	Schedule

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
	// ListConnectionTokens returns the tokens issued for a connection
	// (consumed markers included), in digest order; none when the
	// connection has none or does not exist. For the operator's view of
	// what Notion holds: callers show kinds and times, never digests.
	ListConnectionTokens(ctx context.Context, connectionID string) ([]Token, error)

	// PutSubscription stores s unless that changes nothing, and reports
	// whether it wrote. An unfurl's put (zero Refresh) creates the record
	// or sets its AttrHash; a live refresh's put (with a Refresh) only
	// updates an existing record's ETag, LastModified and Refresh (see
	// MergeSubscription). CreatedAt is kept from the old record.
	PutSubscription(ctx context.Context, s Subscription) (bool, error)
	// PutSubscriptions is PutSubscription for many records in one
	// transaction, so that recording the unfurls of a busy second costs
	// one fsync'd commit instead of one each. Records are applied in
	// order; a record that PutSubscription would not write is skipped,
	// and so is a record whose connection does not exist, so that a
	// batch queued before DeleteConnection cannot bring its
	// subscriptions back (TH-40). It reports how many records it wrote.
	PutSubscriptions(ctx context.Context, subs []Subscription) (written int, err error)
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
	// ListSubscriptionsByURIPrefix returns up to limit subscriptions of a
	// provider whose URI starts with prefix, in (uri, connection) order:
	// the links a webhook names, pasted with or without a fragment, query
	// or trailing slash (issue 4 item 2).
	ListSubscriptionsByURIPrefix(ctx context.Context, provider, prefix string, limit int) ([]Subscription, error)
	// SubscriptionKeysByURIs returns the keys of a provider's
	// subscriptions whose URI is one of uris, or starts with one of
	// prefixes, up to limit for each of them, all read at one point in
	// time and without reading the subscriptions themselves: a webhook
	// naming 10,000 links looks them all up in one call (issue 11). A key
	// may come more than once; the order is not specified.
	SubscriptionKeysByURIs(ctx context.Context, provider string, uris, prefixes []string, limit int) ([]SubscriptionKey, error)

	// Probe runs one small write transaction that leaves no record
	// behind, and returns its error: a store that still reads but cannot
	// commit (a full disk, a read-only file) fails it, so that /healthz
	// can say so (F11, TH-46). Callers rate-limit it; it costs a commit.
	Probe(ctx context.Context) error

	// Close releases the store.
	Close() error
}
