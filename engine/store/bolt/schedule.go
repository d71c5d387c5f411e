package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// The live-update schedule (store.Schedule, issue 11) lives in four index
// buckets beside the records:
//
//	polls            <subKey>                                   -> <next> (none: due at once)
//	polls_by_due     <provider> 00 <next> <connID> 00 <uri>     -> lease
//	pending          <markAt> <provider> 00 <connID> 00 <uri>   -> lease
//	subs_by_unfurled <provider> 00 <unfurledAt> <connID> 00 <uri> -> empty
//
// Times are 8 bytes big-endian (timeKey), so keys sort by time and a
// claim is a cursor walk from the front; a zero time (never scheduled)
// sorts first. The time is the only part not escaped: it has a fixed
// length, so the 00 bytes it may hold are never taken for separators.
// A lease is <until> <owner> (8 bytes, then the owner's name), empty
// when there is none.
//
// A subscription never scheduled (due at once) has no polls entry: its
// next poll time is the zero time, which its polls_by_due key holds. A
// new subscription then costs one schedule entry instead of two, and a
// cold unfurl's commit, which carries a dozen new subscriptions under
// load, dirties the pages of one bucket fewer (docs/operations.md, "The
// cold unfurl, profiled and trimmed"). Files written before kept a zero
// entry for each; it reads the same.
//
// The next poll time is not in the subscription's record: SchedulePolls
// rewrites the small polls entry and moves the polls_by_due key, and a
// poll that changed nothing leaves the record alone (it was ~12.8 KB of
// page writes per poll at 1M subscriptions when the poller rewrote the
// record). The lease sits in polls_by_due, whose entries a claim takes
// in a run, so a claim dirties a few adjacent pages instead of one per
// subscription. The unfurl times are in the record already, and the
// pending marks beside it (marks.go); their indexes only find them
// without a scan.
//
// subs_by_unfurled is read by ExpireSubscriptions alone, so it is kept
// only from the first expiry on (keyUnfurledIndex): until a provider sets
// live.expire_after, a new subscription costs one index entry fewer, and
// a cold unfurl's commit dirties the pages of one bucket fewer: 12.2
// pages for a lone record instead of 15.2 (BenchmarkPutSubscriptions).
// docs/live-previews.md, Expiry, tells the operator.
var (
	bucketPolls          = []byte("polls")
	bucketPollsByDue     = []byte("polls_by_due")
	bucketPending        = []byte("pending")
	bucketSubsByUnfurled = []byte("subs_by_unfurled")
)

// keyScheduleBuilt is the meta key set once the schedule's buckets hold
// an entry for every subscription; keyScheduleBuildAt is the last
// subscription key indexed by a build still under way.
var (
	keyScheduleBuilt   = []byte("schedule_built")
	keyScheduleBuildAt = []byte("schedule_build_at")
)

// keyUnfurledIndex is the meta key holding subs_by_unfurled's state:
// absent while no expiry has run (the bucket is empty and no write keeps
// it), unfurledBuilding while ExpireSubscriptions fills it from the
// records (every write keeps it meanwhile; keyUnfurledIndexAt is the last
// subscription key the build indexed), unfurledBuilt once every
// subscription has its entry. It never goes back to absent: once expiry
// was used, the index is kept.
var (
	keyUnfurledIndex   = []byte("unfurled_index")
	keyUnfurledIndexAt = []byte("unfurled_index_at")
)

// The values of keyUnfurledIndex.
const (
	unfurledBuilding = "building"
	unfurledBuilt    = "built"
)

// scheduleBuildBatch is how many subscriptions one transaction of the
// schedule's build indexes: a bbolt transaction keeps its dirty pages in
// memory until it commits, so a million in one would cost hundreds of
// megabytes.
const scheduleBuildBatch = 20_000

var _ store.Schedule = (*Store)(nil)

// timeKey encodes t so that byte order is time order: zero is 0, others
// are their Unix nanoseconds with the sign bit flipped (so times before
// 1970 still sort first), clamped to the years 1678-2262 where those fit
// an int64.
func timeKey(t time.Time) uint64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minKeyTime):
		return 1
	case t.After(maxKeyTime):
		return math.MaxUint64
	}
	return uint64(t.UnixNano()) ^ (1 << 63) //nolint:gosec // G115: the flip is the point
}

