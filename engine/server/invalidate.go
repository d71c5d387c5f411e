package server

import (
	"context"
	"errors"

	"github.com/unfurld/unfurld/engine/store"
)

// invalidatingStore is the store as the server's handlers see it: every
// change that can revoke a bearer or delete a subscription also tells the
// server's in-memory state, so that no handler has to remember to. A
// revoked token or deleted connection is refused from the next request on
// (TH-26), not after bearerTTL, and a subscription write still waiting in
// the recorder can never land after the delete of its key (protocol 5.6,
// TH-39). Reads and every other method go straight to the store.
//
// Changes made through another handle on the store (the connect service
// refreshing or marking a connection) are not seen here; see bearerTTL
// and bearer.conn for why they need not be, and Server.ForgetConnection
// for telling the server anyway.
type invalidatingStore struct {
	store.Store
	bearers *bearerCache
	subs    *subscriptionRecorder
}

// DeleteToken implements store.Store.
func (s invalidatingStore) DeleteToken(ctx context.Context, digest string) error {
	err := s.Store.DeleteToken(ctx, digest)
	s.bearers.forgetToken(digest)
	return err
}

// DeleteConnection implements store.Store. Writes of the connection's
// subscriptions still pending are dropped by the store itself
// (PutSubscriptions skips unknown connections).
func (s invalidatingStore) DeleteConnection(ctx context.Context, id string) error {
	err := s.Store.DeleteConnection(ctx, id)
	s.bearers.forgetConnection(id)
	s.subs.forget(func(k store.SubscriptionKey) bool { return k.ConnectionID == id })
	return err
}

// UpdateConnection implements store.Store.
func (s invalidatingStore) UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error {
	err := s.Store.UpdateConnection(ctx, id, fn)
	s.bearers.forgetConnection(id)
	return err
}

// UpsertConnection implements store.Store.
func (s invalidatingStore) UpsertConnection(ctx context.Context, c store.Connection) (store.Connection, bool, error) {
	got, created, err := s.Store.UpsertConnection(ctx, c)
	s.bearers.forgetConnection(c.ID)
	if got.ID != "" && got.ID != c.ID {
		s.bearers.forgetConnection(got.ID)
	}
	return got, created, err
}

// RevokeGrant implements store.Store.
func (s invalidatingStore) RevokeGrant(ctx context.Context, grantID string) (int, error) {
	n, err := s.Store.RevokeGrant(ctx, grantID)
	s.bearers.forgetGrant(grantID)
	return n, err
}

// ConsumeToken implements store.Store. A replay revokes the whole grant
// inside the store (TH-16, TH-23); which grant is not always returned, so
// every cached bearer goes.
func (s invalidatingStore) ConsumeToken(ctx context.Context, c store.Consume) ([]store.Token, store.Token, error) {
	issued, old, err := s.Store.ConsumeToken(ctx, c)
	if errors.Is(err, store.ErrReplayed) {
		s.bearers.reset()
	}
	return issued, old, err
}

// DeleteSubscription implements store.Store. The recorder forgets the key
// first, after any commit in progress, so the delete is the last word.
func (s invalidatingStore) DeleteSubscription(ctx context.Context, k store.SubscriptionKey) error {
	s.subs.forget(func(q store.SubscriptionKey) bool { return q == k })
	return s.Store.DeleteSubscription(ctx, k)
}

// DeleteSubscriptionsByURI implements store.Store, like DeleteSubscription.
func (s invalidatingStore) DeleteSubscriptionsByURI(ctx context.Context, provider, uri string) (int, error) {
	s.subs.forget(func(q store.SubscriptionKey) bool { return q.Provider == provider && q.URI == uri })
	return s.Store.DeleteSubscriptionsByURI(ctx, provider, uri)
}
