package memory

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

var _ store.Outbox = (*Store)(nil)

func copyItem(it store.OutboxItem) store.OutboxItem {
	it.Body = slices.Clone(it.Body)
	return it
}

// Enqueue implements store.Outbox.
func (s *Store) Enqueue(ctx context.Context, it store.OutboxItem) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.subs[it.SubscriptionKey]; !ok {
		return 0, store.ErrNotFound
	}
	if old, ok := s.outbox[it.SubscriptionKey]; ok && old.NextAt.After(it.NextAt) {
		it.NextAt = old.NextAt
	}
	s.outboxSeq++
	it.Seq, it.Attempts, it.LastError = s.outboxSeq, 0, ""
	s.outbox[it.SubscriptionKey] = copyItem(it)
	return it.Seq, nil
}

// GetOutboxItem implements store.Outbox.
func (s *Store) GetOutboxItem(ctx context.Context, k store.SubscriptionKey) (store.OutboxItem, error) {
	if err := ctx.Err(); err != nil {
		return store.OutboxItem{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.outbox[k]
	if !ok {
		return store.OutboxItem{}, store.ErrNotFound
	}
	return copyItem(it), nil
}

// DueOutbox implements store.Outbox, in the bbolt index's order.
func (s *Store) DueOutbox(ctx context.Context, now time.Time, limit int) ([]store.OutboxItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	var due []store.OutboxItem
	for _, it := range s.outbox {
		if !it.NextAt.After(now) {
			due = append(due, copyItem(it))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(due, func(a, b store.OutboxItem) int {
		return cmp.Or(a.NextAt.Compare(b.NextAt), strings.Compare(a.Provider, b.Provider),
			strings.Compare(a.URI, b.URI), strings.Compare(a.ConnectionID, b.ConnectionID))
	})
	if len(due) > limit {
		due = due[:max(limit, 0)]
	}
	return due, nil
}

// RescheduleOutbox implements store.Outbox.
func (s *Store) RescheduleOutbox(ctx context.Context, updates []store.OutboxUpdate) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, u := range updates {
		it, ok := s.outbox[u.SubscriptionKey]
		if !ok || it.Seq != u.Seq {
			continue
		}
		it.NextAt, it.Attempts, it.LastError = u.NextAt, u.Attempts, u.LastError
		s.outbox[u.SubscriptionKey] = it
		n++
	}
	return n, nil
}

// AckOutbox implements store.Outbox.
func (s *Store) AckOutbox(ctx context.Context, sent store.OutboxItem, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	removed := false
	if it, ok := s.outbox[sent.SubscriptionKey]; ok && it.Seq == sent.Seq {
		delete(s.outbox, sent.SubscriptionKey)
		removed = true
	}
	if sub, ok := s.subs[sent.SubscriptionKey]; ok && (removed || sub.AttrHash != sent.AttrHash) {
		if sub.AttrHash != sent.AttrHash {
			sub.AttrHash, sub.UpdatedAt = sent.AttrHash, at
		}
		sub.DeliveredAt = at
		s.subs[sent.SubscriptionKey] = sub
	}
	return nil
}

// DeleteOutboxItem implements store.Outbox.
func (s *Store) DeleteOutboxItem(ctx context.Context, k store.SubscriptionKey, seq uint64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.outbox[k]
	if !ok || (seq != 0 && it.Seq != seq) {
		return false, nil
	}
	delete(s.outbox, k)
	return true, nil
}

// DeleteOutboxByConnection implements store.Outbox.
func (s *Store) DeleteOutboxByConnection(ctx context.Context, connectionID string) (int, error) {
	return s.deleteOutboxWhere(ctx, func(k store.SubscriptionKey) bool { return k.ConnectionID == connectionID })
}

// DeleteOutboxByURI implements store.Outbox.
func (s *Store) DeleteOutboxByURI(ctx context.Context, provider, uri string) (int, error) {
	return s.deleteOutboxWhere(ctx, func(k store.SubscriptionKey) bool { return k.Provider == provider && k.URI == uri })
}

func (s *Store) deleteOutboxWhere(ctx context.Context, match func(store.SubscriptionKey) bool) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.outbox {
		if match(k) {
			delete(s.outbox, k)
			n++
		}
	}
	return n, nil
}

// OutboxDepth implements store.Outbox.
func (s *Store) OutboxDepth(ctx context.Context) (map[string]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k := range s.outbox {
		out[k.Provider]++
	}
	return out, nil
}
