package bolt

import (
	"bytes"
	"context"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

var _ store.SealedStore = (*Store)(nil)

// successorField is how tokenRecord's Successor appears in a stored value.
var successorField = []byte(`"successor":`)

// ListFlows implements store.SealedStore, in ID order (the bucket's key
// order). Flows are capped (TH-12), so the list stays short.
func (s *Store) ListFlows(ctx context.Context) ([]store.Flow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []store.Flow
	err := s.view("list flows", func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketFlows).ForEach(func(k, v []byte) error {
			var rec flowRecord
			if err := decode("flow", v, &rec); err != nil {
				return err
			}
			out = append(out, fromFlowRecord(string(k), rec))
			return nil
		})
	})
	return out, err
}

// ListSuccessors implements store.SealedStore, in digest order. Tokens
// have no index of successors, so it decodes every token once, in a read
// transaction that does not block writers; there are a few per
// connection, far fewer than subscriptions.
func (s *Store) ListSuccessors(ctx context.Context) ([]store.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []store.Token
	err := s.view("list successors", func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			// The field is omitted while empty (records.go), so a record
			// without its name holds no successor and is not decoded:
			// access tokens, the bulk of the bucket, cost a byte scan.
			if !bytes.Contains(v, successorField) {
				return nil
			}
			var rec tokenRecord
			if err := decode("token", v, &rec); err != nil {
				return err
			}
			if len(rec.Successor) > 0 {
				out = append(out, fromTokenRecord(string(k), rec))
			}
			return nil
		})
	})
	return out, err
}

// UpdateSuccessor implements store.SealedStore in one Update. Only the
// Successor changes, so the token's index entries stay as they are.
func (s *Store) UpdateSuccessor(ctx context.Context, digest string, fn func(store.Token) ([]byte, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var fnErr error
	err := s.update("update successor", func(tx *bbolt.Tx) error {
		t, ok, err := readToken(tx, digest)
		if err != nil {
			return err
		}
		if !ok {
			return store.ErrNotFound
		}
		var next []byte
		if next, fnErr = fn(t); fnErr != nil {
			return fnErr
		}
		t.Successor = slices.Clone(next)
		return writeToken(tx, t)
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}
