package store

import (
	"context"
	"time"
)

// OutboxItem is one pending PATCH /v1/external/object (protocol 7.1): the
// latest state of a preview that still has to reach Notion for one
// subscription. The outbox holds at most one item per subscription key,
// so an object that changes ten times while Notion is slow costs one
// PATCH with the last state, and the queue can never grow beyond the
// number of subscriptions (security.md TH-52, F10).
type OutboxItem struct {
	// SubscriptionKey is (provider, connection, uri): the subscription the
	// update is for, and the coalescing key.
	SubscriptionKey
	// Seq identifies this state of the key. Every Enqueue gives a new,
	// larger one, so a deliverer that sent an older state neither deletes
	// nor reschedules the newer one that replaced it meanwhile.
	Seq uint64
	// Body is the JSON envelope to send, {"uri": …, "operations": […]}
	// (protocol 7.1, 7.2). Attribute values are not secrets, but they are
	// the user's data (titles, names) kept in clear: the items of a
	// connection or URI are deleted with it, and leftover bytes in free
	// pages go with compaction (security.md TH-40).
	Body []byte
	// AttrHash is the digest of Body's operations; on delivery it becomes
	// the subscription's AttrHash, what Notion was last sent.
	AttrHash string
	// EnqueuedAt is when this state was enqueued; a deliverer bounds the
	// total time spent on it from here (TH-52).
	EnqueuedAt time.Time
	// NextAt is when the item may be sent next: now for a new state, later
	// after a failure (Retry-After, backoff) or to pace a connection.
	NextAt time.Time
	// Attempts counts the failed sends of this state.
	Attempts int
	// LastError describes the last failed send, for status; never a token.
	LastError string
}

// OutboxUpdate reschedules one item after an attempt or for pacing. It is
// applied only while the stored item still has Seq.
type OutboxUpdate struct {
	SubscriptionKey
	Seq       uint64
	NextAt    time.Time
	Attempts  int
	LastError string
}

// Outbox is the durable queue of preview updates to Notion (issue 4 item
// 4, security.md TH-52). Every write is one transaction, committed to
// disk before the call returns: an acknowledged Enqueue survives a crash
// (F1). It becomes part of Store; it is declared apart to keep each
// declaration short.
type Outbox interface {
	// Enqueue stores it as the pending state of its key, replacing any
	// older undelivered state (coalescing: only the latest is sent). The
	// store assigns a new Seq, which it returns, and starts the count
	// afresh: Attempts 0 and no LastError. NextAt is the later of
	// it.NextAt and the replaced item's, so a new state cannot jump a
	// Retry-After or a backoff wait. ErrNotFound if the subscription does not exist: after
	// a deletion nothing of it is queued again (TH-40, TH-52).
	Enqueue(ctx context.Context, it OutboxItem) (seq uint64, err error)
	// GetOutboxItem returns the pending item of k; ErrNotFound if none.
	GetOutboxItem(ctx context.Context, k SubscriptionKey) (OutboxItem, error)
	// DueOutbox returns up to limit items with NextAt <= now, by NextAt,
	// ties in (provider, uri, connection) order.
	DueOutbox(ctx context.Context, now time.Time, limit int) ([]OutboxItem, error)
	// RescheduleOutbox applies updates in one transaction, each only while
	// its item still has the update's Seq, and says how many it applied.
	RescheduleOutbox(ctx context.Context, updates []OutboxUpdate) (int, error)
	// AckOutbox records that sent reached Notion at time at, in one
	// transaction: the item is deleted if it still has sent.Seq (a newer
	// state stays queued), and the subscription, if it still exists, gets
	// AttrHash sent.AttrHash and UpdatedAt at, and DeliveredAt at when
	// the item was deleted or the hash changed (so acking an item twice
	// changes nothing). A subscription deleted meanwhile is not brought
	// back (TH-40).
	AckOutbox(ctx context.Context, sent OutboxItem, at time.Time) error
	// DeleteOutboxItem removes the item of k if it has Seq seq (0: any
	// Seq) and reports whether it did.
	DeleteOutboxItem(ctx context.Context, k SubscriptionKey, seq uint64) (bool, error)
	// DeleteOutboxByConnection removes every item of a connection, whatever
	// the provider, and says how many (disconnect, Notion 401/403).
	DeleteOutboxByConnection(ctx context.Context, connectionID string) (int, error)
	// DeleteOutboxByURI removes every item of a provider's URI, whatever
	// the connection, and says how many (DELETE on the unfurl URL,
	// protocol 5.6).
	DeleteOutboxByURI(ctx context.Context, provider, uri string) (int, error)
	// OutboxDepth counts the pending items per provider; providers with
	// none are absent.
	OutboxDepth(ctx context.Context) (map[string]int, error)
}

// OutboxClaim is an item ClaimOutbox leased to the caller.
type OutboxClaim struct {
	OutboxItem
	// Slot is the pacing slot reserved for the item when DeferOutbox
	// moved it there; zero when it has none and must reserve one.
	Slot time.Time
}

// Pace is one connection's pacing state (engine/live's pacer): the
// theoretical arrival time of its next PATCH, and the end of a
// Retry-After hold (protocol 7.4).
type Pace struct {
	TAT  time.Time
	Hold time.Time
}

// SharedOutbox is an Outbox that several processes drain together (the
// postgres store; issue 11). Leases keep two processes from sending one
// item, and the pacing state lives in the store, so that the pace of a
// connection's PATCHes holds across every process together, not per
// process. bolt and memory are drained by one process, which keeps both
// in memory; they do not implement it.
type SharedOutbox interface {
	// ClaimOutbox leases up to limit due items to the caller until
	// now+lease, in DueOutbox's order, skipping rows another process is
	// claiming at that moment. A leased item is not claimed again before
	// its lease ends, and DueOutbox reports it due then, so a process
	// killed while holding items delays them by one lease at most.
	// AckOutbox, RescheduleOutbox, DeferOutbox and DeleteOutboxItem end
	// the lease of their key, whatever its Seq, so a newer state queued
	// meanwhile goes out without waiting for the lease.
	ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]OutboxClaim, error)
	// DeferOutbox is RescheduleOutbox for items moved to a pacing slot
	// reserved for them: claimed at that slot, an item comes back with
	// Slot set, so it is not given a second one.
	DeferOutbox(ctx context.Context, updates []OutboxUpdate) (int, error)
	// UpdatePace replaces a connection's pacing state with fn's result in
	// one transaction (the zero Pace when it has none), so that processes
	// reserving slots at once each get their own. fn may run more than
	// once.
	UpdatePace(ctx context.Context, connectionID string, fn func(Pace) Pace) error
}
