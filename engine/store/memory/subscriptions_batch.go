package memory

import (
	"context"

	"github.com/unfurld/unfurld/engine/store"
)

// PutSubscriptions implements store.Store: the records are applied in
// order under one hold of the lock, as bbolt applies them in one
// transaction, skipping those PutSubscription would not write and those
// whose connection is gone (TH-40).
func (s *Store) PutSubscriptions(ctx context.Context, subs []store.Subscription) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sub := range subs {
		if _, ok := s.conns[sub.ConnectionID]; !ok {
			continue
		}
		old, ok := s.subs[sub.SubscriptionKey]
		if ok {
			s.afterPut(sub)
		}
		next, write := store.MergeSubscription(old, ok, sub)
		if !write {
			continue
		}
		s.subs[sub.SubscriptionKey] = next
		n++
	}
	return n, nil
}
