package server

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
// CPU). It is also the longest a revocation the server is not told about
// can go unnoticed; everything the server does through its own store is
// told (invalidatingStore), so in practice that is a change made by
// another process or another package's store handle.
const bearerTTL = 3 * time.Second

// maxBearers bounds the cache; when it is full it is emptied, which costs
// one store read per live bearer.
const maxBearers = 10_000

// bearer is a looked-up access token with its connection.
type bearer struct {
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
// time, so a token becomes valid the moment it is stored. Every check
// that depends on the request (provider of the route, expiry) still runs
// on every request.
type bearerCache struct {
	mu sync.Mutex
	m  map[string]bearer
	// epoch changes with every invalidation, so that a lookup that read
	// the store before an invalidation does not put what it read into
	// the cache after it.
	epoch uint64
}

func newBearerCache() *bearerCache { return &bearerCache{m: map[string]bearer{}} }

// get returns the live entry for digest.
func (c *bearerCache) get(digest string, now time.Time) (bearer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[digest]
	if !ok {
		return bearer{}, false
	}
	if !now.Before(b.expires) {
		delete(c.m, digest)
		return bearer{}, false
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
func (c *bearerCache) put(digest string, b bearer, epoch uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		return
	}
	if len(c.m) >= maxBearers {
		clear(c.m)
	}
	b.expires = now.Add(bearerTTL)
	c.m[digest] = b
}

// forget drops every entry for which drop says so.
func (c *bearerCache) forget(drop func(bearer) bool) {
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
	c.forget(func(b bearer) bool { return b.token.ConnectionID == id })
}

// forgetGrant drops every token of a grant.
func (c *bearerCache) forgetGrant(grantID string) {
	c.forget(func(b bearer) bool { return b.token.GrantID == grantID })
}

// reset drops everything.
func (c *bearerCache) reset() {
	c.forget(func(bearer) bool { return true })
}

// lookupBearer finds the access token with digest and its connection, in
// the cache or else in the store. The result always carries the
// connection when the token has one; a token whose connection is gone is
// refused (TH-26). Provider and expiry are the caller's to check.
func (s *Server) lookupBearer(ctx context.Context, digest string, now time.Time) (bearer, error) {
	if b, ok := s.bearers.get(digest, now); ok {
		if b.token.ConnectionID != "" && !b.hasConn {
			conn, err := s.readConnection(ctx, b.token.ConnectionID)
			if err != nil {
				return bearer{}, err
			}
			b.conn, b.hasConn = conn, true
		}
		return b, nil
	}
	epoch := s.bearers.begin()
	t, err := s.cfg.Store.GetToken(ctx, store.KindAccess, digest)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return bearer{}, &bearerError{presented: true, reason: "unknown token"}
	case err != nil:
		return bearer{}, fmt.Errorf("look up token: %w", err)
	}
	b := bearer{token: t}
	if t.ConnectionID != "" {
		conn, err := s.readConnection(ctx, t.ConnectionID)
		if err != nil {
			return bearer{}, err
		}
		b.conn, b.hasConn = conn, true
	}
	cached := b
	if len(cached.conn.UpstreamCredential) > 0 {
		cached.conn, cached.hasConn = store.Connection{}, false
	}
	s.bearers.put(digest, cached, epoch, now)
	return b, nil
}

// readConnection reads a bearer's connection from the store.
func (s *Server) readConnection(ctx context.Context, id string) (store.Connection, error) {
	conn, err := s.cfg.Store.GetConnection(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Connection{}, &bearerError{presented: true, reason: "token of a deleted connection"}
	case err != nil:
		return store.Connection{}, fmt.Errorf("look up connection: %w", err)
	}
	return conn, nil
}
