package store

import (
	"context"
	"time"
)

// Flow is a pending authorization (protocol 3.2): Notion's authorize
// parameters and the progress of the upstream sign-in, kept server-side
// and bound to a browser cookie so the browser can continue on a clean URL
// (TH-03). The store keeps the payload opaque: Data is sealed by the
// caller, so a stolen file shows no state, verifier or credential.
type Flow struct {
	// ID is the hex SHA-256 of the cookie value: the key.
	ID string
	// Provider names the provider the flow was started for (TH-07).
	Provider string
	// Data is the sealed flow state.
	Data []byte
	// CreatedAt is when the flow started; ExpiresAt when it stops working
	// (at most 10 minutes later, issue 3).
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Consume describes the redemption of a code or a refresh token: one
// check-and-consume inside one transaction (TH-16, TH-24, TH-44).
type Consume struct {
	// Kind and Digest name the token; a token of another kind does not
	// match (TH-25).
	Kind   TokenKind
	Digest string
	// Provider must equal the token's provider, else ErrNotFound (TH-18).
	Provider string
	// Now is the clock reading for expiry and grace.
	Now time.Time
	// Grace is how long a consumed token answers with its Successor; zero
	// for codes, whose second use is always a replay.
	Grace time.Duration
	// Issue runs inside the transaction when the token is live and
	// unexpired. It returns the tokens to create and the sealed successor
	// kept on the consumed record. It must be pure computation: no I/O
	// inside a bbolt Update (TH-43). An error aborts the transaction and
	// leaves the token unconsumed (a code is not burned by a redirect_uri
	// mismatch the caller detects here).
	Issue func(old Token) (issue []Token, successor []byte, err error)
}

// SweepResult counts what Sweep removed.
type SweepResult struct {
	Flows  int
	Tokens int
}

// GrantStore holds the records of the OAuth flows. It is part of Store;
// it is split out only to keep each declaration short.
type GrantStore interface {
	// CreateFlow stores f unless maxLive unexpired flows exist already
	// (ErrTooMany, TH-12); expired flows do not count and may be removed.
	// ErrAlreadyExists if the ID is taken.
	CreateFlow(ctx context.Context, f Flow, maxLive int) error
	// GetFlow returns an unexpired flow; ErrNotFound if absent, ErrExpired
	// (and deleted) if its time is up.
	GetFlow(ctx context.Context, id string, now time.Time) (Flow, error)
	// UpdateFlow replaces an unexpired flow with fn's result in one
	// transaction; ErrNotFound or ErrExpired as GetFlow. An error from fn
	// aborts. fn must not do I/O.
	UpdateFlow(ctx context.Context, id string, now time.Time, fn func(Flow) (Flow, error)) error
	// DeleteFlow removes a flow; deleting an absent flow is not an error,
	// since single use means "gone after this, whoever got there first"
	// (TH-08). It reports whether it removed one.
	DeleteFlow(ctx context.Context, id string) (bool, error)

	// ConsumeToken redeems a code or refresh token. On success it marks
	// the token consumed (ConsumedAt, Successor) and creates the tokens
	// Issue returned, in one transaction, and returns them. Otherwise:
	// ErrNotFound (absent, other kind or provider), ErrInGrace with the
	// consumed Token, ErrReplayed after deleting every token of the grant,
	// or ErrExpired (checked after the consumed state, so a replayed
	// expired token still revokes its grant).
	ConsumeToken(ctx context.Context, c Consume) ([]Token, Token, error)
	// RevokeGrant deletes every token of a grant and says how many.
	RevokeGrant(ctx context.Context, grantID string) (int, error)

	// UpsertConnection stores c under the identity (Provider, AccountKey,
	// WorkspaceID, Owner): when a connection with that identity exists it
	// is replaced, keeping its ID and CreatedAt, so that reconnecting
	// leaves one connection (TH-14, issue 3 item 4), while another
	// Notion owner gets a connection of its own (TH-39); otherwise c is
	// created with c.ID. It returns the stored connection and whether it
	// was created.
	//
	// A connection without an Owner (stored before owners were kept) is
	// adopted by the first owner of its (Provider, AccountKey,
	// WorkspaceID) that has no connection yet: it is replaced and gets
	// that Owner. Such a record held whichever Notion user connected
	// last, and nearly always there was only one, so that user's
	// reconnect keeps the connection, its tokens and subscriptions,
	// instead of leaving a stale twin behind; a second user then gets a
	// connection of its own.
	UpsertConnection(ctx context.Context, c Connection) (Connection, bool, error)

	// Sweep removes expired flows, expired unconsumed tokens, and
	// consumed markers older than retainConsumed (TH-12, TH-17). Markers
	// outlive their tokens' expiry on purpose: while one is kept, a replay
	// revokes the grant instead of meeting ErrNotFound.
	Sweep(ctx context.Context, now time.Time, retainConsumed time.Duration) (SweepResult, error)
}
