package memory

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// The memory store keeps no indexes: it is for tests, and a scan under
// the one mutex is as atomic as the bbolt implementation's indexed
// transaction. Its answers must still match bbolt's exactly, ties included.

var _ store.GrantStore = (*Store)(nil)

func copyFlow(f store.Flow) store.Flow {
	f.Data = slices.Clone(f.Data)
	return f
}

func copyToken(t store.Token) store.Token {
	t.Successor = slices.Clone(t.Successor)
	return t
}

// flowExpired mirrors store.Token.Expired: a zero ExpiresAt never expires.
func flowExpired(f store.Flow, now time.Time) bool {
	return !f.ExpiresAt.IsZero() && !now.Before(f.ExpiresAt)
}

// CreateFlow implements store.GrantStore, reading the clock from
// f.CreatedAt. Expired flows neither count against maxLive nor hold their
// ID (TH-12), and a successful create drops them. A failed one changes
// nothing, like bbolt's aborted transaction. A maxLive of zero or less
// admits nothing: a cap left unset fails closed.
func (s *Store) CreateFlow(ctx context.Context, f store.Flow, maxLive int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := f.CreatedAt
	if old, ok := s.flows[f.ID]; ok && !flowExpired(old, now) {
		return store.ErrAlreadyExists
	}
	live := 0
	for _, old := range s.flows {
		if !flowExpired(old, now) {
			live++
		}
	}
	if live >= maxLive {
		return store.ErrTooMany
	}
	for id, old := range s.flows {
		if flowExpired(old, now) {
			delete(s.flows, id)
		}
	}
	s.flows[f.ID] = copyFlow(f)
	return nil
}

// liveFlow returns the flow id, deleting it when it has expired. The
// caller holds the lock.
func (s *Store) liveFlow(id string, now time.Time) (store.Flow, error) {
	f, ok := s.flows[id]
	if !ok {
		return store.Flow{}, store.ErrNotFound
	}
	if flowExpired(f, now) {
		delete(s.flows, id)
		return store.Flow{}, store.ErrExpired
	}
	return copyFlow(f), nil
}

