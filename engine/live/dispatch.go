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
	// admit says whether c may go at now. If not, at is when it may,
	// and slotted says that a pacing slot was reserved for it there
	// (else it waits for a Retry-After hold to end).
	admit(ctx context.Context, now time.Time, c store.OutboxClaim) (at time.Time, ok, slotted bool, err error)
	// postpone reschedules the items admit refused.
	postpone(ctx context.Context, held, slotted []store.OutboxUpdate) error
	// hold stops a connection until until, after a 429 (protocol 7.4).
	hold(ctx context.Context, connectionID string, until time.Time) error
	// limit is how many items one claim may take.
	limit() int
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

func (l localDispatch) admit(_ context.Context, now time.Time, c store.OutboxClaim) (time.Time, bool, bool, error) {
	d := l.d
	d.mu.Lock()
	defer d.mu.Unlock()
	k := c.SubscriptionKey
	p := d.pacer(k.ConnectionID)
	if now.Before(p.hold) {
		// Slots given before the 429 are void; new ones are handed out
		// when the hold ends.
		delete(d.reserved, k)
		return p.hold, false, false, nil
	}
	at, ok := d.reserved[k]
	if !ok {
		at = p.reserve(now, d.interval, d.tolerance)
	}
	if at.After(now) {
		d.reserved[k] = at
		return at, false, true, nil
	}
	delete(d.reserved, k)
	return now, true, false, nil
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

func (s sharedDispatch) admit(ctx context.Context, now time.Time, c store.OutboxClaim) (at time.Time, ok, slotted bool, err error) {
	d := s.d
	err = s.st.UpdatePace(ctx, c.ConnectionID, func(sp store.Pace) store.Pace {
		p := pacer{tat: sp.TAT, hold: sp.Hold}
		switch {
		case now.Before(p.hold):
			// As in memory: a slot given before the 429 is void.
			at, ok, slotted = p.hold, false, false
		case !c.Slot.IsZero():
			// Deferred to a slot reserved for it: it is that slot now.
			at, ok, slotted = now, true, false
		default:
			at = p.reserve(now, d.interval, d.tolerance)
			ok = !at.After(now)
			slotted = !ok
		}
		return store.Pace{TAT: p.tat, Hold: p.hold}
	})
	if err != nil {
		return time.Time{}, false, false, fmt.Errorf("pace: %w", err)
	}
	return at, ok, slotted, nil
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