var (
	minKeyTime = time.Unix(0, math.MinInt64+1)
	maxKeyTime = time.Unix(0, math.MaxInt64)
)

// keyTime reverses timeKey.
func keyTime(u uint64) time.Time {
	if u == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(u^(1<<63))).UTC() //nolint:gosec // G115: reverses timeKey
}

// timedKey is <provider> 00 <t> <connID> 00 <uri>: the key of
// polls_by_due and subs_by_unfurled.
func timedKey(k store.SubscriptionKey, t time.Time) []byte {
	b := binary.BigEndian.AppendUint64(keyPrefix(k.Provider), timeKey(t))
	return appendCompoundKey(b, k.ConnectionID, k.URI)
}

// splitTimedKey reverses timedKey; prefix is keyPrefix(provider).
func splitTimedKey(key, prefix []byte, provider string) (store.SubscriptionKey, uint64, error) {
	rest := key[len(prefix):]
	if len(rest) < 8 {
		return store.SubscriptionKey{}, 0, errBadKey
	}
	parts, err := splitKey(rest[8:], 2)
	if err != nil {
		return store.SubscriptionKey{}, 0, err
	}
	return store.SubscriptionKey{Provider: provider, ConnectionID: parts[0], URI: parts[1]}, binary.BigEndian.Uint64(rest), nil
}

// pendingKey is <markAt> <subKey>.
func pendingKey(k store.SubscriptionKey, at time.Time) []byte {
	return appendCompoundKey(binary.BigEndian.AppendUint64(nil, timeKey(at)), k.Provider, k.ConnectionID, k.URI)
}

// leaseValue encodes a lease.
func leaseValue(owner string, until time.Time) []byte {
	return append(binary.BigEndian.AppendUint64(nil, timeKey(until)), owner...)
}

// leaseOf decodes a lease value: its owner and until, "" and 0 for none.
func leaseOf(v []byte) (string, uint64) {
	if len(v) < 8 {
		return "", 0
	}
	return string(v[8:]), binary.BigEndian.Uint64(v)
}

// nextOf returns the next poll time stored for the subscription key:
// the zero time (due at once) when it has no polls entry.
func nextOf(polls *bbolt.Bucket, key []byte) time.Time {
	if v := polls.Get(key); len(v) == 8 {
		return keyTime(binary.BigEndian.Uint64(v))
	}
	return time.Time{}
}

// schedule holds the schedule's buckets of one transaction, and the
// pending marks themselves (marks.go). unfurled is nil while
// subs_by_unfurled is not kept (keyUnfurledIndex).
type schedule struct {
	polls, due, pending, unfurled, marks *bbolt.Bucket
}

func scheduleOf(tx *bbolt.Tx) schedule {
	sc := schedule{
		polls: tx.Bucket(bucketPolls), due: tx.Bucket(bucketPollsByDue),
		pending: tx.Bucket(bucketPending), marks: tx.Bucket(bucketMarks),
	}
	if tx.Bucket(bucketMeta).Get(keyUnfurledIndex) != nil {
		sc.unfurled = tx.Bucket(bucketSubsByUnfurled)
	}
	return sc
}

