package live

import (
	"context"
	"fmt"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// DefaultLease is how long a claimed item of a shared outbox is held by
// the replica that claimed it (Options.Lease). It must outlast the pass
// that claims it: at most sharedClaimsPerWorker items a worker, each
// sent within notion.timeout (10 s by default) and settled with a few
// store writes. It is also the longest a killed replica delays the
// items it held.
const DefaultLease = 2 * time.Minute

// sharedClaimsPerWorker bounds one claim of a shared outbox per worker,
// so that a pass ends well within its lease.
const sharedClaimsPerWorker = 4

// dispatch is how a Deliverer takes due items and paces them: in this
// process's memory for an outbox only it drains (bolt, memory), in the
// store for one that several replicas drain (store.SharedOutbox).
type dispatch interface {
	// claim returns up to limit items due at now.
	claim(ctx context.Context, now time.Time, limit int) ([]store.OutboxClaim, error)
	// admit says of each of one connection's claims, in order, whether
	// it may go at now.
	admit(ctx context.Context, now time.Time, claims []store.OutboxClaim) ([]verdict, error)
	// postpone reschedules the items admit refused.
	postpone(ctx context.Context, held, slotted []store.OutboxUpdate) error
	// hold stops a connection until until, after a 429 (protocol 7.4).
	hold(ctx context.Context, connectionID string, until time.Time) error
	// limit is how many items one claim may take.
	limit() int
}

// verdict is admit's answer for one claim: go now (ok), or else from at,
// where a pacing slot was reserved for it (slotted) or a Retry-After
// hold ends.
type verdict struct {
	at          time.Time
	ok, slotted bool
}

// localDispatch keeps the pacing state in the Deliverer's memory, as one
// process draining its own store can: after a restart items simply take
// new slots.
type localDispatch struct{ d *Deliverer }

func (l localDispatch) claim(ctx context.Context, now time.Time, limit int) ([]store.OutboxClaim, error) {
	items, err := l.d.st.DueOutbox(ctx, now, limit)
	if err != nil {
		return nil, err
	}
	out := make([]store.OutboxClaim, len(items))
	for i, it := range items {
		out[i] = store.OutboxClaim{OutboxItem: it}
	}
	return out, nil
}

func (l localDispatch) admit(_ context.Context, now time.Time, claims []store.OutboxClaim) ([]verdict, error) {
	d := l.d
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]verdict, len(claims))
	for i, c := range claims {
		k := c.SubscriptionKey
		p := d.pacer(k.ConnectionID)
		if now.Before(p.hold) {
			// Slots given before the 429 are void; new ones are handed
			// out when the hold ends.
			delete(d.reserved, k)
			out[i] = verdict{at: p.hold}
			continue
		}
		at, ok := d.reserved[k]
		if !ok {
			at = p.reserve(now, d.interval, d.tolerance)
		}
		if at.After(now) {
			d.reserved[k] = at
			out[i] = verdict{at: at, slotted: true}
			continue
		}
		delete(d.reserved, k)
		out[i] = verdict{at: now, ok: true}
	}
	return out, nil
}

func (l localDispatch) postpone(ctx context.Context, held, slotted []store.OutboxUpdate) error {
	_, err := l.d.st.RescheduleOutbox(ctx, append(held, slotted...))
	return err
}

func (l localDispatch) hold(_ context.Context, connectionID string, until time.Time) error {
	l.d.holdLocal(connectionID, until)
	return nil
}

func (l localDispatch) limit() int { return l.d.batch }

// sharedDispatch keeps the pacing state in a store several replicas
// drain: items are leased, so no two replicas send one, and every
// connection's slots are reserved in the store, so that its pace holds
// across all replicas together (protocol 7.4, issue 11).
type sharedDispatch struct {
	d     *Deliverer
	st    store.SharedOutbox
	lease time.Duration
}

func (s sharedDispatch) claim(ctx context.Context, now time.Time, limit int) ([]store.OutboxClaim, error) {
	return s.st.ClaimOutbox(ctx, now, s.lease, limit)
}

// admit decides for all of a connection's claims in one transaction on
// its pacing state: one round trip per connection and pass, not per item.
func (s sharedDispatch) admit(ctx context.Context, now time.Time, claims []store.OutboxClaim) ([]verdict, error) {
	d := s.d
	out := make([]verdict, len(claims))
	err := s.st.UpdatePace(ctx, claims[0].ConnectionID, func(sp store.Pace) store.Pace {
		p := pacer{tat: sp.TAT, hold: sp.Hold}
		for i, c := range claims {
			switch {
			case now.Before(p.hold):
				// As in memory: a slot given before the 429 is void.
				out[i] = verdict{at: p.hold}
			case !c.Slot.IsZero():
				// Deferred to a slot reserved for it: it is that slot now.
				out[i] = verdict{at: now, ok: true}
			default:
				at := p.reserve(now, d.interval, d.tolerance)
				out[i] = verdict{at: at, ok: !at.After(now), slotted: at.After(now)}
			}
		}
		return store.Pace{TAT: p.tat, Hold: p.hold}
	})
	if err != nil {
		return nil, fmt.Errorf("pace: %w", err)
	}
	return out, nil
}

func (s sharedDispatch) postpone(ctx context.Context, held, slotted []store.OutboxUpdate) error {
	if len(held) > 0 {
		if _, err := s.d.st.RescheduleOutbox(ctx, held); err != nil {
			return err
		}
	}
	if len(slotted) > 0 {
		if _, err := s.st.DeferOutbox(ctx, slotted); err != nil {
			return err
		}
	}
	return nil
}

// hold records the hold in the store, for every replica, and in memory,
// where deliverConn looks before each send of the pass under way.
func (s sharedDispatch) hold(ctx context.Context, connectionID string, until time.Time) error {
	s.d.holdLocal(connectionID, until)
	d := s.d
	return s.st.UpdatePace(ctx, connectionID, func(sp store.Pace) store.Pace {
		p := pacer{tat: sp.TAT, hold: sp.Hold}
		p.holdUntil(until, d.tolerance)
		return store.Pace{TAT: p.tat, Hold: p.hold}
	})
}

func (s sharedDispatch) limit() int {
	return min(s.d.batch, sharedClaimsPerWorker*s.d.workers)
}

// holdLocal stops a connection in this process's memory until until.
func (d *Deliverer) holdLocal(connectionID string, until time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pacer(connectionID).holdUntil(until, d.tolerance)
}
