package store

import (
	"context"
	"errors"
)

// ErrNotEmpty means a store asked to Import already holds records:
// an import copies into an empty store, it never merges.
var ErrNotEmpty = errors.New("the destination store is not empty")

// Snapshot is every record a store holds, each as stored: what `unfurld
// migrate-store` copies from one store to another. Sealed bytes
// (credentials, flow state, successors) are handed over unopened and
// keep the IDs and digests their additional data is bound to, so they
// open in the new store with the same keys. Outbox items keep their Seq.
type Snapshot struct {
	Connections   []Connection
	Tokens        []Token
	Flows         []Flow
	Subscriptions []Subscription
	Outbox        []OutboxItem
}

// KindCount is how many records of one kind a Snapshot holds.
type KindCount struct {
	Kind  string
	Count int
}

// Counts lists the records per kind, in a fixed order, then what the
// subscriptions carry for the live-update schedule (Schedule): how many
// have a next poll time and how many a webhook's pending mark, so that
// a copy that lost either is caught by its counts. Leases are not
// counted: they belong to running processes, and a copy is made with
// none running.
func (s Snapshot) Counts() []KindCount {
	scheduled, pending := 0, 0
	for _, sub := range s.Subscriptions {
		if !sub.NextPollAt.IsZero() {
			scheduled++
		}
		if sub.Pending() {
			pending++
		}
	}
	return []KindCount{
		{"connections", len(s.Connections)},
		{"tokens", len(s.Tokens)},
		{"flows", len(s.Flows)},
		{"subscriptions", len(s.Subscriptions)},
		{"scheduled polls", scheduled},
		{"pending refreshes", pending},
		{"outbox", len(s.Outbox)},
	}
}

// Exporter is a store that can hand out all its records at once. It is
// not part of Store: only moving between stores needs it.
type Exporter interface {
	// Export returns every record, read in one transaction so that the
	// records agree with each other; lists are in key order.
	Export(ctx context.Context) (Snapshot, error)
}

// Importer is a store that can take in a whole Snapshot.
type Importer interface {
	// Import writes every record of s exactly as given, in one
	// transaction, into a store that holds no record yet (else
	// ErrNotEmpty). Later Enqueues get Seqs above every imported one.
	Import(ctx context.Context, s Snapshot) error
}
