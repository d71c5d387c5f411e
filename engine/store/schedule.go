package store

import (
	"context"
	"time"
)

// UnfurledGranularity is how far an unfurl must be from the stored
// Subscription.UnfurledAt before an unfurl's put moves it. The time is
// kept for ExpireSubscriptions, which counts in weeks or months; moving
// it on every unfurl would make every warm unfurl a commit, so it is
// written about once a day per link (issue 11).
const UnfurledGranularity = 24 * time.Hour

// PollSlot is one subscription's next poll, as a finished poll writes it
// with Schedule.SchedulePolls.
type PollSlot struct {
	SubscriptionKey
	// Next is when the subscription is due again. Zero puts it back
	// among the never-scheduled, due at once.
	Next time.Time
}

// ScheduleCounts describe a provider's schedule, for status pages; a
// store counts them from its indexes, never by decoding every record.
type ScheduleCounts struct {
	// Subscriptions is how many subscriptions the provider has.
	Subscriptions int
	// Due is how many of them ClaimDuePolls could hand out now: due (or
	// never scheduled) and not leased, or leased with the lease run out.
	Due int
	// Leased is how many are leased to a poller now.
	Leased int
	// Pending is how many carry a webhook's pending mark.
	Pending int
}

// Schedule is the live-update work kept in the store, indexed, so that
// pollers and refreshers stream it in pages instead of holding every
// subscription in memory or decoding them all every minute (issue 11):
//
//   - the poll schedule: each subscription's next poll time
//     (Subscription.NextPollAt), in an index per provider, claimed in
//     pages under a lease so that several replicas on one database share
//     the work and each subscription is polled by one of them; a
//     replica that dies leaves leases that run out, and its work is
//     claimed again by the others within one lease period;
//   - the webhook pending marks (RefreshRecord.Outcome RefreshPending),
//     in an index by mark time, claimed the same way;
//   - the coarse time each link was last unfurled
//     (Subscription.UnfurledAt), so that links nobody looked at for a
//     long time can be expired in pages.
//
// Leases are the store's own bookkeeping, not part of a Subscription:
// a lease is (owner, until), where owner names the replica (any string
// unique to the process) and until is the claim's now plus its lease.
// A lease whose until is at or before a claim's now is as good as none.
type Schedule interface {
	// ClaimDuePolls leases to owner, until now+lease, up to limit
	// subscriptions of provider whose NextPollAt is at or before now
	// (a zero NextPollAt, never scheduled, is due) and which are not
	// leased, or whose lease has run out; earliest NextPollAt first,
	// then in key order. It returns them as stored, NextPollAt
	// included. Two claims, concurrent or not, never return the same
	// subscription while the first one's lease runs.
	ClaimDuePolls(ctx context.Context, provider, owner string, now time.Time, lease time.Duration, limit int) ([]Subscription, error)
	// NextPollDue says when ClaimDuePolls of provider may next return
	// something: the earliest NextPollAt of the unleased subscriptions,
	// or the end of a lease if one runs out sooner (its subscription is
	// claimable again then). A zero time means at once. ok is false
	// when the provider has no subscription at all.
	NextPollDue(ctx context.Context, provider string, now time.Time) (next time.Time, ok bool, err error)
	// SchedulePolls sets the NextPollAt of each slot's subscription and
	// releases its poll lease, in one transaction: what a finished wave
	// of polls writes. A slot whose subscription is gone, or is leased
	// to another owner (its lease ran out and another replica claimed
	// it), is skipped. It touches only the schedule, never the
	// subscription's record, so a poll that found no change writes a
	// few small index entries and nothing else. It reports how many
	// slots it applied.
	SchedulePolls(ctx context.Context, owner string, next []PollSlot) (int, error)

	// ClaimPending leases to owner, until now+lease, up to limit
	// subscriptions of any provider that carry a pending mark and are
	// not leased (or whose lease ran out), oldest mark first
	// (Refresh.At), then in key order. The mark stays until a refresh
	// that began after it is recorded (MergeSubscription); recording any
	// refresh of the subscription releases the lease, so a mark made
	// again while a refresh ran is claimable as soon as that refresh is
	// recorded. A new mark on a leased subscription keeps the lease, so
	// no second replica refreshes it while the first still does.
	ClaimPending(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Subscription, error)

	// ExpireSubscriptions deletes up to limit subscriptions of provider
	// last unfurled before the given time, oldest first, as
	// DeleteSubscription does, and returns their keys. A record without
	// UnfurledAt (written before it was kept) counts as unfurled at its
	// UpdatedAt: expiry deletes, so it errs on keeping.
	ExpireSubscriptions(ctx context.Context, provider string, before time.Time, limit int) ([]SubscriptionKey, error)

	// ScheduleCounts counts provider's schedule at now.
	ScheduleCounts(ctx context.Context, provider string, now time.Time) (ScheduleCounts, error)
}

// UnfurledAtOrUpdated is the time ExpireSubscriptions goes by: UnfurledAt,
// or UpdatedAt for a record written before UnfurledAt was kept.
func (s Subscription) UnfurledAtOrUpdated() time.Time {
	if s.UnfurledAt.IsZero() {
		return s.UpdatedAt
	}
	return s.UnfurledAt
}

// Pending reports whether s carries a webhook's pending mark.
func (s Subscription) Pending() bool { return s.Refresh.Outcome == RefreshPending }

// BudgetReservation asks a provider's shared polling budget (a token
// bucket of PerSecond requests a second, holding at most Burst) for up
// to Want whole tokens at Now, after settling Debt: the requests the
// caller's earlier reservations sent beyond the tokens they took (a
// negative Debt gives unused tokens back).
type BudgetReservation struct {
	Provider  string
	Now       time.Time
	PerSecond float64
	Burst     float64
	Want      int
	Debt      float64
}

// SharedPollBudget is a Schedule whose providers' polling budgets
// (max_requests_per_hour) are kept in the store, so that the budget holds
// for every process polling on it together, not for each (the postgres
// store; issue 11). bolt and memory are polled by one process, which
// keeps the budget in memory; they do not implement it.
type SharedPollBudget interface {
	// ReservePollBudget refills the provider's bucket for the time since
	// its last reservation (a new bucket starts full), settles r.Debt,
	// takes up to r.Want whole tokens and returns how many it took and
	// the tokens left, which are below one, or negative, when the bucket
	// is spent. Reservations of several processes at once are applied
	// one after the other.
	ReservePollBudget(ctx context.Context, r BudgetReservation) (granted int, left float64, err error)
}
