package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

var _ store.GrantStore = (*Store)(nil)

// tokenGrantKey is t's tokens_by_grant key, nil for a token of no grant:
// the empty grant ID is not a grant, and indexing it would tie unrelated
// tokens together.
func tokenGrantKey(grantID, digest string) []byte {
	if grantID == "" {
		return nil
	}
	return compoundKey(grantID, digest)
}

// identityKey is c's conns_by_owner key. The ID is part of the key, not
// the value, so connections that share an identity (CreateConnection does
// not prevent it) each keep their entry, and the index stays right
// whichever of them is deleted.
func identityKey(c store.Connection) []byte {
	return compoundKey(c.Provider, c.AccountKey, c.WorkspaceID, c.Owner, c.ID)
}

// firstOfIdentity returns the connection with the smallest ID among those
// of identity (provider, account key, workspace, owner), if there is one.
func firstOfIdentity(tx *bbolt.Tx, provider, accountKey, workspaceID, owner string) (store.Connection, bool, error) {
	prefix := keyPrefix(provider, accountKey, workspaceID, owner)
	k, _ := tx.Bucket(bucketConnsByOwner).Cursor().Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return store.Connection{}, false, nil
	}
	parts, err := splitKey(k, 5)
	if err != nil {
		return store.Connection{}, false, fmt.Errorf("conns_by_owner %q: %w", k, err)
	}
	c, err := getConn(tx, parts[4])
	if err != nil {
		return store.Connection{}, false, fmt.Errorf("conns_by_owner %q: %w", k, err)
	}
	return c, true, nil
}

func readToken(tx *bbolt.Tx, digest string) (store.Token, bool, error) {
	v := tx.Bucket(bucketTokens).Get([]byte(digest))
	if v == nil {
		return store.Token{}, false, nil
	}
	var rec tokenRecord
	if err := decode("token", v, &rec); err != nil {
		return store.Token{}, false, err
	}
	return fromTokenRecord(digest, rec), true, nil
}

// writeToken stores t's record over whatever is under its digest; the
// index entries are the caller's business.
func writeToken(tx *bbolt.Tx, t store.Token) error {
	val, err := encode("token", toTokenRecord(t))
	if err != nil {
		return err
	}
	return tx.Bucket(bucketTokens).Put([]byte(t.Digest), val)
}

// insertToken creates t with its index entries: by connection, so
// DeleteConnection finds it without a scan (TH-40), and by grant, so a
// replay revokes the grant without one (TH-16, TH-23).
func insertToken(tx *bbolt.Tx, t store.Token) error {
	if tx.Bucket(bucketTokens).Get([]byte(t.Digest)) != nil {
		return store.ErrAlreadyExists
	}
	if err := writeToken(tx, t); err != nil {
		return err
	}
	if t.ConnectionID != "" {
		if err := tx.Bucket(bucketTokensByConn).Put(compoundKey(t.ConnectionID, t.Digest), nil); err != nil {
			return err
		}
	}
	if k := tokenGrantKey(t.GrantID, t.Digest); k != nil {
		return tx.Bucket(bucketTokensByGrant).Put(k, nil)
	}
	return nil
}

// removeToken deletes a token with its index entries and reports whether
// it existed. A stale entry would let a later token that reuses the
// digest be deleted with a connection or grant it does not belong to.
func removeToken(tx *bbolt.Tx, digest string) (bool, error) {
	t, ok, err := readToken(tx, digest)
	if err != nil || !ok {
		return false, err
	}
	if t.ConnectionID != "" {
		if err := tx.Bucket(bucketTokensByConn).Delete(compoundKey(t.ConnectionID, digest)); err != nil {
			return false, err
		}
	}
	if k := tokenGrantKey(t.GrantID, digest); k != nil {
		if err := tx.Bucket(bucketTokensByGrant).Delete(k); err != nil {
			return false, err
		}
	}
	return true, tx.Bucket(bucketTokens).Delete([]byte(digest))
}

