package store

import "context"

// ChangeKind says what a Change names.
type ChangeKind uint8

// Change kinds.
const (
	// ChangeLost: the feed is interrupted. Changes made meanwhile are not
	// reported, so a cache must trust nothing it holds (and hold nothing
	// new) until ChangeResync.
	ChangeLost ChangeKind = iota + 1
	// ChangeResync: the feed is live (again). Anything may have changed
	// during the gap, so a cache drops everything once.
	ChangeResync
	// ChangeToken: the token with digest ID was deleted.
	ChangeToken
	// ChangeConnection: the connection ID was updated or deleted, and
	// with a deletion its tokens and subscriptions.
	ChangeConnection
	// ChangeGrant: the tokens of grant ID were revoked.
	ChangeGrant
	// ChangeTokens: tokens were removed that the writer did not name one
	// by one (a sweep).
	ChangeTokens
	// ChangeSubscription: the subscription Sub was deleted, or its
	// AttrHash set by a delivery.
	ChangeSubscription
	// ChangeURI: every subscription of (Sub.Provider, Sub.URI) was
	// deleted.
	ChangeURI
	// ChangeSubscriptions: subscriptions changed that the writer could
	// not name in one notice (a key too long for it).
	ChangeSubscriptions
)

// Change is one committed write that another process may hold a stale
// copy of in a cache: a revoked token or changed connection (the bearer
// cache, TH-26) or a deleted or delivered subscription (the recorder's
// memory of stored hashes, TH-39).
type Change struct {
	Kind ChangeKind
	// ID is the token digest, connection ID or grant ID.
	ID string
	// Sub is the subscription (ChangeSubscription), or its provider and
	// URI (ChangeURI).
	Sub SubscriptionKey
}

// ChangeFeed is implemented by stores that several processes share (the
// postgres store): it reports the writes every process commits, so that
// each can drop what it caches of them. bolt and memory need none: a
// bbolt file is opened by one process at a time, and every write of that
// process goes through its one cached store, which sees it.
type ChangeFeed interface {
	// WatchChanges calls fn with every change committed from now on, by
	// any process, this one included, in commit order, from one
	// goroutine. It first reports ChangeResync once the feed is live,
	// then ChangeLost and ChangeResync around every interruption. It
	// returns when ctx ends.
	WatchChanges(ctx context.Context, fn func(Change))
}