// index brings the schedule of subscription k (key is its subKey) from
// its record old (ok false: none) to next, which is being written. A new
// subscription is scheduled at next.NextPollAt (zero: due at once); a
// pending mark made again keeps the lease of the one it replaces
// (store.Schedule.ClaimPending).
func (sc schedule) index(key []byte, k store.SubscriptionKey, old store.Subscription, ok bool, next store.Subscription) error {
	if !ok {
		if !next.NextPollAt.IsZero() { // zero is implied by no entry
			if err := sc.polls.Put(key, binary.BigEndian.AppendUint64(nil, timeKey(next.NextPollAt))); err != nil {
				return err
			}
		}
		if err := sc.due.Put(timedKey(k, next.NextPollAt), nil); err != nil {
			return err
		}
	}
	oldMark, newMark := ok && old.Pending(), next.Pending()
	same := oldMark && newMark && timeKey(old.Refresh.At) == timeKey(next.Refresh.At)
	var lease []byte
	if oldMark && !same {
		pk := pendingKey(k, old.Refresh.At)
		lease = bytes.Clone(sc.pending.Get(pk))
		if err := sc.pending.Delete(pk); err != nil {
			return err
		}
	}
	if newMark && !same {
		if err := sc.pending.Put(pendingKey(k, next.Refresh.At), lease); err != nil {
			return err
		}
	}
	if sc.unfurled == nil || ok && timeKey(old.UnfurledAtOrUpdated()) == timeKey(next.UnfurledAtOrUpdated()) {
		return nil
	}
	if ok {
		if err := sc.unfurled.Delete(timedKey(k, old.UnfurledAtOrUpdated())); err != nil {
			return err
		}
	}
	return sc.unfurled.Put(timedKey(k, next.UnfurledAtOrUpdated()), nil)
}

// releasePending drops the lease on old's pending mark, for a put that
// records a refresh of it (store.Schedule.ClaimPending). It reports
// whether there was one to drop.
func (sc schedule) releasePending(k store.SubscriptionKey, old store.Subscription, put store.Subscription) (bool, error) {
	if !old.Pending() || put.Refresh.IsZero() || put.Pending() {
		return false, nil
	}
	pk := pendingKey(k, old.Refresh.At)
	if v := sc.pending.Get(pk); len(v) == 0 {
		return false, nil
	}
	return true, sc.pending.Put(pk, nil)
}

// unindex removes the schedule of subscription k, whose state rec is
// being deleted, and its pending mark.
func (sc schedule) unindex(key []byte, k store.SubscriptionKey, rec store.Subscription) error {
	if err := sc.due.Delete(timedKey(k, nextOf(sc.polls, key))); err != nil {
		return err
	}
	if err := sc.polls.Delete(key); err != nil {
		return err
	}
	if rec.Pending() {
		if err := sc.pending.Delete(pendingKey(k, rec.Refresh.At)); err != nil {
			return err
		}
		if err := sc.marks.Delete(key); err != nil {
			return err
		}
	}
	if sc.unfurled == nil {
		return nil
	}
	return sc.unfurled.Delete(timedKey(k, rec.UnfurledAtOrUpdated()))
}

// deleteSub removes subscription k with its index entries and schedule;
// it reports false when there was none.
func deleteSub(tx *bbolt.Tx, k store.SubscriptionKey) (bool, error) {
	key := subKey(k)
	sc := scheduleOf(tx)
	sub, _, ok, err := getSub(tx.Bucket(bucketSubs), sc.marks, key, k)
	if err != nil || !ok {
		return false, err
	}
	if err := sc.unindex(key, k, sub); err != nil {
		return false, err
	}
	if err := tx.Bucket(bucketSubs).Delete(key); err != nil {
		return false, err
	}
	return true, tx.Bucket(bucketSubsByURI).Delete(subURIKey(k))
}

