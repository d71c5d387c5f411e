package server

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// Tuning of the subscription recorder.
const (
	// subLinger is how long the writer waits after the first new
	// subscription before it commits, so that one fsync'd commit carries
	// everything that arrived meanwhile (group commit): at most about
	// 1/subLinger commits a second, however many new URIs are unfurled.
	// A record costs about 44 µs in batches of 30 and 21 µs in batches
	// of 300 (BenchmarkPutSubscriptions), against 740 µs alone.
	subLinger = 50 * time.Millisecond
	// maxPendingSubs bounds the subscriptions waiting for the writer. An
	// unfurl that finds it full waits for the next commit (or gives up
	// when its request ends); with commits carrying this many records
	// each, that takes well over 100,000 new URIs a second.
	maxPendingSubs = 8192
	// knownSubTTL is how long the recorder trusts that a subscription it
	// wrote is still stored with the same hash. It bounds how long a
	// subscription deleted behind the server's back (another process, or
	// a store handle that is not the server's) stays unrecorded while
	// its URI keeps being unfurled.
	knownSubTTL = time.Minute
	// maxKnownSubs bounds the remembered hashes; when full they are all
	// forgotten, which costs store reads of unchanged records, not
	// commits (PutSubscriptions skips them).
	maxKnownSubs = 50_000
	// subWriteTimeout bounds one batch commit.
	subWriteTimeout = 30 * time.Second
)

// knownSub is what the recorder remembers of a subscription it queued.
type knownSub struct {
	hash string
	at   time.Time
}

// subscriptionRecorder records (provider, connection, uri) subscriptions
// for live updates (protocol 1.6) off the request path. Recording used to
// be a PutSubscription per unfurl: a new URI cost the request an fsync'd
// bbolt commit, and under load requests queued behind the one writer
// (issue 2: about 2,300 commits a second on the measured machine). Now an
// unfurl costs a map lookup when the attributes did not change since the
// last one, and otherwise adds the record to a bounded pending set that
// one background writer commits with PutSubscriptions, in one
// transaction per batch.
//
// Durability: Close writes everything recorded before it, so a graceful
// stop loses nothing that was answered. A crash loses at most what was
// recorded in the last subLinger plus the commit in progress; those
// subscriptions are recorded again by the next unfurl of their URIs,
// since the memory of what was written is lost with the process too.
type subscriptionRecorder struct {
	store store.Store
	log   *slog.Logger
	now   func() time.Time

	// writeMu is held by the writer for a whole batch, so that forget
	// can wait out a commit in progress before a delete goes to the
	// store: a queued write must never land after the delete of its key.
	// Lock order: writeMu, then mu.
	writeMu sync.Mutex

	mu      sync.Mutex
	known   map[store.SubscriptionKey]knownSub
	pending map[store.SubscriptionKey]store.Subscription
	// space is closed (and replaced) whenever the writer takes the
	// pending set, to wake unfurls waiting for room.
	space chan struct{}
	// seq counts records added to pending; written is the seq up to
	// which everything was handled, and wrote is closed (and replaced)
	// when it moves, for Flush.
	seq, written uint64
	wrote        chan struct{}
	closed       bool

	kick  chan struct{} // something is pending
	flush chan struct{} // commit now, without lingering
	stop  chan struct{} // closed by Close
	done  chan struct{} // closed when the writer has returned
}

