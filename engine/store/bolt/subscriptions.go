package bolt

import (
	"bytes"
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// listBatch is how many subscriptions ListSubscriptions decodes per read
// transaction. fn runs between transactions, so a slow fn neither pins old
// pages nor blocks a remap, may call the store itself, and memory stays
// bounded however many subscriptions there are.
const listBatch = 256

func subKey(k store.SubscriptionKey) []byte {
	return compoundKey(k.Provider, k.ConnectionID, k.URI)
}

func subURIKey(k store.SubscriptionKey) []byte {
	return compoundKey(k.Provider, k.URI, k.ConnectionID)
}

// readSub reads subscription k as the store shows it (getSub).
func readSub(tx *bbolt.Tx, k store.SubscriptionKey) (store.Subscription, subRecord, bool, error) {
	return getSub(tx.Bucket(bucketSubs), tx.Bucket(bucketMarks), subKey(k), k)
}

// mergeSub applies store.MergeSubscription to the stored state of sub's
// key: the state to write, and whether to write it. touch is true when
// the put writes nothing but the schedule must still change: a refresh's
// record releases the lease on the subscription's pending mark
// (store.Schedule.ClaimPending).
func mergeSub(tx *bbolt.Tx, sub store.Subscription) (next store.Subscription, write, touch bool, err error) {
	next, write, _, _, ok, err := mergeSubIn(tx.Bucket(bucketSubs), tx.Bucket(bucketMarks), subKey(sub.SubscriptionKey), sub)
	if err != nil || write || !ok {
		return next, write, false, err
	}
	return next, false, pendingLeased(tx.Bucket(bucketPending), sub, next), nil
}

// pendingLeased reports whether put records a refresh of old (the stored
// state, as merged) whose pending mark is leased: the put must then
// release the lease even if it writes nothing else.
func pendingLeased(pending *bbolt.Bucket, put, old store.Subscription) bool {
	return old.Pending() && !put.Refresh.IsZero() && !put.Pending() &&
		len(pending.Get(pendingKey(put.SubscriptionKey, old.Refresh.At))) > 0
}

// PutSubscription implements store.Store. Unfurls call it on every
// request, and every bbolt commit is fsync'd and serialized behind the one
// writer: about 2,300-2,900 commits a second on the machines measured
// (BenchmarkPutSubscriptionChanged, ~350 µs each), shared by all writers.
// Read transactions run in parallel and an unchanged put costs ~2 µs
// (BenchmarkPutSubscriptionUnchanged). So it compares in a read
// transaction first and commits only a new or changed record, comparing
// again inside the Update because another writer may have come first.
func (s *Store) PutSubscription(ctx context.Context, sub store.Subscription) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	write, touch := false, false
	err := s.view("put subscription", func(tx *bbolt.Tx) error {
		var err error
		_, write, touch, err = mergeSub(tx, sub)
		return err
	})
	if err != nil || (!write && !touch) {
		return false, err
	}
	wrote := false
	err = s.update("put subscription", func(tx *bbolt.Tx) error {
		key := subKey(sub.SubscriptionKey)
		w := subWriteOf(tx)
		next, write, old, rec, ok, err := mergeSubIn(w.subs, w.sc.marks, key, sub)
		if err != nil {
			return err
		}
		if ok {
			if _, err := w.sc.releasePending(sub.SubscriptionKey, old, sub); err != nil {
				return err
			}
		}
		if !write {
			return nil
		}
		wrote, err = w.writeSub(key, subURIKey(sub.SubscriptionKey), rec, ok, old, next)
		return err
	})
	return wrote, err
}

