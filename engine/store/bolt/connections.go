package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

func getConn(tx *bbolt.Tx, id string) (store.Connection, error) {
	v := tx.Bucket(bucketConns).Get([]byte(id))
	if v == nil {
		return store.Connection{}, store.ErrNotFound
	}
	var rec connRecord
	if err := decode("connection", v, &rec); err != nil {
		return store.Connection{}, err
	}
	return fromConnRecord(id, rec), nil
}

// CreateConnection implements store.Store.
func (s *Store) CreateConnection(ctx context.Context, c store.Connection) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.update("create connection", func(tx *bbolt.Tx) error {
		return insertConn(tx, c)
	})
}

// GetConnection implements store.Store.
func (s *Store) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	if err := ctx.Err(); err != nil {
		return store.Connection{}, err
	}
	var c store.Connection
	err := s.view("get connection", func(tx *bbolt.Tx) error {
		var err error
		c, err = getConn(tx, id)
		return err
	})
	return c, err
}

// UpdateConnection implements store.Store: read, fn and write happen in
// one bbolt Update, which holds the database's single write lock, so
// concurrent updates cannot lose each other's writes. fn therefore must
// not do I/O or call the store (TH-43). The record stays under id whatever
// ID fn returns; an error from fn is returned as it is.
func (s *Store) UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var fnErr error
	err := s.update("update connection", func(tx *bbolt.Tx) error {
		old, err := getConn(tx, id)
		if err != nil {
			return err
		}
		var c store.Connection
		if c, fnErr = fn(old); fnErr != nil {
			return fnErr
		}
		c.ID = id
		val, err := encode("connection", toConnRecord(c))
		if err != nil {
			return err
		}
		// fn may change the identity; the index follows (UpsertConnection).
		if oldKey, newKey := identityKey(old), identityKey(c); !bytes.Equal(oldKey, newKey) {
			idx := tx.Bucket(bucketConnsByOwner)
			if err := idx.Delete(oldKey); err != nil {
				return err
			}
			if err := idx.Put(newKey, nil); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketConns).Put([]byte(id), val)
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// DeleteConnection implements store.Store: the connection, its tokens and
// its subscriptions, with their index entries, go in one Update (TH-40,
// TH-44).
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.update("delete connection", func(tx *bbolt.Tx) error {
		old, err := getConn(tx, id)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketConnsByOwner).Delete(identityKey(old)); err != nil {
			return err
		}
		if err := deleteConnTokens(tx, id); err != nil {
			return err
		}
		if err := deleteConnSubs(tx, id); err != nil {
			return err
		}
		var n int
		if err := deleteConnOutbox(tx, id, &n); err != nil && !errors.Is(err, errNoChange) {
			return err
		}
		if err := markErasePending(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketConns).Delete([]byte(id))
	})
	if err == nil {
		// The records are gone from the tree, not from the file: their
		// old pages are free but intact until the eraser rewrites them
		// (erase.go). It runs after the commit, outside any transaction.
		s.erase.request()
	}
	return err
}

// deleteConnTokens removes the tokens of connection id through the
// tokens_by_conn index, with their grant index entries (removeToken).
func deleteConnTokens(tx *bbolt.Tx, id string) error {
	idx := tx.Bucket(bucketTokensByConn)
	prefix := keyPrefix(id)
	// Keys are collected first: deleting under a cursor skips entries.
	var dead [][]byte
	c := idx.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		dead = append(dead, bytes.Clone(k))
	}
	for _, k := range dead {
		parts, err := splitKey(k, 2)
		if err != nil {
			return fmt.Errorf("tokens_by_conn %q: %w", k, err)
		}
		if _, err := removeToken(tx, parts[1]); err != nil {
			return err
		}
		if err := idx.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// deleteConnSubs removes the subscriptions of connection id. They are
// keyed provider first; rather than trust that each carries its
// connection's provider, it visits every provider present, seeking
// straight to (provider, id) and then past the provider, so the cost
// grows with the number of providers, not of subscriptions.
func deleteConnSubs(tx *bbolt.Tx, id string) error {
	subs := tx.Bucket(bucketSubs)
	var dead []store.SubscriptionKey
	c := subs.Cursor()
	for k, _ := c.First(); k != nil; {
		end := bytes.IndexByte(k, keySep)
		if end < 0 {
			return fmt.Errorf("subscriptions %q: %w", k, errBadKey)
		}
		provider := bytes.Clone(k[:end])
		prefix := append(append(bytes.Clone(provider), keySep), keyPrefix(id)...)
		for k, _ = c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			parts, err := splitKey(k, 3)
			if err != nil {
				return fmt.Errorf("subscriptions %q: %w", k, err)
			}
			dead = append(dead, store.SubscriptionKey{Provider: parts[0], ConnectionID: parts[1], URI: parts[2]})
		}
		// Every key of this provider starts with provider 00; the first
		// key after them is at or after provider 01.
		k, _ = c.Seek(append(provider, keySep+1))
	}
	for _, sk := range dead {
		if _, err := deleteSub(tx, sk); err != nil {
			return err
		}
	}
	return nil
}

// ListConnections implements store.Store, in id order.
func (s *Store) ListConnections(ctx context.Context, provider string) ([]store.Connection, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []store.Connection
	err := s.view("list connections", func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketConns).ForEach(func(k, v []byte) error {
			var rec connRecord
			if err := decode("connection", v, &rec); err != nil {
				return err
			}
			if provider == "" || rec.Provider == provider {
				out = append(out, fromConnRecord(string(k), rec))
			}
			return nil
		})
	})
	return out, err
}

// ListConnectionTokens implements store.Store through the tokens_by_conn
// index, so it costs the connection's tokens, not a scan of all.
func (s *Store) ListConnectionTokens(ctx context.Context, id string) ([]store.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []store.Token
	err := s.view("list connection tokens", func(tx *bbolt.Tx) error {
		prefix := keyPrefix(id)
		c := tx.Bucket(bucketTokensByConn).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			parts, err := splitKey(k, 2)
			if err != nil {
				return fmt.Errorf("tokens_by_conn %q: %w", k, err)
			}
			t, ok, err := readToken(tx, parts[1])
			if err != nil {
				return err
			}
			if ok {
				out = append(out, t)
			}
		}
		return nil
	})
	return out, err
}