// revokeGrant deletes every token of a grant through tokens_by_grant.
func revokeGrant(tx *bbolt.Tx, grantID string) (int, error) {
	if grantID == "" {
		return 0, nil
	}
	idx := tx.Bucket(bucketTokensByGrant)
	prefix := keyPrefix(grantID)
	// Keys are collected first: deleting under a cursor skips entries.
	var dead [][]byte
	c := idx.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		dead = append(dead, bytes.Clone(k))
	}
	n := 0
	for _, k := range dead {
		parts, err := splitKey(k, 2)
		if err != nil {
			return 0, fmt.Errorf("tokens_by_grant %q: %w", k, err)
		}
		removed, err := removeToken(tx, parts[1])
		if err != nil {
			return 0, err
		}
		if removed {
			n++
		}
		// Gone already if the token was there; harmless otherwise.
		if err := idx.Delete(k); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// inGrace reports whether a consumed token is still within c's grace
// window. Zero grace (codes) has no window at all, even for a clock that
// stepped back.
func inGrace(t store.Token, c store.Consume) bool {
	return c.Grace > 0 && c.Now.Before(t.ConsumedAt.Add(c.Grace))
}

// ConsumeToken implements store.GrantStore. The check, Issue and every
// write happen in one bbolt Update, which holds the single write lock, so
// of parallel redemptions exactly one finds the token live (TH-16, TH-24)
// and a crash leaves either all of it or none (TH-44). Answers that write
// nothing (ErrNotFound, ErrInGrace, an Issue error) roll back, which
// costs no fsync. On ErrReplayed the returned Token is the replayed one,
// for the caller's audit log. An error from Issue is returned as it is.
func (s *Store) ConsumeToken(ctx context.Context, c store.Consume) ([]store.Token, store.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, store.Token{}, err
	}
	var (
		issued  []store.Token
		tok     store.Token
		outcome error // ErrReplayed or ErrExpired, after a commit
		fnErr   error
	)
	err := s.update("consume token", func(tx *bbolt.Tx) error {
		old, ok, err := readToken(tx, c.Digest)
		if err != nil {
			return err
		}
		// Another kind or provider is reported like an unknown digest
		// (TH-25, TH-18).
		if !ok || old.Kind != c.Kind || old.Provider != c.Provider {
			return store.ErrNotFound
		}
		if !old.ConsumedAt.IsZero() {
			tok = old
			if inGrace(old, c) {
				return store.ErrInGrace
			}
			// The token itself goes even if it has no grant, so a replay
			// never finds it again.
			if _, err := removeToken(tx, old.Digest); err != nil {
				return err
			}
			if _, err := revokeGrant(tx, old.GrantID); err != nil {
				return err
			}
			outcome = store.ErrReplayed
			return nil
		}
		if old.Expired(c.Now) {
			if _, err := removeToken(tx, old.Digest); err != nil {
				return err
			}
			outcome = store.ErrExpired
			return nil
		}
		var (
			next      []store.Token
			successor []byte
		)
		if next, successor, fnErr = c.Issue(old); fnErr != nil {
			return fnErr
		}
		old.ConsumedAt = c.Now
		old.Successor = slices.Clone(successor)
		if err := writeToken(tx, old); err != nil {
			return err
		}
		for _, t := range next {
			if err := insertToken(tx, t); err != nil {
				return fmt.Errorf("issue token: %w", err)
			}
			t.Successor = slices.Clone(t.Successor)
			issued = append(issued, t)
		}
		tok = old
		return nil
	})
	switch {
	case fnErr != nil:
		return nil, store.Token{}, fnErr
	case errors.Is(err, store.ErrInGrace):
		return nil, tok, err
	case err != nil:
		return nil, store.Token{}, err
	case errors.Is(outcome, store.ErrReplayed):
		return nil, tok, fmt.Errorf("consume token: %w", outcome)
	case outcome != nil:
		return nil, store.Token{}, fmt.Errorf("consume token: %w", outcome)
	}
	return issued, tok, nil
}