func newSubscriptionRecorder(st store.Store, log *slog.Logger, now func() time.Time) *subscriptionRecorder {
	r := &subscriptionRecorder{
		store: st, log: log, now: now,
		known:   map[store.SubscriptionKey]knownSub{},
		pending: map[store.SubscriptionKey]store.Subscription{},
		space:   make(chan struct{}),
		wrote:   make(chan struct{}),
		kick:    make(chan struct{}, 1),
		flush:   make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go r.run()
	return r
}

// record notes that sub's connection was answered sub.AttrHash for its
// URI. It returns at once unless the pending set is full, in which case
// it waits for room until ctx ends; a record it could not queue is
// logged and left for the next unfurl of the URI.
func (r *subscriptionRecorder) record(ctx context.Context, sub store.Subscription) {
	k := sub.SubscriptionKey
	for {
		now := r.now()
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			r.log.WarnContext(ctx, "subscription not recorded: server closing", "provider", k.Provider)
			return
		}
		if e, ok := r.known[k]; ok && e.hash == sub.AttrHash && now.Sub(e.at) < knownSubTTL {
			r.mu.Unlock()
			return
		}
		_, queued := r.pending[k]
		if queued || len(r.pending) < maxPendingSubs {
			if len(r.known) >= maxKnownSubs {
				clear(r.known)
			}
			r.known[k] = knownSub{hash: sub.AttrHash, at: now}
			r.pending[k] = sub
			r.seq++
			r.mu.Unlock()
			select {
			case r.kick <- struct{}{}:
			default:
			}
			return
		}
		space := r.space
		r.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			r.log.WarnContext(ctx, "subscription not recorded: writer behind", "provider", k.Provider, "err", ctx.Err())
			return
		}
	}
}

// forget drops what the recorder knows and holds of the subscriptions
// for which match says so, after any commit in progress, so that the
// caller's delete in the store comes after every write of them.
func (r *subscriptionRecorder) forget(match func(store.SubscriptionKey) bool) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.known {
		if match(k) {
			delete(r.known, k)
		}
	}
	for k := range r.pending {
		if match(k) {
			delete(r.pending, k)
		}
	}
}

// run is the writer: it waits for a record, lingers so that more can
// join it, and commits them in one PutSubscriptions; on Close it commits
// what is left and returns.
func (r *subscriptionRecorder) run() {
	defer close(r.done)
	linger := time.NewTimer(subLinger)
	linger.Stop()
	for {
		wait := true
		select {
		case <-r.kick:
		case <-r.flush:
			wait = false
		case <-r.stop:
			r.writePending()
			return
		}
		if wait {
			linger.Reset(subLinger)
			select {
			case <-linger.C:
			case <-r.flush:
				linger.Stop()
			case <-r.stop:
				linger.Stop()
				r.writePending()
				return
			}
		}
		r.writePending()
	}
}

// writePending commits the pending set, in key order (sorted inserts
// touch fewer bbolt pages). A failed commit is logged and its records
// forgotten, so that the next unfurl of each URI queues it again.
func (r *subscriptionRecorder) writePending() {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.Lock()
	batch := make([]store.Subscription, 0, len(r.pending))
	for _, s := range r.pending {
		batch = append(batch, s)
	}
	clear(r.pending)
	seq := r.seq
	close(r.space)
	r.space = make(chan struct{})
	r.mu.Unlock()

	if len(batch) > 0 {
		slices.SortFunc(batch, func(a, b store.Subscription) int {
			return cmp.Or(strings.Compare(a.Provider, b.Provider), strings.Compare(a.ConnectionID, b.ConnectionID),
				strings.Compare(a.URI, b.URI))
		})
		ctx, cancel := context.WithTimeout(context.Background(), subWriteTimeout)
		_, err := r.store.PutSubscriptions(ctx, batch)
		if err != nil {
			r.log.WarnContext(ctx, "record subscriptions", "count", len(batch), "err", err)
			r.mu.Lock()
			for _, s := range batch {
				if e, ok := r.known[s.SubscriptionKey]; ok && e.hash == s.AttrHash {
					delete(r.known, s.SubscriptionKey)
				}
			}
			r.mu.Unlock()
		}
		cancel()
	}

	r.mu.Lock()
	r.written = seq
	close(r.wrote)
	r.wrote = make(chan struct{})
	r.mu.Unlock()
}

// Flush waits until everything recorded before the call is written (or
// failed and was logged), or ctx ends.
func (r *subscriptionRecorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	target := r.seq
	r.mu.Unlock()
	for {
		r.mu.Lock()
		written, wrote := r.written, r.wrote
		r.mu.Unlock()
		if written >= target {
			return nil
		}
		select {
		case r.flush <- struct{}{}:
		default:
		}
		select {
		case <-wrote:
		case <-r.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops taking records, writes what is pending and stops the
// writer, or gives up when ctx ends. It may be called more than once.
func (r *subscriptionRecorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.stop)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
