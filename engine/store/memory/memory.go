package memory

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/unfurld/unfurld/engine/store"
)

// Store keeps records in maps under one mutex. Records are copied in and
// out, as a real store would, so callers cannot alias stored data.
type Store struct {
	mu    sync.Mutex
	toks  map[string]store.Token
	conns map[string]store.Connection
	subs  map[store.SubscriptionKey]store.Subscription
	flows map[string]store.Flow
	// outbox and outboxSeq back store.Outbox (outbox.go).
	outbox    map[store.SubscriptionKey]store.OutboxItem
	outboxSeq uint64
	// pollLeases and pendLeases back store.Schedule (schedule.go); the
	// schedule's times are fields of the subscriptions.
	pollLeases map[store.SubscriptionKey]lease
	pendLeases map[store.SubscriptionKey]lease
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		toks:  map[string]store.Token{},
		conns: map[string]store.Connection{},
		subs:  map[store.SubscriptionKey]store.Subscription{},
		flows: map[string]store.Flow{},

		outbox: map[store.SubscriptionKey]store.OutboxItem{},

		pollLeases: map[store.SubscriptionKey]lease{},
		pendLeases: map[store.SubscriptionKey]lease{},
	}
}

func copyConn(c store.Connection) store.Connection {
	c.NotionToken = slices.Clone(c.NotionToken)
	c.UpstreamCredential = slices.Clone(c.UpstreamCredential)
	c.Failures = slices.Clone(c.Failures)
	return c
}

// Probe implements store.Store: memory always accepts a write, so it only
// honours the context.
func (s *Store) Probe(ctx context.Context) error { return ctx.Err() }

// CreateToken implements store.Store.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.toks[t.Digest]; ok {
		return store.ErrAlreadyExists
	}
	s.toks[t.Digest] = copyToken(t)
	return nil
}

// GetToken implements store.Store.
func (s *Store) GetToken(ctx context.Context, kind store.TokenKind, digest string) (store.Token, error) {
	if err := ctx.Err(); err != nil {
		return store.Token{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.toks[digest]
	if !ok || t.Kind != kind {
		return store.Token{}, store.ErrNotFound
	}
	return copyToken(t), nil
}

// DeleteToken implements store.Store.
func (s *Store) DeleteToken(ctx context.Context, digest string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.toks[digest]; !ok {
		return store.ErrNotFound
	}
	delete(s.toks, digest)
	return nil
}

// CreateConnection implements store.Store.
func (s *Store) CreateConnection(ctx context.Context, c store.Connection) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c.ID]; ok {
		return store.ErrAlreadyExists
	}
	s.conns[c.ID] = copyConn(c)
	return nil
}

// GetConnection implements store.Store.
func (s *Store) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	if err := ctx.Err(); err != nil {
		return store.Connection{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[id]
	if !ok {
		return store.Connection{}, store.ErrNotFound
	}
	return copyConn(c), nil
}

// UpdateConnection implements store.Store. fn runs under the lock, as a
// bbolt Update runs in its one write transaction, so it must not call the
// store. The record stays under id whatever ID fn returns.
func (s *Store) UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[id]
	if !ok {
		return store.ErrNotFound
	}
	n, err := fn(copyConn(c))
	if err != nil {
		return err
	}
	n.ID = id
	s.conns[id] = copyConn(n)
	return nil
}

// DeleteConnection implements store.Store: the connection, its tokens and
// its subscriptions (whatever their provider) go together (TH-40).
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[id]; !ok {
		return store.ErrNotFound
	}
	delete(s.conns, id)
	for d, t := range s.toks {
		if t.ConnectionID == id {
			delete(s.toks, d)
		}
	}
	for k := range s.subs {
		if k.ConnectionID == id {
			delete(s.subs, k)
			s.dropSchedule(k)
		}
	}
	for k := range s.outbox {
		if k.ConnectionID == id {
			delete(s.outbox, k)
		}
	}
	return nil
}

// ListConnectionTokens implements store.Store, in digest order.
func (s *Store) ListConnectionTokens(ctx context.Context, id string) ([]store.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Token
	for _, t := range s.toks {
		if t.ConnectionID == id {
			out = append(out, copyToken(t))
		}
	}
	slices.SortFunc(out, func(a, b store.Token) int { return strings.Compare(a.Digest, b.Digest) })
	return out, nil
}

// ListConnections implements store.Store, in id order.
func (s *Store) ListConnections(ctx context.Context, provider string) ([]store.Connection, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Connection
	for _, c := range s.conns {
		if provider == "" || c.Provider == provider {
			out = append(out, copyConn(c))
		}
	}
	slices.SortFunc(out, func(a, b store.Connection) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// PutSubscription implements store.Store.
func (s *Store) PutSubscription(ctx context.Context, sub store.Subscription) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.subs[sub.SubscriptionKey]
	if ok {
		s.afterPut(sub)
	}
	next, write := store.MergeSubscription(old, ok, sub)
	if !write {
		return false, nil
	}
	s.subs[sub.SubscriptionKey] = next
	return true, nil
}

// GetSubscription implements store.Store.
func (s *Store) GetSubscription(ctx context.Context, k store.SubscriptionKey) (store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return store.Subscription{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.subs[k]
	if !ok {
		return store.Subscription{}, store.ErrNotFound
	}
	return sub, nil
}

// DeleteSubscription implements store.Store.
func (s *Store) DeleteSubscription(ctx context.Context, k store.SubscriptionKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.subs[k]; !ok {
		return store.ErrNotFound
	}
	delete(s.subs, k)
	s.dropSchedule(k)
	return nil
}

// DeleteSubscriptionsByURI implements store.Store.
func (s *Store) DeleteSubscriptionsByURI(ctx context.Context, provider, uri string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.subs {
		if k.Provider == provider && k.URI == uri {
			delete(s.subs, k)
			s.dropSchedule(k)
			n++
		}
	}
	return n, nil
}

// ListSubscriptions implements store.Store, in (provider, connection,
// uri) order like the bbolt keys. fn runs without the lock held, so it may
// call the store.
func (s *Store) ListSubscriptions(ctx context.Context, provider string, fn func(store.Subscription) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	var list []store.Subscription
	for k, sub := range s.subs {
		if provider == "" || k.Provider == provider {
			list = append(list, sub)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b store.Subscription) int {
		return cmp.Or(strings.Compare(a.Provider, b.Provider), strings.Compare(a.ConnectionID, b.ConnectionID),
			strings.Compare(a.URI, b.URI))
	})
	for _, sub := range list {
		if err := fn(sub); err != nil {
			return err
		}
	}
	return nil
}

// Close implements store.Store.
func (s *Store) Close() error { return nil }
