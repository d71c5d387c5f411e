package bolt

import (
	"bytes"

	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// A webhook's pending mark (store.RefreshRecord with Outcome
// RefreshPending) is kept beside the subscription's record, not in it:
//
//	marks <subKey> -> markRecord (the mark's story)
//
// A webhook naming 10,000 links used to rewrite 10,000 records spread
// over the whole subscriptions bucket: one leaf page or more each, about
// a second of page writes in one commit at a million subscriptions
// (issue 11). The marks bucket holds only the subscriptions marked now,
// and a webhook's marks arrive sorted (engine/live's marker), so its
// 10,000 entries fill a few hundred adjacent pages, as do their pending
// keys, which share the mark's time.
//
// What the store shows is the record with its mark laid over it (getSub):
// the mark's Refresh replaces the record's, exactly what
// store.MergeSubscription would have written into it. The record keeps
// the story of the last refresh underneath, unseen until a refresh that
// clears the mark writes its own (writeSub). A put that changes the
// record while it is marked (an unfurl's new hash, a refresh begun
// before the mark) writes the record and leaves the mark beside it.
//
// Files written before kept the mark in the record itself. They are read
// as they are, with no migration: a record whose Refresh is pending and
// that has no marks entry is marked, and its pending key is the same. The
// next mark of it goes to the marks bucket (it then lies over the old
// one), and the refresh that clears it rewrites the record anyway.
var bucketMarks = []byte("marks")

// markRecord is a pending mark as stored in the marks bucket.
type markRecord struct {
	V       int           `json:"v"`
	Refresh refreshRecord `json:"refresh"`
}

func (r *markRecord) version() int { return r.V }

// getSub reads subscription k (key is its subKey) from the subscriptions
// bucket subs as the store shows it: its record with its pending mark, if
// any, laid over it. It also returns the record as stored, and false when
// there is none. NextPollAt is left zero: it is the schedule's (nextOf).
func getSub(subs, marks *bbolt.Bucket, key []byte, k store.SubscriptionKey) (store.Subscription, subRecord, bool, error) {
	v := subs.Get(key)
	if v == nil {
		return store.Subscription{}, subRecord{}, false, nil
	}
	var rec subRecord
	if err := decode("subscription", v, &rec); err != nil {
		return store.Subscription{}, subRecord{}, false, err
	}
	sub, err := withMark(marks, key, fromSubRecord(k, rec))
	if err != nil {
		return store.Subscription{}, subRecord{}, false, err
	}
	return sub, rec, true, nil
}

// withMark lays the pending mark of sub (key is its subKey), if it has
// one in the marks bucket, over sub, which was decoded from its record.
func withMark(marks *bbolt.Bucket, key []byte, sub store.Subscription) (store.Subscription, error) {
	v := marks.Get(key)
	if v == nil {
		return sub, nil
	}
	var m markRecord
	if err := decode("pending mark", v, &m); err != nil {
		return store.Subscription{}, err
	}
	sub.Refresh = fromRefreshRecord(m.Refresh)
	return sub, nil
}

// sameSub reports whether next, the merged state of a put, shows the same
// as old, the stored state, but for the times kept by the store: such a
// put writes nothing.
func sameSub(old, next store.Subscription) bool {
	return old.AttrHash == next.AttrHash && old.ETag == next.ETag && old.LastModified == next.LastModified &&
		old.Refresh.Equal(next.Refresh) && old.DeliveredAt.Equal(next.DeliveredAt) &&
		old.UnfurledAt.Equal(next.UnfurledAt)
}

// subWrite is where writeSub writes one subscription: the buckets of a
// write transaction, looked up once for a whole batch.
type subWrite struct {
	subs, uris *bbolt.Bucket
	sc         schedule
}

func subWriteOf(tx *bbolt.Tx) subWrite {
	return subWrite{subs: tx.Bucket(bucketSubs), uris: tx.Bucket(bucketSubsByURI), sc: scheduleOf(tx)}
}

// writeSub stores next, the merged state of subscription k (key and
// uriKey are its subKey and subURIKey), whose stored record is rec (ok
// false: none) and stored state old, with its schedule and index
// entries, unless that changes nothing; it reports whether it wrote.
// A pending next puts its mark in the marks bucket and writes the record
// only if something else of it changed; any other next writes the record
// and drops the mark.
func (w subWrite) writeSub(key, uriKey []byte, rec subRecord, ok bool, old, next store.Subscription) (bool, error) {
	if ok && sameSub(old, next) {
		return false, nil
	}
	if err := w.sc.index(key, next.SubscriptionKey, old, ok, next); err != nil {
		return false, err
	}
	put := toSubRecord(next)
	if ok {
		put.CreatedAt = rec.CreatedAt
	}
	if next.Pending() {
		put.Refresh = rec.Refresh // the record keeps its story under the mark
		v, err := encode("pending mark", markRecord{V: schemaVersion, Refresh: toRefreshRecord(next.Refresh)})
		if err != nil {
			return false, err
		}
		if !bytes.Equal(w.sc.marks.Get(key), v) {
			if err := w.sc.marks.Put(key, v); err != nil {
				return false, err
			}
		}
		if ok && sameRecord(rec, put) {
			return true, nil // the mark's commit writes no record
		}
	} else if old.Pending() {
		if err := w.sc.marks.Delete(key); err != nil {
			return false, err
		}
	}
	val, err := encodeSub(put)
	if err != nil {
		return false, err
	}
	if err := w.subs.Put(key, val); err != nil {
		return false, err
	}
	if !ok {
		if err := w.uris.Put(uriKey, nil); err != nil {
			return false, err
		}
	}
	return true, nil
}

// sameRecord reports whether writing b over the stored record a, whose
// Refresh and CreatedAt b took, would change nothing.
func sameRecord(a, b subRecord) bool {
	return a.AttrHash == b.AttrHash && a.ETag == b.ETag && a.LastModified == b.LastModified &&
		a.UpdatedAt.Equal(b.UpdatedAt) && a.DeliveredAt.Equal(b.DeliveredAt) && a.UnfurledAt.Equal(b.UnfurledAt)
}