// ClaimDuePolls implements store.Schedule: a walk of polls_by_due from the
// provider's first key to now, skipping leases that still run, in one
// write transaction (bbolt has one writer, so two claims cannot
// interleave).
func (s *Store) ClaimDuePolls(ctx context.Context, provider, owner string, now time.Time, d time.Duration, limit int) ([]store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	s.owners.add(owner)
	nowKey, lease := timeKey(now), leaseValue(owner, now.Add(d))
	var out []store.Subscription
	err := s.update("claim due polls", func(tx *bbolt.Tx) error {
		out = out[:0]
		sc, subs := scheduleOf(tx), tx.Bucket(bucketSubs)
		prefix := keyPrefix(provider)
		var claimed [][]byte
		c := sc.due.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			sk, at, err := splitTimedKey(k, prefix, provider)
			if err != nil {
				return fmt.Errorf("polls_by_due %q: %w", k, err)
			}
			if at > nowKey {
				break
			}
			if s.owners.holds(v, nowKey) {
				continue
			}
			sub, _, ok, err := getSub(subs, sc.marks, subKey(sk), sk)
			if err != nil {
				return err
			}
			if !ok {
				continue // only a damaged file has an entry without its record
			}
			sub.NextPollAt = keyTime(at)
			out = append(out, sub)
			claimed = append(claimed, bytes.Clone(k))
		}
		return putLeases(sc.due, claimed, lease)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// putLeases writes lease as the value of each claimed key of b, after
// the claim's walk (a cursor must not see its bucket change under it).
func putLeases(b *bbolt.Bucket, claimed [][]byte, lease []byte) error {
	for _, k := range claimed {
		if err := b.Put(k, lease); err != nil {
			return err
		}
	}
	return nil
}

// NextPollDue implements store.Schedule with a read transaction: the walk
// stops at the first unleased entry, so it reads the leased entries before
// it and no more.
func (s *Store) NextPollDue(ctx context.Context, provider string, now time.Time) (time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, err
	}
	nowKey := timeKey(now)
	var next uint64
	found := false
	err := s.view("next poll due", func(tx *bbolt.Tx) error {
		prefix := keyPrefix(provider)
		c := tx.Bucket(bucketPollsByDue).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			_, at, err := splitTimedKey(k, prefix, provider)
			if err != nil {
				return fmt.Errorf("polls_by_due %q: %w", k, err)
			}
			if found && at >= next {
				return nil
			}
			if s.owners.holds(v, nowKey) {
				_, until := leaseOf(v)
				at = max(at, until)
			}
			if !found || at < next {
				next, found = at, true
			}
		}
		return nil
	})
	if err != nil || !found {
		return time.Time{}, false, err
	}
	return keyTime(next), true, nil
}

