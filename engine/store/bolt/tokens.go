package bolt

import (
	"context"

	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// CreateToken implements store.Store. A token that names a connection also
// gets an index entry, so DeleteConnection finds it without a scan.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	val, err := encode("token", toTokenRecord(t))
	if err != nil {
		return err
	}
	return s.update("create token", func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		if b.Get([]byte(t.Digest)) != nil {
			return store.ErrAlreadyExists
		}
		if err := b.Put([]byte(t.Digest), val); err != nil {
			return err
		}
		if t.ConnectionID == "" {
			return nil
		}
		return tx.Bucket(bucketTokensByConn).Put(compoundKey(t.ConnectionID, t.Digest), nil)
	})
}

// GetToken implements store.Store. A token of another kind is reported as
// missing, exactly like an unknown digest (TH-25).
func (s *Store) GetToken(ctx context.Context, kind store.TokenKind, digest string) (store.Token, error) {
	if err := ctx.Err(); err != nil {
		return store.Token{}, err
	}
	var rec tokenRecord
	err := s.view("get token", func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get([]byte(digest))
		if v == nil {
			return store.ErrNotFound
		}
		return decode("token", v, &rec)
	})
	if err != nil {
		return store.Token{}, err
	}
	if store.TokenKind(rec.Kind) != kind {
		return store.Token{}, store.ErrNotFound
	}
	return fromTokenRecord(digest, rec), nil
}

// DeleteToken implements store.Store, removing the index entry with the
// token: a stale entry would let DeleteConnection remove a later token
// that reuses the digest for another connection.
func (s *Store) DeleteToken(ctx context.Context, digest string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.update("delete token", func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		v := b.Get([]byte(digest))
		if v == nil {
			return store.ErrNotFound
		}
		var rec tokenRecord
		if err := decode("token", v, &rec); err != nil {
			return err
		}
		if rec.ConnectionID != "" {
			if err := tx.Bucket(bucketTokensByConn).Delete(compoundKey(rec.ConnectionID, digest)); err != nil {
				return err
			}
		}
		return b.Delete([]byte(digest))
	})
}
