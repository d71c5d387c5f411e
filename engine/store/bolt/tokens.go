package bolt

import (
	"context"

	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// CreateToken implements store.Store. The token gets its index entries
// with it (insertToken).
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.update("create token", func(tx *bbolt.Tx) error {
		return insertToken(tx, t)
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

// DeleteToken implements store.Store, removing the index entries with the
// token (removeToken).
func (s *Store) DeleteToken(ctx context.Context, digest string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.update("delete token", func(tx *bbolt.Tx) error {
		removed, err := removeToken(tx, digest)
		if err == nil && !removed {
			err = store.ErrNotFound
		}
		return err
	})
}
