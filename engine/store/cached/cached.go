package cached

import (
	"context"
	"errors"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// ErrClosed is returned by RecordSubscription once Close has begun.
var ErrClosed = errors.New("store closing")

// Options tune a Store.
type Options struct {
	// Now is the clock of the recorder's memory of written subscriptions;
	// nil means time.Now. Bearer lookups take the caller's clock reading.
	Now func() time.Time
	// After is the timer that paces group commits (recorder.go,
	// commitPace), read against Now; nil means time.After, and then
	// time.Now for the pace whatever Now is.
	After func(time.Duration) <-chan time.Time
	// Changes, when set, is the wrapped store's change feed: the Store
	// drops what it caches of every change another replica commits, and
	// caches nothing while the feed is down (changes.go). nil for a store
	// only this process writes (bolt, memory).
	Changes store.ChangeFeed
}

// Store is a store.Store with a bearer cache and a group-committing
// subscription recorder in front of it. Reads it does not cache and
// writes that invalidate nothing go straight to the wrapped store.
type Store struct {
	store.Store
	bearers *bearerCache
	subs    *recorder
	// stopFeed ends the change-feed watcher and feedDone closes when it
	// has returned; both nil without a feed.
	stopFeed context.CancelFunc
	feedDone chan struct{}
}

var _ store.Store = (*Store)(nil)

// New wraps st. The returned Store owns st: its Close closes st.
func New(st store.Store, opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	paceNow := opts.Now
	if opts.After == nil {
		opts.After, paceNow = time.After, time.Now
	}
	s := &Store{
		Store:   st,
		bearers: newBearerCache(),
		subs:    newRecorder(st, opts.Now, paceNow, opts.After),
	}
	if opts.Changes != nil {
		s.watch(opts.Changes)
	}
	return s
}

// Close stops taking subscription records, waits for the commits in
// progress and queued (so that every record a caller is waiting for is
// either written or failed), then closes the wrapped store.
func (s *Store) Close() error {
	if s.stopFeed != nil {
		s.stopFeed()
		<-s.feedDone
	}
	s.subs.close()
	return s.Store.Close()
}
