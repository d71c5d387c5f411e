package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// expiryLayout writes a time in flows_by_expiry keys: fixed width (for
// years 0-9999, which are all JSON can encode anyway), so the keys sort by
// time and the expired flows are a prefix of the bucket.
const expiryLayout = "2006-01-02T15:04:05.000000000Z"

// errNoChange rolls back an Update that found nothing to write: bbolt
// commits, and fsyncs, even a transaction that changed nothing.
var errNoChange = errors.New("no change")

type flowRecord struct {
	V         int       `json:"v"`
	Provider  string    `json:"provider"`
	Data      []byte    `json:"data,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func (r *flowRecord) version() int { return r.V }

func toFlowRecord(f store.Flow) flowRecord {
	return flowRecord{
		V: schemaVersion, Provider: f.Provider, Data: f.Data,
		CreatedAt: f.CreatedAt.UTC(), ExpiresAt: f.ExpiresAt.UTC(),
	}
}

func fromFlowRecord(id string, r flowRecord) store.Flow {
	return store.Flow{ID: id, Provider: r.Provider, Data: r.Data, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}
}

// flowExpired mirrors store.Token.Expired: a zero ExpiresAt never expires.
func flowExpired(f store.Flow, now time.Time) bool {
	return !f.ExpiresAt.IsZero() && !now.Before(f.ExpiresAt)
}

// flowExpiryKey is f's flows_by_expiry key, nil for a flow that never
// expires: it has no entry, so no sweep ever reaches it.
func flowExpiryKey(f store.Flow) []byte {
	if f.ExpiresAt.IsZero() {
		return nil
	}
	return compoundKey(f.ExpiresAt.UTC().Format(expiryLayout), f.ID)
}

func readFlow(tx *bbolt.Tx, id string) (store.Flow, bool, error) {
	v := tx.Bucket(bucketFlows).Get([]byte(id))
	if v == nil {
		return store.Flow{}, false, nil
	}
	var rec flowRecord
	if err := decode("flow", v, &rec); err != nil {
		return store.Flow{}, false, err
	}
	return fromFlowRecord(id, rec), true, nil
}

// putFlow writes f and its expiry entry; old is the record it replaces
// (zero for a new one), whose entry goes if the expiry changed.
func putFlow(tx *bbolt.Tx, f, old store.Flow) error {
	val, err := encode("flow", toFlowRecord(f))
	if err != nil {
		return err
	}
	idx := tx.Bucket(bucketFlowsByExpiry)
	if k := flowExpiryKey(old); k != nil {
		if err := idx.Delete(k); err != nil {
			return err
		}
	}
	if k := flowExpiryKey(f); k != nil {
		if err := idx.Put(k, nil); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketFlows).Put([]byte(f.ID), val)
}

// removeFlow deletes a flow with its expiry entry.
func removeFlow(tx *bbolt.Tx, f store.Flow) error {
	if k := flowExpiryKey(f); k != nil {
		if err := tx.Bucket(bucketFlowsByExpiry).Delete(k); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketFlows).Delete([]byte(f.ID))
}

// purgeExpiredFlows deletes every flow expired at now, walking
// flows_by_expiry from its start, so the cost is the number of expired
// flows, not of all flows (TH-12).
func purgeExpiredFlows(tx *bbolt.Tx, now time.Time) (int, error) {
	limit := []byte(now.UTC().Format(expiryLayout))
	idx := tx.Bucket(bucketFlowsByExpiry)
	// Keys are collected first: deleting under a cursor skips entries.
	var dead [][]byte
	c := idx.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		end := bytes.IndexByte(k, keySep)
		if end < 0 {
			return 0, fmt.Errorf("flows_by_expiry %q: %w", k, errBadKey)
		}
		// Expired means ExpiresAt <= now, as in flowExpired.
		if bytes.Compare(k[:end], limit) > 0 {
			break
		}
		dead = append(dead, bytes.Clone(k))
	}
	n := 0
	flows := tx.Bucket(bucketFlows)
	for _, k := range dead {
		parts, err := splitKey(k, 2)
		if err != nil {
			return 0, fmt.Errorf("flows_by_expiry %q: %w", k, err)
		}
		if flows.Get([]byte(parts[1])) != nil {
			n++
		}
		if err := flows.Delete([]byte(parts[1])); err != nil {
			return 0, err
		}
		if err := idx.Delete(k); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// CreateFlow implements store.GrantStore, reading the clock from
// f.CreatedAt. Expired flows are purged first, so they neither count
// against maxLive nor hold their ID (TH-12); the count then stops at
// maxLive, so the cap bounds the work. A failed create rolls the purge
// back with it. A maxLive of zero or less admits nothing: a cap left
// unset fails closed.
func (s *Store) CreateFlow(ctx context.Context, f store.Flow, maxLive int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.update("create flow", func(tx *bbolt.Tx) error {
		if _, err := purgeExpiredFlows(tx, f.CreatedAt); err != nil {
			return err
		}
		flows := tx.Bucket(bucketFlows)
		if flows.Get([]byte(f.ID)) != nil {
			return store.ErrAlreadyExists
		}
		live := 0
		c := flows.Cursor()
		for k, _ := c.First(); k != nil && live < maxLive; k, _ = c.Next() {
			live++
		}
		if live >= maxLive {
			return store.ErrTooMany
		}
		return putFlow(tx, f, store.Flow{})
	})
}

// GetFlow implements store.GrantStore. It reads in a read transaction
// and writes only to delete an expired flow.
func (s *Store) GetFlow(ctx context.Context, id string, now time.Time) (store.Flow, error) {
	if err := ctx.Err(); err != nil {
		return store.Flow{}, err
	}
	var f store.Flow
	err := s.view("get flow", func(tx *bbolt.Tx) error {
		var ok bool
		var err error
		f, ok, err = readFlow(tx, id)
		if err == nil && !ok {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.Flow{}, err
	}
	if !flowExpired(f, now) {
		return f, nil
	}
	err = s.update("get flow", func(tx *bbolt.Tx) error {
		cur, ok, err := readFlow(tx, id)
		if err != nil || !ok || !flowExpired(cur, now) {
			return err
		}
		return removeFlow(tx, cur)
	})
	if err != nil {
		return store.Flow{}, err
	}
	return store.Flow{}, fmt.Errorf("get flow: %w", store.ErrExpired)
}

// UpdateFlow implements store.GrantStore in one Update; fn must not do
// I/O (TH-43). The flow stays under id whatever ID fn returns; an error
// from fn is returned as it is.
func (s *Store) UpdateFlow(ctx context.Context, id string, now time.Time, fn func(store.Flow) (store.Flow, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var fnErr error
	expired := false
	err := s.update("update flow", func(tx *bbolt.Tx) error {
		old, ok, err := readFlow(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return store.ErrNotFound
		}
		if flowExpired(old, now) {
			// Committed: the expired flow goes even though the call fails.
			expired = true
			return removeFlow(tx, old)
		}
		var f store.Flow
		if f, fnErr = fn(old); fnErr != nil {
			return fnErr
		}
		f.ID = id
		return putFlow(tx, f, old)
	})
	switch {
	case fnErr != nil:
		return fnErr
	case err != nil:
		return err
	case expired:
		return fmt.Errorf("update flow: %w", store.ErrExpired)
	}
	return nil
}

// DeleteFlow implements store.GrantStore.
func (s *Store) DeleteFlow(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		f, ok, err := readFlow(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return errNoChange
		}
		return removeFlow(tx, f)
	})
	switch {
	case errors.Is(err, errNoChange):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("delete flow: %w", err)
	}
	return true, nil
}
