package app

import (
	"context"
	"errors"
	"time"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/metrics"
	"github.com/unfurld/unfurld/engine/store"
)

// The observers below adapt the engine's hooks to engine/metrics; each
// is nil when m is, so that a component without metrics skips the call.

// storeObserver times store operations; "not found" and "already
// exists" are answers, not failures.
func storeObserver(m *metrics.Metrics) store.Observer {
	return func(op string, d time.Duration, err error) {
		failed := err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrAlreadyExists)
		m.StoreOp(op, d, failed)
	}
}

func oauthObserver(m *metrics.Metrics) func(provider, step, result string) {
	if m == nil {
		return nil
	}
	return m.OAuth
}

func pushObserver(m *metrics.Metrics) func(provider, result string) {
	if m == nil {
		return nil
	}
	return m.Patch
}

// refreshObserver counts refreshes by trigger and outcome; a refresh
// whose subscription is gone has no record and counts as "deleted".
func refreshObserver(m *metrics.Metrics) func(store.SubscriptionKey, live.Outcome) {
	if m == nil {
		return nil
	}
	return func(k store.SubscriptionKey, out live.Outcome) {
		trigger, outcome := out.Record.Trigger, out.Record.Outcome
		if out.Deleted || outcome == "" {
			outcome = "deleted"
		}
		m.Refresh(k.Provider, trigger, outcome)
	}
}

// liveSource is what the live-update gauges read at scrape time: the
// poller's statistics and the outbox in the store.
func (a *App) liveSource() metrics.LiveSource {
	return metrics.LiveSource{
		Subscriptions: func() map[string]int {
			out := map[string]int{}
			for p, s := range a.CurrentPoller().Stats() {
				out[p] = s.Subscriptions
			}
			return out
		},
		Budget: func() map[string]float64 {
			out := map[string]float64{}
			for p, s := range a.CurrentPoller().Stats() {
				if s.Budgeted {
					out[p] = max(s.BudgetLeft, 0)
				}
			}
			return out
		},
		RateLimit: func() map[string]float64 {
			out := map[string]float64{}
			for p, s := range a.CurrentPoller().Stats() {
				if s.RateLimitKnown {
					out[p] = float64(s.RateLimitRemaining)
				}
			}
			return out
		},
		Outbox: a.outboxAges,
		Now:    a.now,
	}
}

// outboxAges reads the outbox depth per provider and the enqueue time of
// each provider's oldest item. The outbox holds at most one item per
// subscription, so a scrape reads at most that many.
func (a *App) outboxAges(ctx context.Context) (map[string]int, map[string]time.Time, error) {
	depth, err := a.Store.OutboxDepth(ctx)
	if err != nil {
		return nil, nil, err
	}
	total := 0
	for _, n := range depth {
		total += n
	}
	oldest := map[string]time.Time{}
	if total == 0 {
		return depth, oldest, nil
	}
	// Every item, due or not: one waiting out a backoff is the one
	// whose age matters.
	items, err := a.Store.DueOutbox(ctx, time.Unix(1<<40, 0), total)
	if err != nil {
		return nil, nil, err
	}
	for _, it := range items {
		if at, ok := oldest[it.Provider]; !ok || it.EnqueuedAt.Before(at) {
			oldest[it.Provider] = it.EnqueuedAt
		}
	}
	return depth, oldest, nil
}