// RevokeGrant implements store.GrantStore in one Update (TH-44). The
// empty grant ID names no grant, so it revokes nothing.
func (s *Store) RevokeGrant(ctx context.Context, grantID string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.update("revoke grant", func(tx *bbolt.Tx) error {
		var err error
		n, err = revokeGrant(tx, grantID)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// UpsertConnection implements store.GrantStore through conns_by_owner.
// Should several connections share the identity, the one with the
// smallest ID (the first index key) is replaced; so is the first one
// without an owner when c has one and none matches (the adoption rule of
// store.GrantStore).
func (s *Store) UpsertConnection(ctx context.Context, c store.Connection) (store.Connection, bool, error) {
	if err := ctx.Err(); err != nil {
		return store.Connection{}, false, err
	}
	created := false
	err := s.update("upsert connection", func(tx *bbolt.Tx) error {
		old, found, err := firstOfIdentity(tx, c.Provider, c.AccountKey, c.WorkspaceID, c.Owner)
		if err == nil && !found && c.Owner != "" {
			old, found, err = firstOfIdentity(tx, c.Provider, c.AccountKey, c.WorkspaceID, "")
		}
		if err != nil {
			return err
		}
		if !found {
			if err := insertConn(tx, c); err != nil {
				return err
			}
			created = true
			return nil
		}
		c.ID, c.CreatedAt = old.ID, old.CreatedAt
		val, err := encode("connection", toConnRecord(c))
		if err != nil {
			return err
		}
		// An adopted record moves to its owner's index entry.
		if oldKey, newKey := identityKey(old), identityKey(c); !bytes.Equal(oldKey, newKey) {
			idx := tx.Bucket(bucketConnsByOwner)
			if err := idx.Delete(oldKey); err != nil {
				return err
			}
			if err := idx.Put(newKey, nil); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketConns).Put([]byte(c.ID), val)
	})
	if err != nil {
		return store.Connection{}, false, err
	}
	c.NotionToken, c.UpstreamCredential = slices.Clone(c.NotionToken), slices.Clone(c.UpstreamCredential)
	return c, created, nil
}

// insertConn creates c with its identity entry; ErrAlreadyExists if its ID
// is taken.
func insertConn(tx *bbolt.Tx, c store.Connection) error {
	b := tx.Bucket(bucketConns)
	if b.Get([]byte(c.ID)) != nil {
		return store.ErrAlreadyExists
	}
	val, err := encode("connection", toConnRecord(c))
	if err != nil {
		return err
	}
	if err := b.Put([]byte(c.ID), val); err != nil {
		return err
	}
	return tx.Bucket(bucketConnsByOwner).Put(identityKey(c), nil)
}

// sweepToken is Sweep's rule: a live token goes when it expires, a
// consumed marker retainConsumed after its consumption, whatever its
// expiry, so that a late replay still revokes its grant (TH-17, TH-23).
func sweepToken(t store.Token, now time.Time, retainConsumed time.Duration) bool {
	if t.ConsumedAt.IsZero() {
		return t.Expired(now)
	}
	return !now.Before(t.ConsumedAt.Add(retainConsumed))
}

// Sweep implements store.GrantStore. Tokens have no expiry index, so it
// finds them with a scan in a read transaction, which does not block
// writers, then deletes them in one Update, checking each again since it
// may have changed in between. Flows go through flows_by_expiry.
func (s *Store) Sweep(ctx context.Context, now time.Time, retainConsumed time.Duration) (store.SweepResult, error) {
	if err := ctx.Err(); err != nil {
		return store.SweepResult{}, err
	}
	var dead []string
	err := s.view("sweep", func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			var rec tokenRecord
			if err := decode("token", v, &rec); err != nil {
				return err
			}
			if sweepToken(fromTokenRecord("", rec), now, retainConsumed) {
				dead = append(dead, string(k))
			}
			return nil
		})
	})
	if err != nil {
		return store.SweepResult{}, err
	}
	var res store.SweepResult
	err = s.update("sweep", func(tx *bbolt.Tx) error {
		res = store.SweepResult{}
		var err error
		if res.Flows, err = purgeExpiredFlows(tx, now); err != nil {
			return err
		}
		for _, d := range dead {
			t, ok, err := readToken(tx, d)
			if err != nil {
				return err
			}
			if !ok || !sweepToken(t, now, retainConsumed) {
				continue
			}
			if _, err := removeToken(tx, d); err != nil {
				return err
			}
			res.Tokens++
		}
		return nil
	})
	if err != nil {
		return store.SweepResult{}, err
	}
	return res, nil
}

// backfill fills the index buckets Open has just created in a file
// written before they existed, in Open's transaction: without it, the
// tokens and connections already stored would be invisible to
// RevokeGrant and UpsertConnection.
func backfill(tx *bbolt.Tx, created [][]byte) error {
	for _, name := range created {
		var err error
		switch {
		case bytes.Equal(name, bucketTokensByGrant):
			err = tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
				var rec tokenRecord
				if err := decode("token", v, &rec); err != nil {
					return err
				}
				if gk := tokenGrantKey(rec.GrantID, string(k)); gk != nil {
					return tx.Bucket(bucketTokensByGrant).Put(gk, nil)
				}
				return nil
			})
		case bytes.Equal(name, bucketConnsByOwner):
			err = tx.Bucket(bucketConns).ForEach(func(k, v []byte) error {
				var rec connRecord
				if err := decode("connection", v, &rec); err != nil {
					return err
				}
				return tx.Bucket(bucketConnsByOwner).Put(identityKey(fromConnRecord(string(k), rec)), nil)
			})
		}
		if err != nil {
			return fmt.Errorf("fill %s: %w", name, err)
		}
	}
	return nil
}
