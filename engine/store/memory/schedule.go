package memory

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// lease is a claim on a subscription's poll or pending refresh
// (store.Schedule).
type lease struct {
	owner string
	until time.Time
}

// held reports whether the lease still runs at now.
func (l lease) held(now time.Time) bool { return now.Before(l.until) }

var _ store.Schedule = (*Store)(nil)

// compareKeys orders subscription keys as bbolt does.
func compareKeys(a, b store.SubscriptionKey) int {
	return cmp.Or(strings.Compare(a.Provider, b.Provider), strings.Compare(a.ConnectionID, b.ConnectionID),
		strings.Compare(a.URI, b.URI))
}

// dropSchedule forgets the leases of a deleted subscription. The caller
// holds the lock.
func (s *Store) dropSchedule(k store.SubscriptionKey) {
	delete(s.pollLeases, k)
	delete(s.pendLeases, k)
}

// afterPut releases the pending lease of k when put records a refresh
// (store.Schedule.ClaimPending), whether or not the put wrote. The caller
// holds the lock.
func (s *Store) afterPut(put store.Subscription) {
	if !put.Refresh.IsZero() && !put.Pending() {
		delete(s.pendLeases, put.SubscriptionKey)
	}
}

// claim sorts cands by when(), leases the first limit to owner and
// returns them. The caller holds the lock.
func claim(cands []store.Subscription, leases map[store.SubscriptionKey]lease, when func(store.Subscription) time.Time,
	owner string, until time.Time, limit int,
) []store.Subscription {
	slices.SortFunc(cands, func(a, b store.Subscription) int {
		return cmp.Or(when(a).Compare(when(b)), compareKeys(a.SubscriptionKey, b.SubscriptionKey))
	})
	cands = cands[:min(len(cands), limit)]
	for _, sub := range cands {
		leases[sub.SubscriptionKey] = lease{owner: owner, until: until}
	}
	return cands
}

func nextPollAt(s store.Subscription) time.Time    { return s.NextPollAt }
func pendingMarkAt(s store.Subscription) time.Time { return s.Refresh.At }

// ClaimDuePolls implements store.Schedule.
func (s *Store) ClaimDuePolls(ctx context.Context, provider, owner string, now time.Time, d time.Duration, limit int) ([]store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var cands []store.Subscription
	for k, sub := range s.subs {
		if k.Provider == provider && !sub.NextPollAt.After(now) && !s.pollLeases[k].held(now) {
			cands = append(cands, sub)
		}
	}
	return claim(cands, s.pollLeases, nextPollAt, owner, now.Add(d), limit), nil
}

// NextPollDue implements store.Schedule.
func (s *Store) NextPollDue(ctx context.Context, provider string, now time.Time) (time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	found := false
	for k, sub := range s.subs {
		if k.Provider != provider {
			continue
		}
		at := sub.NextPollAt
		if l := s.pollLeases[k]; l.held(now) && l.until.After(at) {
			at = l.until
		}
		if !found || at.Before(next) {
			next, found = at, true
		}
	}
	return next, found, nil
}

// SchedulePolls implements store.Schedule.
func (s *Store) SchedulePolls(ctx context.Context, owner string, slots []store.PollSlot) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, slot := range slots {
		k := slot.SubscriptionKey
		sub, ok := s.subs[k]
		if !ok {
			continue
		}
		if l, leased := s.pollLeases[k]; leased && l.owner != owner {
			continue
		}
		delete(s.pollLeases, k)
		sub.NextPollAt = slot.Next
		s.subs[k] = sub
		n++
	}
	return n, nil
}

// ClaimPending implements store.Schedule.
func (s *Store) ClaimPending(ctx context.Context, owner string, now time.Time, d time.Duration, limit int) ([]store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var cands []store.Subscription
	for k, sub := range s.subs {
		if sub.Pending() && !s.pendLeases[k].held(now) {
			cands = append(cands, sub)
		}
	}
	return claim(cands, s.pendLeases, pendingMarkAt, owner, now.Add(d), limit), nil
}

// ExpireSubscriptions implements store.Schedule.
func (s *Store) ExpireSubscriptions(ctx context.Context, provider string, before time.Time, limit int) ([]store.SubscriptionKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var old []store.Subscription
	for k, sub := range s.subs {
		if k.Provider == provider && sub.UnfurledAtOrUpdated().Before(before) {
			old = append(old, sub)
		}
	}
	slices.SortFunc(old, func(a, b store.Subscription) int {
		return cmp.Or(a.UnfurledAtOrUpdated().Compare(b.UnfurledAtOrUpdated()), compareKeys(a.SubscriptionKey, b.SubscriptionKey))
	})
	var keys []store.SubscriptionKey
	for _, sub := range old[:min(len(old), limit)] {
		delete(s.subs, sub.SubscriptionKey)
		s.dropSchedule(sub.SubscriptionKey)
		keys = append(keys, sub.SubscriptionKey)
	}
	return keys, nil
}

// ScheduleCounts implements store.Schedule.
func (s *Store) ScheduleCounts(ctx context.Context, provider string, now time.Time) (store.ScheduleCounts, error) {
	if err := ctx.Err(); err != nil {
		return store.ScheduleCounts{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var c store.ScheduleCounts
	for k, sub := range s.subs {
		if k.Provider != provider {
			continue
		}
		c.Subscriptions++
		switch {
		case s.pollLeases[k].held(now):
			c.Leased++
		case !sub.NextPollAt.After(now):
			c.Due++
		}
		if sub.Pending() {
			c.Pending++
		}
	}
	return c, nil
}
