package cached

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// Tuning of the subscription recorder.
const (
	// knownSubTTL is how long the recorder trusts that a subscription it
	// wrote is still stored with the same hash. Every change made through
	// this Store updates that memory at once; the TTL bounds how long a
	// subscription deleted by another process on the same file stays
	// unrecorded while its URI keeps being unfurled.
	knownSubTTL = time.Minute
	// maxKnownSubs bounds the remembered hashes; when full they are all
	// forgotten, which costs the next unfurl of each URI one commit that
	// writes nothing (PutSubscriptions skips unchanged records).
	maxKnownSubs = 50_000
	// commitTimeout bounds one group commit. It is not any one caller's
	// deadline, since the commit carries the records of many.
	commitTimeout = 30 * time.Second
	// commitPace is the shortest time from the start of one group commit
	// to the start of the next. A commit costs about the same CPU for one
	// record as for a dozen (the pages of five indexes, two fdatasyncs),
	// so under load, where each commit would otherwise carry only what
	// arrived during the previous one's fsyncs, waiting out the rest of
	// the pace lets more records share it: 7-8 % less CPU per cold
	// unfurl and 6-7 % more throughput in the load test's scenario c
	// (docs/operations.md, "The cold unfurl, profiled and trimmed"). Only
	// a batch behind a shared commit waits (commitLoop), so a lightly
	// loaded server adds no latency; under load a cold unfurl waits up
	// to this much longer, far below an upstream call.
	commitPace = 3 * time.Millisecond
)

// knownSub is what the recorder remembers of a subscription it wrote.
type knownSub struct {
	hash string
	at   time.Time
}

// batch is the records of one group commit and its outcome.
type batch struct {
	subs map[store.SubscriptionKey]store.Subscription
	done chan struct{} // closed when the commit has returned
	err  error         // the commit's error, set before done closes
}

// recorder records (provider, connection, uri) subscriptions (protocol
// 1.6) with classic group commit: while one PutSubscriptions is in
// flight, new records gather in the next batch, and the next commit
// starts as soon as the previous one returns, or, after a commit shared
// by several records, once commitPace has passed since it started. A
// caller returns once the commit holding its record has returned, so a
// record acknowledged to it is on disk (security.md F1); under load many
// records share one fsync. A record whose hash is already stored writes
// nothing and waits for nothing.
type recorder struct {
	store store.Store
	now   func() time.Time
	// paceNow and after pace the commits (commitPace).
	paceNow func() time.Time
	after   func(time.Duration) <-chan time.Time

	// writeMu is held for a whole commit, so that forget can wait out a
	// commit in progress before a delete goes to the store: a queued
	// write must never land after the delete of its key (TH-39, TH-40).
	// Lock order: writeMu, then mu.
	writeMu sync.Mutex

	mu    sync.Mutex
	known map[store.SubscriptionKey]knownSub
	next  *batch // gathering while a commit is in flight; nil when empty
	busy  bool   // a committer goroutine is running
	// off stops the recorder from trusting its memory of written hashes
	// while the store's change feed is down (changes.go).
	off bool
	// closed refuses new records; running counts committer goroutines
	// for close to wait out.
	closed  bool
	running sync.WaitGroup
}

func newRecorder(st store.Store, now, paceNow func() time.Time, after func(time.Duration) <-chan time.Time) *recorder {
	return &recorder{store: st, now: now, paceNow: paceNow, after: after, known: map[store.SubscriptionKey]knownSub{}}
}

// RecordSubscription notes that sub's connection was answered
// sub.AttrHash for its URI, and returns once that is durable: at once
// when the store already holds that hash, otherwise when the group
// commit carrying the record has returned, with its error. It returns
// ctx's error if ctx ends first (the record may still be written), and
// ErrClosed once Close has begun.
func (s *Store) RecordSubscription(ctx context.Context, sub store.Subscription) error {
	return s.subs.record(ctx, sub)
}