// PutSubscriptions implements store.Store. The server's subscription
// recorder calls it with everything new since its last batch, so that a
// second of unfurls of new URIs costs one or a few fsync'd commits
// instead of one each (issue 2: about 2,300 commits a second is all this
// machine does). Like PutSubscription it filters in a read transaction
// first, so a batch of nothing new costs no commit, and compares again
// inside the Update, where it also checks that the connection still
// exists: DeleteConnection may have run since the batch was queued
// (TH-40).
//
// An unfurl answers only once its record is committed, so commits are
// small (a dozen records, not hundreds) and the per-record work shows in
// the cost of a cold unfurl. So both keys of every record are built once,
// into one buffer sized up front, and used by both transactions (bbolt
// wants a key to stay valid until the commit, hence no reuse); a stored
// record is decoded only when there is one, and once per transaction;
// and the buckets are looked up once per transaction.
func (s *Store) PutSubscriptions(ctx context.Context, subs []store.Subscription) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	keys := newSubKeys(subs)
	var todo []int // indexes into subs and keys
	if len(subs) >= putAllAtOnce {
		// A batch this large is a webhook's marks or a busy second's new
		// links, which nearly all write: a read pass first would decode
		// every record twice for the rare batch it saves a commit.
		todo = make([]int, len(subs))
		for i := range todo {
			todo[i] = i
		}
		return s.putSubscriptionsAt(ctx, subs, keys, todo)
	}
	err := s.view("put subscriptions", func(tx *bbolt.Tx) error {
		todo = todo[:0]
		b, marks, pending := tx.Bucket(bucketSubs), tx.Bucket(bucketMarks), tx.Bucket(bucketPending)
		for i, sub := range subs {
			next, write, _, _, ok, err := mergeSubIn(b, marks, keys.sub(i), sub)
			if err != nil {
				return err
			}
			if write || (ok && pendingLeased(pending, sub, next)) {
				todo = append(todo, i)
			}
		}
		return nil
	})
	if err != nil || len(todo) == 0 {
		return 0, err
	}
	return s.putSubscriptionsAt(ctx, subs, keys, todo)
}

// putAllAtOnce is the batch size from which PutSubscriptions skips its
// read pass (which spares a commit when nothing would be written) and
// merges every record in the write transaction alone.
const putAllAtOnce = 256

