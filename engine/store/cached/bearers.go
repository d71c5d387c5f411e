package cached

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// bearerTTL is how long a looked-up bearer is trusted without asking the
// store again. Notion repeats its calls, so even a short TTL saves
// nearly every store read of a busy server (issue 2: the bbolt reads and
// JSON decoding of token and connection were a quarter of a warm unfurl's
// CPU). Every write made through this Store drops what it changes at
// once (invalidate.go), and so does every write made through another
// replica on the same database when the store has a change feed
// (changes.go); the TTL only bounds how long a change goes unnoticed
// should neither tell.
const bearerTTL = 3 * time.Second

// maxBearers bounds the cache; when it is full it is emptied, which costs
// one store read per live bearer.
const maxBearers = 10_000

// ErrConnectionGone is returned by LookupBearer for a token whose
// connection no longer exists (TH-26).
var ErrConnectionGone = errors.New("token of a deleted connection")

// Bearer is a looked-up access token with its connection.
type Bearer struct {
	// Token is the access token's record.
	Token store.Token
	// Conn is the token's connection; zero when the token has none.
	Conn store.Connection
}

// bearerEntry is what the cache keeps of a Bearer.
type bearerEntry struct {
	token store.Token
	// conn is the token's connection when it may be reused from the
	// cache: one without an upstream credential. A connection holding a
	// per-user credential is read on every request, so that a refreshed
	// (rotated) credential is never replaced by a stale copy (TH-37).
	conn    store.Connection
	hasConn bool
	expires time.Time
}

// bearerCache keeps looked-up bearers by token digest for bearerTTL. Only
// successful lookups are cached: an unknown token asks the store every
// time, so a token becomes valid the moment it is stored.
type bearerCache struct {
	mu sync.Mutex
	m  map[string]bearerEntry
	// epoch changes with every invalidation, so that a lookup that read
	// the store before an invalidation does not put what it read into
	// the cache after it.
	epoch uint64
	// off stops caching while the store's change feed is down: a change
	// made through another replica would go unnoticed (changes.go).
	off bool
}

func newBearerCache() *bearerCache { return &bearerCache{m: map[string]bearerEntry{}} }

// get returns the live entry for digest.
func (c *bearerCache) get(digest string, now time.Time) (bearerEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[digest]
	if !ok || c.off {
		return bearerEntry{}, false
	}
	if !now.Before(b.expires) {
		delete(c.m, digest)
		return bearerEntry{}, false
	}
	return b, true
}

// begin returns the epoch a lookup starts in, for put.
func (c *bearerCache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// put caches b under digest unless an invalidation happened since epoch.
func (c *bearerCache) put(digest string, b bearerEntry, epoch uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch || c.off {
		return
	}
	if len(c.m) >= maxBearers {
		clear(c.m)
	}
	b.expires = now.Add(bearerTTL)
	c.m[digest] = b
}

// forget drops every entry for which drop says so.
func (c *bearerCache) forget(drop func(bearerEntry) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	for d, b := range c.m {
		if drop(b) {
			delete(c.m, d)
		}
	}
}

// forgetToken drops one token.
func (c *bearerCache) forgetToken(digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	delete(c.m, digest)
}

// forgetConnection drops every token of a connection.
func (c *bearerCache) forgetConnection(id string) {
	c.forget(func(b bearerEntry) bool { return b.token.ConnectionID == id })
}

// forgetGrant drops every token of a grant.
func (c *bearerCache) forgetGrant(grantID string) {
	c.forget(func(b bearerEntry) bool { return b.token.GrantID == grantID })
}

// reset drops everything.
func (c *bearerCache) reset() {
	c.forget(func(bearerEntry) bool { return true })
}

// setOff drops everything and stops (off) or resumes caching.
func (c *bearerCache) setOff(off bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.off = off
	clear(c.m)
}

// LookupBearer finds the access token with digest and its connection, in
// the cache or else in the store; now is the caller's clock reading, for
// the cache's TTL. The result always carries the connection when the
// token has one. An unknown token is an error wrapping store.ErrNotFound;
// a token whose connection is gone is ErrConnectionGone (TH-26). Provider
// and expiry are the caller's to check.
func (s *Store) LookupBearer(ctx context.Context, digest string, now time.Time) (Bearer, error) {
	if b, ok := s.bearers.get(digest, now); ok {
		out := Bearer{Token: b.token, Conn: b.conn}
		if b.token.ConnectionID != "" && !b.hasConn {
			conn, err := s.readConnection(ctx, b.token.ConnectionID)
			if err != nil {
				return Bearer{}, err
			}
			out.Conn = conn
		}
		return out, nil
	}
	epoch := s.bearers.begin()
	t, err := s.Store.GetToken(ctx, store.KindAccess, digest)
	if err != nil {
		return Bearer{}, fmt.Errorf("look up token: %w", err)
	}
	e := bearerEntry{token: t}
	out := Bearer{Token: t}
	if t.ConnectionID != "" {
		conn, err := s.readConnection(ctx, t.ConnectionID)
		if err != nil {
			return Bearer{}, err
		}
		out.Conn = conn
		if len(conn.UpstreamCredential) == 0 {
			e.conn, e.hasConn = conn, true
		}
	}
	s.bearers.put(digest, e, epoch, now)
	return out, nil
}

// readConnection reads a bearer's connection from the store.
func (s *Store) readConnection(ctx context.Context, id string) (store.Connection, error) {
	conn, err := s.Store.GetConnection(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Connection{}, ErrConnectionGone
	case err != nil:
		return store.Connection{}, fmt.Errorf("look up connection: %w", err)
	}
	return conn, nil
}
