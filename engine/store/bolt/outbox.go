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

// Outbox layout (see also the table at the top of bolt.go):
//
//	outbox        <provider> 00 <uri> 00 <connID>              -> outboxRecord
//	outbox_by_due <nextAt> 00 <provider> 00 <uri> 00 <connID>  -> empty
//
// The URI comes before the connection so that DELETE of a URI (protocol
// 5.6) is one prefix scan; a connection's items are found by a walk of
// the keys, which only a disconnect or a Notion 401 needs. nextAt uses
// expiryLayout (flows.go): fixed width, so the due items are a prefix of
// outbox_by_due and DueOutbox costs the number of due items, not of all
// items. Every method is one Update, and bbolt fsyncs every commit, so an
// acknowledged Enqueue survives kill -9 (F1).

var _ store.Outbox = (*Store)(nil)

type outboxRecord struct {
	V          int       `json:"v"`
	Seq        uint64    `json:"seq"`
	Body       []byte    `json:"body,omitempty"`
	AttrHash   string    `json:"attr_hash,omitempty"`
	EnqueuedAt time.Time `json:"enqueued_at"`
	NextAt     time.Time `json:"next_at"`
	Attempts   int       `json:"attempts,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
}

func (r *outboxRecord) version() int { return r.V }

func outboxKey(k store.SubscriptionKey) []byte {
	return compoundKey(k.Provider, k.URI, k.ConnectionID)
}

func outboxDueKey(it store.OutboxItem) []byte {
	return compoundKey(it.NextAt.UTC().Format(expiryLayout), it.Provider, it.URI, it.ConnectionID)
}

func toOutboxRecord(it store.OutboxItem) outboxRecord {
	return outboxRecord{
		V: schemaVersion, Seq: it.Seq, Body: it.Body, AttrHash: it.AttrHash,
		EnqueuedAt: it.EnqueuedAt.UTC(), NextAt: it.NextAt.UTC(),
		Attempts: it.Attempts, LastError: it.LastError,
	}
}

func fromOutboxRecord(k store.SubscriptionKey, r outboxRecord) store.OutboxItem {
	return store.OutboxItem{
		SubscriptionKey: k, Seq: r.Seq, Body: r.Body, AttrHash: r.AttrHash,
		EnqueuedAt: r.EnqueuedAt, NextAt: r.NextAt, Attempts: r.Attempts, LastError: r.LastError,
	}
}

// readOutbox returns the item of k, decoded (copied out of the map).
func readOutbox(tx *bbolt.Tx, k store.SubscriptionKey) (store.OutboxItem, bool, error) {
	v := tx.Bucket(bucketOutbox).Get(outboxKey(k))
	if v == nil {
		return store.OutboxItem{}, false, nil
	}
	var rec outboxRecord
	if err := decode("outbox item", v, &rec); err != nil {
		return store.OutboxItem{}, false, err
	}
	return fromOutboxRecord(k, rec), true, nil
}

// putOutbox writes it with its due entry; old is the item it replaces
// (nil for none), whose due entry goes.
func putOutbox(tx *bbolt.Tx, it store.OutboxItem, old *store.OutboxItem) error {
	val, err := encode("outbox item", toOutboxRecord(it))
	if err != nil {
		return err
	}
	due := tx.Bucket(bucketOutboxByDue)
	if old != nil {
		if err := due.Delete(outboxDueKey(*old)); err != nil {
			return err
		}
	}
	if err := due.Put(outboxDueKey(it), nil); err != nil {
		return err
	}
	return tx.Bucket(bucketOutbox).Put(outboxKey(it.SubscriptionKey), val)
}

// removeOutbox deletes it with its due entry.
func removeOutbox(tx *bbolt.Tx, it store.OutboxItem) error {
	if err := tx.Bucket(bucketOutboxByDue).Delete(outboxDueKey(it)); err != nil {
		return err
	}
	return tx.Bucket(bucketOutbox).Delete(outboxKey(it.SubscriptionKey))
}

// updateIfChanged is update for methods that may find nothing to do: fn
// returns errNoChange then, which rolls the transaction back instead of
// committing (and fsyncing) an empty one.
func (s *Store) updateIfChanged(op string, fn func(tx *bbolt.Tx) error) error {
	if err := s.update(op, fn); err != nil && !errors.Is(err, errNoChange) {
		return err
	}
	return nil
}

// Enqueue implements store.Outbox.
func (s *Store) Enqueue(ctx context.Context, it store.OutboxItem) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var seq uint64
	err := s.update("enqueue", func(tx *bbolt.Tx) error {
		// Checked in the same transaction as the write, so a deletion
		// that commits first leaves nothing of its URI behind (TH-40).
		if tx.Bucket(bucketSubs).Get(subKey(it.SubscriptionKey)) == nil {
			return store.ErrNotFound
		}
		old, ok, err := readOutbox(tx, it.SubscriptionKey)
		if err != nil {
			return err
		}
		var replaced *store.OutboxItem
		if ok {
			replaced = &old
			if old.NextAt.After(it.NextAt) {
				it.NextAt = old.NextAt
			}
		}
		if seq, err = tx.Bucket(bucketOutbox).NextSequence(); err != nil {
			return err
		}
		it.Seq, it.Attempts, it.LastError = seq, 0, ""
		return putOutbox(tx, it, replaced)
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// GetOutboxItem implements store.Outbox.
func (s *Store) GetOutboxItem(ctx context.Context, k store.SubscriptionKey) (store.OutboxItem, error) {
	if err := ctx.Err(); err != nil {
		return store.OutboxItem{}, err
	}
	var out store.OutboxItem
	err := s.view("get outbox item", func(tx *bbolt.Tx) error {
		it, ok, err := readOutbox(tx, k)
		if err != nil {
			return err
		}
		if !ok {
			return store.ErrNotFound
		}
		out = it
		return nil
	})
	return out, err
}

// DueOutbox implements store.Outbox by walking outbox_by_due from its
// start up to now.
func (s *Store) DueOutbox(ctx context.Context, now time.Time, limit int) ([]store.OutboxItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []store.OutboxItem
	horizon := []byte(now.UTC().Format(expiryLayout))
	err := s.view("due outbox", func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketOutboxByDue).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			parts, err := splitKey(k, 4)
			if err != nil {
				return fmt.Errorf("outbox_by_due %q: %w", k, err)
			}
			// Due means NextAt <= now; the fixed-width times compare
			// as strings.
			if parts[0] > string(horizon) {
				break
			}
			sk := store.SubscriptionKey{Provider: parts[1], URI: parts[2], ConnectionID: parts[3]}
			it, ok, err := readOutbox(tx, sk)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("outbox_by_due %q: no item", k)
			}
			out = append(out, it)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RescheduleOutbox implements store.Outbox.
func (s *Store) RescheduleOutbox(ctx context.Context, updates []store.OutboxUpdate) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.updateIfChanged("reschedule outbox", func(tx *bbolt.Tx) error {
		n = 0
		for _, u := range updates {
			old, ok, err := readOutbox(tx, u.SubscriptionKey)
			if err != nil {
				return err
			}
			if !ok || old.Seq != u.Seq {
				continue
			}
			it := old
			it.NextAt, it.Attempts, it.LastError = u.NextAt, u.Attempts, u.LastError
			if err := putOutbox(tx, it, &old); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return errNoChange
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// AckOutbox implements store.Outbox.
func (s *Store) AckOutbox(ctx context.Context, sent store.OutboxItem, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.updateIfChanged("ack outbox", func(tx *bbolt.Tx) error {
		changed := false
		it, ok, err := readOutbox(tx, sent.SubscriptionKey)
		if err != nil {
			return err
		}
		if ok && it.Seq == sent.Seq {
			if err := removeOutbox(tx, it); err != nil {
				return err
			}
			changed = true
		}
		key := subKey(sent.SubscriptionKey)
		w := subWriteOf(tx)
		old, rec, ok, err := getSub(w.subs, w.sc.marks, key, sent.SubscriptionKey)
		if err != nil {
			return err
		}
		if ok && (changed || old.AttrHash != sent.AttrHash) {
			sub := old
			if sub.AttrHash != sent.AttrHash {
				sub.AttrHash, sub.UpdatedAt = sent.AttrHash, at
			}
			sub.DeliveredAt = at
			if _, err := w.writeSub(key, subURIKey(sent.SubscriptionKey), rec, ok, old, sub); err != nil {
				return err
			}
			changed = true
		}
		if !changed {
			return errNoChange
		}
		return nil
	})
}

// DeleteOutboxItem implements store.Outbox.
func (s *Store) DeleteOutboxItem(ctx context.Context, k store.SubscriptionKey, seq uint64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	deleted := false
	err := s.updateIfChanged("delete outbox item", func(tx *bbolt.Tx) error {
		it, ok, err := readOutbox(tx, k)
		if err != nil {
			return err
		}
		if !ok || (seq != 0 && it.Seq != seq) {
			return errNoChange
		}
		deleted = true
		return removeOutbox(tx, it)
	})
	if err != nil {
		return false, err
	}
	return deleted, nil
}

// DeleteOutboxByConnection implements store.Outbox with a walk of the
// outbox keys, which are not ordered by connection.
func (s *Store) DeleteOutboxByConnection(ctx context.Context, connectionID string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.updateIfChanged("delete outbox by connection", func(tx *bbolt.Tx) error {
		n = 0
		return deleteConnOutbox(tx, connectionID, &n)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// deleteConnOutbox removes every item of a connection inside tx; it is
// also part of DeleteConnection's single transaction (TH-40). It returns
// errNoChange when there was none.
func deleteConnOutbox(tx *bbolt.Tx, connectionID string, n *int) error {
	// Keys are collected first: deleting under a cursor skips entries.
	var dead []store.SubscriptionKey
	c := tx.Bucket(bucketOutbox).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		parts, err := splitKey(k, 3)
		if err != nil {
			return fmt.Errorf("outbox %q: %w", k, err)
		}
		if parts[2] == connectionID {
			dead = append(dead, store.SubscriptionKey{Provider: parts[0], URI: parts[1], ConnectionID: parts[2]})
		}
	}
	return removeOutboxKeys(tx, dead, n)
}

// DeleteOutboxByURI implements store.Outbox with one prefix scan.
func (s *Store) DeleteOutboxByURI(ctx context.Context, provider, uri string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.updateIfChanged("delete outbox by uri", func(tx *bbolt.Tx) error {
		n = 0
		prefix := keyPrefix(provider, uri)
		var dead []store.SubscriptionKey
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			parts, err := splitKey(k, 3)
			if err != nil {
				return fmt.Errorf("outbox %q: %w", k, err)
			}
			dead = append(dead, store.SubscriptionKey{Provider: parts[0], URI: parts[1], ConnectionID: parts[2]})
		}
		return removeOutboxKeys(tx, dead, &n)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// removeOutboxKeys deletes the items of keys, counting them in n, and
// returns errNoChange when there were none.
func removeOutboxKeys(tx *bbolt.Tx, keys []store.SubscriptionKey, n *int) error {
	if len(keys) == 0 {
		return errNoChange
	}
	for _, k := range keys {
		it, ok, err := readOutbox(tx, k)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := removeOutbox(tx, it); err != nil {
			return err
		}
		*n++
	}
	return nil
}

// OutboxDepth implements store.Outbox by counting keys; values are not
// decoded.
func (s *Store) OutboxDepth(ctx context.Context) (map[string]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[string]int{}
	err := s.view("outbox depth", func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			end := bytes.IndexByte(k, keySep)
			if end < 0 {
				return fmt.Errorf("outbox %q: %w", k, errBadKey)
			}
			p, err := unescape(k[:end])
			if err != nil {
				return fmt.Errorf("outbox %q: %w", k, err)
			}
			out[p]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