// putSubscriptionsAt is PutSubscriptions' write pass over the records
// todo names.
func (s *Store) putSubscriptionsAt(ctx context.Context, subs []store.Subscription, keys subKeys, todo []int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.update("put subscriptions", func(tx *bbolt.Tx) error {
		n = 0
		conns, w := tx.Bucket(bucketConns), subWriteOf(tx)
		for _, i := range todo {
			sub := subs[i]
			if conns.Get([]byte(sub.ConnectionID)) == nil {
				continue
			}
			next, write, old, rec, ok, err := mergeSubIn(w.subs, w.sc.marks, keys.sub(i), sub)
			if err != nil {
				return err
			}
			if ok {
				if _, err := w.sc.releasePending(sub.SubscriptionKey, old, sub); err != nil {
					return err
				}
			}
			if !write {
				continue
			}
			wrote, err := w.writeSub(keys.sub(i), keys.uri(i), rec, ok, old, next)
			if err != nil {
				return err
			}
			if wrote {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// mergeSubIn is mergeSub within the subscriptions and marks buckets, with
// the key already encoded; it also returns the stored state and record
// and whether there was one, for the caller's write. An absent key costs
// no decoding.
func mergeSubIn(subs, marks *bbolt.Bucket, key []byte, sub store.Subscription) (next store.Subscription, write bool, old store.Subscription, rec subRecord, ok bool, err error) {
	old, rec, ok, err = getSub(subs, marks, key, sub.SubscriptionKey)
	if err != nil {
		return store.Subscription{}, false, store.Subscription{}, subRecord{}, false, err
	}
	next, write = store.MergeSubscription(old, ok, sub)
	return next, write, old, rec, ok, nil
}

// subKeys holds the subscriptions key and the subs_by_uri key of each
// record of a batch, in one buffer allocated once.
type subKeys struct {
	buf  []byte
	ends []int // ends[2i] ends the key of record i, ends[2i+1] its index key
}

func newSubKeys(subs []store.Subscription) subKeys {
	size := 0
	for _, s := range subs {
		// Escaping at most doubles a part; two separators per key.
		size += 2 * (2*(len(s.Provider)+len(s.ConnectionID)+len(s.URI)) + 2)
	}
	k := subKeys{buf: make([]byte, 0, size), ends: make([]int, 0, 2*len(subs))}
	for _, s := range subs {
		k.buf = appendCompoundKey(k.buf, s.Provider, s.ConnectionID, s.URI)
		k.ends = append(k.ends, len(k.buf))
		k.buf = appendCompoundKey(k.buf, s.Provider, s.URI, s.ConnectionID)
		k.ends = append(k.ends, len(k.buf))
	}
	return k
}

// sub is subKey of record i; the slice is capped, so an append to it
// cannot overwrite the next key.
func (k subKeys) sub(i int) []byte {
	start := 0
	if i > 0 {
		start = k.ends[2*i-1]
	}
	return k.buf[start:k.ends[2*i]:k.ends[2*i]]
}

// uri is subURIKey of record i.
func (k subKeys) uri(i int) []byte {
	return k.buf[k.ends[2*i]:k.ends[2*i+1]:k.ends[2*i+1]]
}

// GetSubscription implements store.Store.
func (s *Store) GetSubscription(ctx context.Context, k store.SubscriptionKey) (store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return store.Subscription{}, err
	}
	var out store.Subscription
	err := s.view("get subscription", func(tx *bbolt.Tx) error {
		sub, _, ok, err := readSub(tx, k)
		if err != nil {
			return err
		}
		if !ok {
			return store.ErrNotFound
		}
		out = sub
		out.NextPollAt = nextOf(tx.Bucket(bucketPolls), subKey(k))
		return nil
	})
	return out, err
}

// DeleteSubscription implements store.Store, with its index entry.
func (s *Store) DeleteSubscription(ctx context.Context, k store.SubscriptionKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.update("delete subscription", func(tx *bbolt.Tx) error {
		ok, err := deleteSub(tx, k)
		if err == nil && !ok {
			return store.ErrNotFound
		}
		return err
	})
}

// DeleteSubscriptionsByURI implements store.Store through the subs_by_uri
// index, in one Update.
func (s *Store) DeleteSubscriptionsByURI(ctx context.Context, provider, uri string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.update("delete subscriptions by uri", func(tx *bbolt.Tx) error {
		n = 0
		idx := tx.Bucket(bucketSubsByURI)
		prefix := keyPrefix(provider, uri)
		var dead []store.SubscriptionKey
		c := idx.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			parts, err := splitKey(k, 3)
			if err != nil {
				return fmt.Errorf("subs_by_uri %q: %w", k, err)
			}
			dead = append(dead, store.SubscriptionKey{Provider: parts[0], ConnectionID: parts[2], URI: parts[1]})
		}
		for _, k := range dead {
			ok, err := deleteSub(tx, k)
			if err != nil {
				return err
			}
			if ok {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// ListSubscriptions implements store.Store, in key order: by provider,
// then connection, then URI. It reads listBatch records per transaction
// and calls fn outside any transaction. Records changed between batches
// may or may not be seen, as with any walk of live data.
func (s *Store) ListSubscriptions(ctx context.Context, provider string, fn func(store.Subscription) error) error {
	var prefix []byte
	if provider != "" {
		prefix = keyPrefix(provider)
	}
	var after []byte // last key handed to fn; nil before the first batch
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch []store.Subscription
		err := s.view("list subscriptions", func(tx *bbolt.Tx) error {
			polls, marks := tx.Bucket(bucketPolls), tx.Bucket(bucketMarks)
			c := tx.Bucket(bucketSubs).Cursor()
			k, v := c.Seek(prefix)
			if after != nil {
				k, v = c.Seek(after)
				if bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			var last []byte
			for ; k != nil && bytes.HasPrefix(k, prefix) && len(batch) < listBatch; k, v = c.Next() {
				parts, err := splitKey(k, 3)
				if err != nil {
					return fmt.Errorf("subscriptions %q: %w", k, err)
				}
				var rec subRecord
				if err := decode("subscription", v, &rec); err != nil {
					return err
				}
				sub, err := withMark(marks, k, fromSubRecord(store.SubscriptionKey{Provider: parts[0], ConnectionID: parts[1], URI: parts[2]}, rec))
				if err != nil {
					return err
				}
				sub.NextPollAt = nextOf(polls, k)
				batch = append(batch, sub)
				last = k
			}
			if last != nil {
				after = bytes.Clone(last) // k points into the memory map
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, sub := range batch {
			if err := fn(sub); err != nil {
				return err
			}
		}
		if len(batch) < listBatch {
			return nil
		}
	}
}

// ListSubscriptionsByURIPrefix implements store.Store through the
// subs_by_uri index: the URI part of its keys is escaped without a
// separator after it, so a seek to the escaped prefix finds every URI
// that starts with it, and the subscriptions of one URI lie together.
func (s *Store) ListSubscriptionsByURIPrefix(ctx context.Context, provider, prefix string, limit int) ([]store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	seek := appendPart(keyPrefix(provider), prefix)
	var out []store.Subscription
	err := s.view("list subscriptions by uri", func(tx *bbolt.Tx) error {
		out = out[:0]
		c := tx.Bucket(bucketSubsByURI).Cursor()
		for k, _ := c.Seek(seek); k != nil && bytes.HasPrefix(k, seek) && len(out) < limit; k, _ = c.Next() {
			parts, err := splitKey(k, 3)
			if err != nil {
				return fmt.Errorf("subs_by_uri %q: %w", k, err)
			}
			key := store.SubscriptionKey{Provider: parts[0], ConnectionID: parts[2], URI: parts[1]}
			sub, _, ok, err := readSub(tx, key)
			if err != nil {
				return err
			}
			if ok {
				sub.NextPollAt = nextOf(tx.Bucket(bucketPolls), subKey(key))
				out = append(out, sub)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
