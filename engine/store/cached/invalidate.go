package cached

import (
	"context"
	"errors"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// The methods below are the writes of store.Store that change what the
// bearer cache or the recorder hold. Each tells them, so that no caller
// has to remember to: a revoked token or deleted connection is refused
// from the next request on (TH-26), not after bearerTTL, and a
// subscription write still queued can never land after the delete of its
// key (protocol 5.6, TH-39, TH-40). Every other method is the wrapped
// store's.

// DeleteToken implements store.Store.
func (s *Store) DeleteToken(ctx context.Context, digest string) error {
	err := s.Store.DeleteToken(ctx, digest)
	s.bearers.forgetToken(digest)
	return err
}

// DeleteConnection implements store.Store. The connection's queued
// subscription writes are dropped first; the store would skip them
// anyway (PutSubscriptions ignores unknown connections).
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	s.subs.forget(func(k store.SubscriptionKey) bool { return k.ConnectionID == id })
	err := s.Store.DeleteConnection(ctx, id)
	s.bearers.forgetConnection(id)
	return err
}

// UpdateConnection implements store.Store: a refreshed credential, a
// reconnect mark or a changed status is seen by the next lookup.
func (s *Store) UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error {
	err := s.Store.UpdateConnection(ctx, id, fn)
	s.bearers.forgetConnection(id)
	return err
}

// UpsertConnection implements store.Store.
func (s *Store) UpsertConnection(ctx context.Context, c store.Connection) (store.Connection, bool, error) {
	got, created, err := s.Store.UpsertConnection(ctx, c)
	s.bearers.forgetConnection(c.ID)
	if got.ID != "" && got.ID != c.ID {
		s.bearers.forgetConnection(got.ID)
	}
	return got, created, err
}

// RevokeGrant implements store.Store.
func (s *Store) RevokeGrant(ctx context.Context, grantID string) (int, error) {
	n, err := s.Store.RevokeGrant(ctx, grantID)
	s.bearers.forgetGrant(grantID)
	return n, err
}

// ConsumeToken implements store.Store. A replay revokes the whole grant
// inside the store (TH-16, TH-23); which grant is not always returned, so
// every cached bearer goes.
func (s *Store) ConsumeToken(ctx context.Context, c store.Consume) ([]store.Token, store.Token, error) {
	issued, old, err := s.Store.ConsumeToken(ctx, c)
	if errors.Is(err, store.ErrReplayed) {
		s.bearers.reset()
	}
	return issued, old, err
}

// Sweep implements store.Store. Swept tokens had expired, which every
// lookup checks, but the cache forgets them anyway so that it never
// answers for a record the store no longer has.
func (s *Store) Sweep(ctx context.Context, now time.Time, retainConsumed time.Duration) (store.SweepResult, error) {
	res, err := s.Store.Sweep(ctx, now, retainConsumed)
	if res.Tokens > 0 {
		s.bearers.reset()
	}
	return res, err
}

// PutSubscription implements store.Store. An unfurl's put may change the
// stored AttrHash, so the recorder forgets the hash it remembers.
func (s *Store) PutSubscription(ctx context.Context, sub store.Subscription) (bool, error) {
	wrote, err := s.Store.PutSubscription(ctx, sub)
	s.subs.forgetKeys(sub.SubscriptionKey)
	return wrote, err
}

// PutSubscriptions implements store.Store, like PutSubscription.
func (s *Store) PutSubscriptions(ctx context.Context, subs []store.Subscription) (int, error) {
	n, err := s.Store.PutSubscriptions(ctx, subs)
	keys := make([]store.SubscriptionKey, len(subs))
	for i, sub := range subs {
		keys[i] = sub.SubscriptionKey
	}
	s.subs.forgetKeys(keys...)
	return n, err
}

// AckOutbox implements store.Store. A delivery sets the subscription's
// AttrHash to what Notion was sent, so the hash the recorder remembers
// from the last unfurl is stale: the next unfurl must write again.
func (s *Store) AckOutbox(ctx context.Context, sent store.OutboxItem, at time.Time) error {
	err := s.Store.AckOutbox(ctx, sent, at)
	s.subs.forgetKeys(sent.SubscriptionKey)
	return err
}

// DeleteSubscription implements store.Store. The recorder drops the key
// first, after any commit in progress, so the delete is the last word
// (TH-39).
func (s *Store) DeleteSubscription(ctx context.Context, k store.SubscriptionKey) error {
	s.subs.forget(func(q store.SubscriptionKey) bool { return q == k })
	return s.Store.DeleteSubscription(ctx, k)
}

// DeleteSubscriptionsByURI implements store.Store, like DeleteSubscription.
func (s *Store) DeleteSubscriptionsByURI(ctx context.Context, provider, uri string) (int, error) {
	s.subs.forget(func(q store.SubscriptionKey) bool { return q.Provider == provider && q.URI == uri })
	return s.Store.DeleteSubscriptionsByURI(ctx, provider, uri)
}