// SchedulePolls implements store.Schedule in one write transaction: per
// slot, the polls entry and the polls_by_due key, and never the record.
func (s *Store) SchedulePolls(ctx context.Context, owner string, slots []store.PollSlot) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.update("schedule polls", func(tx *bbolt.Tx) error {
		n = 0
		sc, subs := scheduleOf(tx), tx.Bucket(bucketSubs)
		for _, slot := range slots {
			key := subKey(slot.SubscriptionKey)
			var at uint64 // no polls entry: never scheduled
			if v := sc.polls.Get(key); len(v) == 8 {
				at = binary.BigEndian.Uint64(v)
			} else if subs.Get(key) == nil {
				continue // gone
			}
			oldDue := timedKey(slot.SubscriptionKey, keyTime(at))
			if by, until := leaseOf(sc.due.Get(oldDue)); until != 0 && by != owner && s.owners.alive(by) {
				continue
			}
			if err := sc.due.Delete(oldDue); err != nil {
				return err
			}
			if err := sc.due.Put(timedKey(slot.SubscriptionKey, slot.Next), nil); err != nil {
				return err
			}
			var err error
			if t := timeKey(slot.Next); t == 0 {
				err = sc.polls.Delete(key)
			} else {
				err = sc.polls.Put(key, binary.BigEndian.AppendUint64(nil, t))
			}
			if err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// ClaimPending implements store.Schedule: a walk of pending from the
// oldest mark.
func (s *Store) ClaimPending(ctx context.Context, owner string, now time.Time, d time.Duration, limit int) ([]store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	s.owners.add(owner)
	nowKey, lease := timeKey(now), leaseValue(owner, now.Add(d))
	var out []store.Subscription
	err := s.update("claim pending", func(tx *bbolt.Tx) error {
		out = out[:0]
		sc, subs := scheduleOf(tx), tx.Bucket(bucketSubs)
		var claimed [][]byte
		c := sc.pending.Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			if s.owners.holds(v, nowKey) {
				continue
			}
			if len(k) < 8 {
				return fmt.Errorf("pending %q: %w", k, errBadKey)
			}
			parts, err := splitKey(k[8:], 3)
			if err != nil {
				return fmt.Errorf("pending %q: %w", k, err)
			}
			sk := store.SubscriptionKey{Provider: parts[0], ConnectionID: parts[1], URI: parts[2]}
			key := subKey(sk)
			sub, _, ok, err := getSub(subs, sc.marks, key, sk)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			sub.NextPollAt = nextOf(sc.polls, key)
			out = append(out, sub)
			claimed = append(claimed, bytes.Clone(k))
		}
		return putLeases(sc.pending, claimed, lease)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ExpireSubscriptions implements store.Schedule: a walk of
// subs_by_unfurled from the provider's oldest, deleting as
// DeleteSubscription does, in one write transaction. The first call on a
// file builds the index first (buildUnfurledIndex).
func (s *Store) ExpireSubscriptions(ctx context.Context, provider string, before time.Time, limit int) ([]store.SubscriptionKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	// Never on a partial index: a subscription it lacks would be kept
	// past its time.
	if err := s.buildUnfurledIndex(ctx, scheduleBuildBatch); err != nil {
		return nil, err
	}
	beforeKey := timeKey(before)
	var out []store.SubscriptionKey
	err := s.update("expire subscriptions", func(tx *bbolt.Tx) error {
		out = out[:0]
		prefix := keyPrefix(provider)
		c := tx.Bucket(bucketSubsByUnfurled).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Next() {
			sk, at, err := splitTimedKey(k, prefix, provider)
			if err != nil {
				return fmt.Errorf("subs_by_unfurled %q: %w", k, err)
			}
			if at >= beforeKey {
				break
			}
			out = append(out, sk)
		}
		for _, k := range out {
			if _, err := deleteSub(tx, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ScheduleCounts implements store.Schedule by walking the provider's keys
// of polls_by_due and the pending marks; no record is decoded. The walk
// reads every leaf of both buckets, which at a million subscriptions
// mapped about 200 MiB of the file within 40 ms (fault-around), faster
// than the store's releases every 50 ms could drop them: the poller's
// count once a minute raised a cold start's peak RSS from 150 to 280 MiB
// (docs/operations.md, "Live previews at scale"). So it releases the
// pages it read every releaseKeys keys, as the integrity check's walk
// does.
func (s *Store) ScheduleCounts(ctx context.Context, provider string, now time.Time) (store.ScheduleCounts, error) {
	if err := ctx.Err(); err != nil {
		return store.ScheduleCounts{}, err
	}
	nowKey := timeKey(now)
	var out store.ScheduleCounts
	err := s.view("schedule counts", func(tx *bbolt.Tx) error {
		out = store.ScheduleCounts{}
		walked := 0
		release := func() {
			if walked++; walked%releaseKeys == 0 {
				_ = releaseMap(tx) // a failure only leaves the pages to the store's loop
			}
		}
		prefix := keyPrefix(provider)
		c := tx.Bucket(bucketPollsByDue).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			release()
			if len(k) < len(prefix)+8 {
				return fmt.Errorf("polls_by_due %q: %w", k, errBadKey)
			}
			out.Subscriptions++
			switch {
			case s.owners.holds(v, nowKey):
				out.Leased++
			case binary.BigEndian.Uint64(k[len(prefix):]) <= nowKey:
				out.Due++
			}
		}
		c = tx.Bucket(bucketPending).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			release()
			if len(k) >= 8 && bytes.HasPrefix(k[8:], prefix) {
				out.Pending++
			}
		}
		return nil
	})
	return out, err
}

// scheduleBuild gives every subscription of a file written before the
// schedule existed its schedule entries, once: each is due at once (never
// scheduled), its pending mark and unfurl time are indexed from its
// record. It runs after Open has returned, in the background, because it
// decodes every record: about 20 s for a million subscriptions, which
// would otherwise hold up the first start of this version. Each batch of
// scheduleBuildBatch subscriptions is one transaction that also records
// where it stopped, so Close (or a crash) leaves a build that the next
// Open resumes, and keyScheduleBuilt marks the end; a file that has it
// is not read at all.
//
// Writes may run meanwhile. A subscription the build has not reached yet
// is invisible to ClaimDuePolls until it does; every other change is
// one the build must not undo, so it only adds entries that are missing
// (index, with no stored record, adds them all; a put of a stored record
// moves its pending and unfurl entries; a delete removes what there is):
// a lease taken on a pending mark the put indexed is kept.
type scheduleBuild struct {
	quit chan struct{}
	done chan struct{}
}

// startScheduleBuild starts the build unless the file has its schedule.
func startScheduleBuild(db *bbolt.DB, log *slog.Logger) *scheduleBuild {
	b := &scheduleBuild{quit: make(chan struct{}), done: make(chan struct{})}
	built := false
	_ = db.View(func(tx *bbolt.Tx) error {
		built = tx.Bucket(bucketMeta).Get(keyScheduleBuilt) != nil
		return nil
	})
	if built {
		close(b.done)
		return b
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	go b.run(db, log)
	return b
}

// run builds the schedule batch after batch until done or stopped.
func (b *scheduleBuild) run(db *bbolt.DB, log *slog.Logger) {
	defer close(b.done)
	start, n := time.Now(), 0
	for {
		select {
		case <-b.quit:
			return
		default:
		}
		done, count, err := buildScheduleBatch(db)
		n += count
		if err != nil {
			// A record that does not decode; the next Open tries again,
			// and its check names the damage.
			log.Error("live poll schedule not built", "err", err)
			return
		}
		if done {
			log.Info("live poll schedule built", "subscriptions", n, "duration", time.Since(start))
			return
		}
	}
}

// stop stops the build between batches and waits for it.
func (b *scheduleBuild) stop() {
	select {
	case <-b.quit:
	default:
		close(b.quit)
	}
	<-b.done
}

// wait returns when the build is over, for tests.
func (b *scheduleBuild) wait() { <-b.done }

// buildScheduleBatch indexes the next scheduleBuildBatch subscriptions
// and says whether the build is over, and how many it indexed.
func buildScheduleBatch(db *bbolt.DB) (done bool, n int, err error) {
	err = db.Update(func(tx *bbolt.Tx) error {
		done, n = false, 0
		meta := tx.Bucket(bucketMeta)
		sc := scheduleOf(tx)
		// polls_by_due takes its keys in order here (all due at once,
		// in key order): fill its pages, and those of polls, to the brim.
		sc.polls.FillPercent, sc.due.FillPercent = 0.9, 0.9
		c := tx.Bucket(bucketSubs).Cursor()
		k, v := c.First()
		if at := meta.Get(keyScheduleBuildAt); at != nil {
			k, v = c.Seek(at)
			if bytes.Equal(k, at) {
				k, v = c.Next()
			}
		}
		var last []byte
		for ; k != nil && n < scheduleBuildBatch; k, v = c.Next() {
			parts, err := splitKey(k, 3)
			if err != nil {
				return fmt.Errorf("subscriptions %q: %w", k, err)
			}
			var rec subRecord
			if err := decode("subscription", v, &rec); err != nil {
				return err
			}
			sk := store.SubscriptionKey{Provider: parts[0], ConnectionID: parts[1], URI: parts[2]}
			key := bytes.Clone(k)
			// A mark put while the build ran lies over the record's.
			sub, err := withMark(sc.marks, key, fromSubRecord(sk, rec))
			if err != nil {
				return err
			}
			if err := sc.fill(key, sk, sub); err != nil {
				return err
			}
			last = key
			n++
		}
		if k == nil {
			done = true
			if err := meta.Delete(keyScheduleBuildAt); err != nil {
				return err
			}
			return meta.Put(keyScheduleBuilt, []byte("1"))
		}
		return meta.Put(keyScheduleBuildAt, last)
	})
	if err != nil {
		return false, n, fmt.Errorf("build the poll schedule: %w", err)
	}
	return done, n, nil
}

// has reports whether b holds key, whatever its value: bbolt's Get does
// not tell an empty value from a missing key.
func has(b *bbolt.Bucket, key []byte) bool {
	k, _ := b.Cursor().Seek(key)
	return bytes.Equal(k, key)
}

// fill adds the schedule entries of subscription k (state sub) that are
// missing, leaving those present as they are (scheduleBuild).
func (sc schedule) fill(key []byte, k store.SubscriptionKey, sub store.Subscription) error {
	// Without a polls entry the subscription is due at once; its
	// polls_by_due key may be there already, with a lease to keep.
	if sc.polls.Get(key) == nil {
		if dk := timedKey(k, time.Time{}); !has(sc.due, dk) {
			if err := sc.due.Put(dk, nil); err != nil {
				return err
			}
		}
	}
	if sub.Pending() {
		if pk := pendingKey(k, sub.Refresh.At); !has(sc.pending, pk) {
			if err := sc.pending.Put(pk, nil); err != nil {
				return err
			}
		}
	}
	if sc.unfurled == nil {
		return nil
	}
	// Present or not, this key has an empty value: putting it is safe.
	return sc.unfurled.Put(timedKey(k, sub.UnfurledAtOrUpdated()), nil)
}

// buildUnfurledIndex returns once subs_by_unfurled holds an entry for
// every subscription, building it first if expiry has never run
// (keyUnfurledIndex): batch subscriptions per write transaction, so that
// writers wait for one batch at a time, never for the whole build. A
// build cut short (ctx, a crash) resumes where it stopped at the next
// call. Writes made meanwhile keep the entries of the subscriptions they
// write, so the build only adds what is missing and nothing it adds is
// stale: each batch reads the records in the transaction that indexes
// them.
func (s *Store) buildUnfurledIndex(ctx context.Context, batch int) error {
	for {
		built := false
		err := s.view("build the unfurled index", func(tx *bbolt.Tx) error {
			built = string(tx.Bucket(bucketMeta).Get(keyUnfurledIndex)) == unfurledBuilt
			return nil
		})
		if err != nil || built {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.update("build the unfurled index", func(tx *bbolt.Tx) error { return buildUnfurledBatch(tx, batch) }); err != nil {
			return err
		}
	}
}

// buildUnfurledBatch indexes the unfurl times of the next batch
// subscriptions after keyUnfurledIndexAt, starting the build if it is not
// under way, and marks the index built after the last one.
func buildUnfurledBatch(tx *bbolt.Tx, batch int) error {
	meta := tx.Bucket(bucketMeta)
	switch string(meta.Get(keyUnfurledIndex)) {
	case unfurledBuilt:
		return nil
	case "":
		// The bucket is empty: Open empties an index left unkept
		// (prepare), and nothing writes it before this.
		if err := meta.Put(keyUnfurledIndex, []byte(unfurledBuilding)); err != nil {
			return err
		}
	}
	unfurled := tx.Bucket(bucketSubsByUnfurled)
	c := tx.Bucket(bucketSubs).Cursor()
	k, v := c.First()
	if at := meta.Get(keyUnfurledIndexAt); at != nil {
		k, v = c.Seek(at)
		if bytes.Equal(k, at) {
			k, v = c.Next()
		}
	}
	var last []byte
	for n := 0; k != nil && n < batch; k, v = c.Next() {
		parts, err := splitKey(k, 3)
		if err != nil {
			return fmt.Errorf("subscriptions %q: %w", k, err)
		}
		var rec subRecord
		if err := decode("subscription", v, &rec); err != nil {
			return err
		}
		sk := store.SubscriptionKey{Provider: parts[0], ConnectionID: parts[1], URI: parts[2]}
		if err := unfurled.Put(timedKey(sk, fromSubRecord(sk, rec).UnfurledAtOrUpdated()), nil); err != nil {
			return err
		}
		last = k
		n++
	}
	if k == nil {
		if err := meta.Delete(keyUnfurledIndexAt); err != nil {
			return err
		}
		return meta.Put(keyUnfurledIndex, []byte(unfurledBuilt))
	}
	return meta.Put(keyUnfurledIndexAt, bytes.Clone(last))
}

// unkeptUnfurled reports whether subs_by_unfurled holds entries that no
// write keeps: a file whose index was kept by a version that always kept
// it, or by an older version that opened it since. prepare empties it,
// so that the first expiry builds it from the records and never walks a
// stale entry.
func unkeptUnfurled(tx *bbolt.Tx) bool {
	b := tx.Bucket(bucketSubsByUnfurled)
	if b == nil || tx.Bucket(bucketMeta).Get(keyUnfurledIndex) != nil {
		return false
	}
	k, _ := b.Cursor().First()
	return k != nil
}