func (r *recorder) record(ctx context.Context, sub store.Subscription) error {
	k := sub.SubscriptionKey
	now := r.now()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if e, ok := r.known[k]; ok && !r.off && e.hash == sub.AttrHash && now.Sub(e.at) < knownSubTTL {
		r.mu.Unlock()
		return nil
	}
	if r.next == nil {
		r.next = &batch{subs: map[store.SubscriptionKey]store.Subscription{}, done: make(chan struct{})}
	}
	b := r.next
	// A later record of the same key replaces the earlier one: both
	// callers wait for this commit, which writes the latest hash.
	if old, ok := b.subs[k]; ok {
		sub.CreatedAt = old.CreatedAt
	}
	b.subs[k] = sub
	start := !r.busy
	if start {
		r.busy = true
		r.running.Add(1)
	}
	r.mu.Unlock()
	if start {
		go r.commitLoop()
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop commits batches one after the other until none is
// gathering. There is at most one running, so commits never overlap and
// each takes everything that arrived before it started. A batch starts
// at once unless the previous commit was shared (more than one record:
// the sign of load); then it waits until commitPace after that commit
// started, gathering more meanwhile. Under light load, commits carry one
// record each and never wait.
func (r *recorder) commitLoop() {
	defer r.running.Done()
	var last time.Time // when the previous commit started, if it was shared
	for {
		if !last.IsZero() && !r.idle() {
			if d := commitPace - r.paceNow().Sub(last); d > 0 {
				<-r.after(d)
			}
		}
		r.writeMu.Lock()
		r.mu.Lock()
		b := r.next
		r.next = nil
		if b == nil {
			r.busy = false
			r.mu.Unlock()
			r.writeMu.Unlock()
			return
		}
		r.mu.Unlock()
		last = time.Time{}
		if len(b.subs) > 1 {
			last = r.paceNow()
		}
		b.err = r.commit(b)
		r.writeMu.Unlock()
		close(b.done)
	}
}

// idle reports whether no batch is gathering.
func (r *recorder) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next == nil
}

// commit writes b in one PutSubscriptions, in key order (sorted inserts
// touch fewer bbolt pages), and on success remembers the hashes written.
// The caller holds writeMu.
func (r *recorder) commit(b *batch) error {
	subs := make([]store.Subscription, 0, len(b.subs))
	for _, s := range b.subs {
		subs = append(subs, s)
	}
	if len(subs) == 0 { // every record was forgotten by a delete
		return nil
	}
	slices.SortFunc(subs, func(a, b store.Subscription) int {
		return cmp.Or(strings.Compare(a.Provider, b.Provider), strings.Compare(a.ConnectionID, b.ConnectionID),
			strings.Compare(a.URI, b.URI))
	})
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	if _, err := r.store.PutSubscriptions(ctx, subs); err != nil {
		return err
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off {
		return nil
	}
	if len(r.known)+len(subs) > maxKnownSubs {
		clear(r.known)
	}
	for _, s := range subs {
		r.known[s.SubscriptionKey] = knownSub{hash: s.AttrHash, at: now}
	}
	return nil
}

// forget drops what the recorder knows and holds of the subscriptions
// for which match says so, after any commit in progress, so that the
// caller's delete in the store comes after every write of them.
// Callers waiting for a dropped record are answered with the batch's
// outcome: their write was overtaken by the delete, which is the last
// word.
func (r *recorder) forget(match func(store.SubscriptionKey) bool) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.forgetKnown(match)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next != nil {
		for k := range r.next.subs {
			if match(k) {
				delete(r.next.subs, k)
			}
		}
	}
}

// forgetKeys drops the remembered hashes of keys, for a write that may
// have changed their stored AttrHash; it does not wait.
func (r *recorder) forgetKeys(keys ...store.SubscriptionKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		delete(r.known, k)
	}
}

// forgetKnown drops the remembered hashes for which match says so.
func (r *recorder) forgetKnown(match func(store.SubscriptionKey) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.known {
		if match(k) {
			delete(r.known, k)
		}
	}
}

// setOff forgets every remembered hash and stops (off) or resumes
// remembering.
func (r *recorder) setOff(off bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.off = off
	clear(r.known)
}

// close refuses new records and waits until the commits of those already
// taken have returned.
func (r *recorder) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.running.Wait()
}
