package cached

import (
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
}

// Store is a store.Store with a bearer cache and a group-committing
// subscription recorder in front of it. Reads it does not cache and
// writes that invalidate nothing go straight to the wrapped store.
type Store struct {
	store.Store
	bearers *bearerCache
	subs    *recorder
}

var _ store.Store = (*Store)(nil)

// New wraps st. The returned Store owns st: its Close closes st.
func New(st store.Store, opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{
		Store:   st,
		bearers: newBearerCache(),
		subs:    newRecorder(st, opts.Now),
	}
}

// Close stops taking subscription records, waits for the commits in
// progress and queued (so that every record a caller is waiting for is
// either written or failed), then closes the wrapped store.
func (s *Store) Close() error {
	s.subs.close()
	return s.Store.Close()
}