// GetFlow implements store.GrantStore.
func (s *Store) GetFlow(ctx context.Context, id string, now time.Time) (store.Flow, error) {
	if err := ctx.Err(); err != nil {
		return store.Flow{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.liveFlow(id, now)
}

// UpdateFlow implements store.GrantStore. fn runs under the lock; the
// flow stays under id whatever ID fn returns.
func (s *Store) UpdateFlow(ctx context.Context, id string, now time.Time, fn func(store.Flow) (store.Flow, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.liveFlow(id, now)
	if err != nil {
		return err
	}
	n, err := fn(f)
	if err != nil {
		return err
	}
	n.ID = id
	s.flows[id] = copyFlow(n)
	return nil
}

// DeleteFlow implements store.GrantStore.
func (s *Store) DeleteFlow(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.flows[id]
	delete(s.flows, id)
	return ok, nil
}

// ConsumeToken implements store.GrantStore: the whole check-and-consume
// runs under the lock, so parallel redemptions see one winner (TH-16,
// TH-24). On ErrReplayed the returned Token is the replayed one, for the
// caller's audit log.
func (s *Store) ConsumeToken(ctx context.Context, c store.Consume) ([]store.Token, store.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, store.Token{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.toks[c.Digest]
	if !ok || old.Kind != c.Kind || old.Provider != c.Provider {
		return nil, store.Token{}, store.ErrNotFound
	}
	if !old.ConsumedAt.IsZero() {
		if inGrace(old, c) {
			return nil, copyToken(old), store.ErrInGrace
		}
		s.revoke(old)
		return nil, copyToken(old), store.ErrReplayed
	}
	if old.Expired(c.Now) {
		delete(s.toks, c.Digest)
		return nil, store.Token{}, store.ErrExpired
	}
	issue, successor, err := c.Issue(copyToken(old))
	if err != nil {
		return nil, store.Token{}, err
	}
	// Check every new digest before writing any, so a clash leaves the
	// store as it was, like an aborted transaction.
	seen := map[string]bool{c.Digest: true}
	for _, t := range issue {
		if _, taken := s.toks[t.Digest]; taken || seen[t.Digest] {
			return nil, store.Token{}, store.ErrAlreadyExists
		}
		seen[t.Digest] = true
	}
	old.ConsumedAt = c.Now
	old.Successor = slices.Clone(successor)
	s.toks[c.Digest] = old
	out := make([]store.Token, 0, len(issue))
	for _, t := range issue {
		s.toks[t.Digest] = copyToken(t)
		out = append(out, copyToken(t))
	}
	return out, copyToken(old), nil
}

// inGrace reports whether a consumed token is still within c's grace
// window. Zero grace (codes) has no window at all, even for a clock
// that stepped back.
func inGrace(t store.Token, c store.Consume) bool {
	return c.Grace > 0 && c.Now.Before(t.ConsumedAt.Add(c.Grace))
}

// revoke deletes t and every token of its grant. The caller holds the
// lock.
func (s *Store) revoke(t store.Token) int {
	n := 0
	if _, ok := s.toks[t.Digest]; ok {
		delete(s.toks, t.Digest)
		n++
	}
	if t.GrantID == "" {
		return n
	}
	for d, o := range s.toks {
		if o.GrantID == t.GrantID {
			delete(s.toks, d)
			n++
		}
	}
	return n
}

// RevokeGrant implements store.GrantStore. The empty grant ID names no
// grant, so it revokes nothing.
func (s *Store) RevokeGrant(ctx context.Context, grantID string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if grantID == "" {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for d, t := range s.toks {
		if t.GrantID == grantID {
			delete(s.toks, d)
			n++
		}
	}
	return n, nil
}

// UpsertConnection implements store.GrantStore. Should several connections
// share the identity (CreateConnection does not prevent it), the one with
// the smallest ID is replaced, as in the bbolt index; so is the first one
// without an owner when c has one and none matches (the adoption rule of
// store.GrantStore).
func (s *Store) UpsertConnection(ctx context.Context, c store.Connection) (store.Connection, bool, error) {
	if err := ctx.Err(); err != nil {
		return store.Connection{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, found := s.firstOfIdentity(c, c.Owner)
	if !found && c.Owner != "" {
		id, found = s.firstOfIdentity(c, "")
	}
	if !found {
		if _, ok := s.conns[c.ID]; ok {
			return store.Connection{}, false, store.ErrAlreadyExists
		}
		s.conns[c.ID] = copyConn(c)
		return copyConn(c), true, nil
	}
	c.ID, c.CreatedAt = id, s.conns[id].CreatedAt
	s.conns[id] = copyConn(c)
	return copyConn(c), false, nil
}

// firstOfIdentity returns the smallest ID among the connections of c's
// provider, account key and workspace whose owner is owner.
func (s *Store) firstOfIdentity(c store.Connection, owner string) (string, bool) {
	var match []string
	for id, o := range s.conns {
		if o.Provider == c.Provider && o.AccountKey == c.AccountKey && o.WorkspaceID == c.WorkspaceID && o.Owner == owner {
			match = append(match, id)
		}
	}
	if len(match) == 0 {
		return "", false
	}
	return slices.MinFunc(match, strings.Compare), true
}

// Sweep implements store.GrantStore.
func (s *Store) Sweep(ctx context.Context, now time.Time, retainConsumed time.Duration) (store.SweepResult, error) {
	if err := ctx.Err(); err != nil {
		return store.SweepResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var res store.SweepResult
	for id, f := range s.flows {
		if flowExpired(f, now) {
			delete(s.flows, id)
			res.Flows++
		}
	}
	for d, t := range s.toks {
		if sweepToken(t, now, retainConsumed) {
			delete(s.toks, d)
			res.Tokens++
		}
	}
	return res, nil
}

// sweepToken is Sweep's rule: a live token goes when it expires, a
// consumed marker retainConsumed after its consumption, whatever its
// expiry (TH-17, TH-23).
func sweepToken(t store.Token, now time.Time, retainConsumed time.Duration) bool {
	if t.ConsumedAt.IsZero() {
		return t.Expired(now)
	}
	return !now.Before(t.ConsumedAt.Add(retainConsumed))
}
