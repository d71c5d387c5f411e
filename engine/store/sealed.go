package store

import "context"

// SealedStore reaches every record that holds sealed bytes, so that key
// rotation can move them all to the primary key and count what each key
// still seals (security.md TH-42). Connections are reached through
// ListConnections and UpdateConnection; this adds pending flows and the
// sealed successors of consumed tokens. Subscriptions and the outbox hold
// nothing sealed. It is part of Store; it is declared apart to keep each
// declaration short.
//
// The store does not know the sealed format: it hands the bytes out and
// takes new ones in, and engine/sealing opens and seals them.
type SealedStore interface {
	// ListFlows returns every stored flow, expired ones included (Sweep
	// removes those), in ID order.
	ListFlows(ctx context.Context) ([]Flow, error)
	// ListSuccessors returns every token whose Successor is not empty, in
	// digest order.
	ListSuccessors(ctx context.Context) ([]Token, error)
	// UpdateSuccessor replaces the Successor of the token with that
	// digest by fn's result, in one transaction with the read, so a
	// concurrent consumption or revocation is never lost; ErrNotFound if
	// the token is absent. Nothing else of the token changes; an empty
	// result clears the Successor. An error from fn aborts and is
	// returned as it is. fn must not do I/O.
	UpdateSuccessor(ctx context.Context, digest string, fn func(Token) ([]byte, error)) error
}
