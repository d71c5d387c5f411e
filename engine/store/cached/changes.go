package cached

import (
	"context"

	"github.com/unfurld/unfurld/engine/store"
)

// Several replicas on one database each keep their own bearer cache and
// memory of written subscription hashes. A write made through one
// replica invalidates its own caches at once (invalidate.go); the
// others learn of it through the store's change feed, within the time a
// notice takes to travel (milliseconds), instead of after bearerTTL: a
// token deleted through one replica is refused by every replica within
// one second (TH-26). While the feed is down nothing is cached, and
// when it comes back everything cached before is dropped, since the
// changes of the gap were never reported.

// watch starts the goroutine that applies the feed's changes. Until the
// feed reports it is live, nothing is cached.
func (s *Store) watch(feed store.ChangeFeed) {
	s.bearers.setOff(true)
	s.subs.setOff(true)
	ctx, cancel := context.WithCancel(context.Background())
	s.stopFeed, s.feedDone = cancel, make(chan struct{})
	go func() {
		defer close(s.feedDone)
		feed.WatchChanges(ctx, s.apply)
	}()
}

// apply drops what ch makes stale.
func (s *Store) apply(ch store.Change) {
	switch ch.Kind {
	case store.ChangeLost:
		s.bearers.setOff(true)
		s.subs.setOff(true)
	case store.ChangeResync:
		s.bearers.setOff(false)
		s.subs.setOff(false)
	case store.ChangeToken:
		s.bearers.forgetToken(ch.ID)
	case store.ChangeConnection:
		s.bearers.forgetConnection(ch.ID)
		s.subs.forgetKnown(func(k store.SubscriptionKey) bool { return k.ConnectionID == ch.ID })
	case store.ChangeGrant:
		s.bearers.forgetGrant(ch.ID)
	case store.ChangeTokens:
		s.bearers.reset()
	case store.ChangeSubscription:
		s.subs.forgetKeys(ch.Sub)
	case store.ChangeURI:
		s.subs.forgetKnown(func(k store.SubscriptionKey) bool { return k.Provider == ch.Sub.Provider && k.URI == ch.Sub.URI })
	case store.ChangeSubscriptions:
		s.subs.forgetKnown(func(store.SubscriptionKey) bool { return true })
	default: // a kind this version does not know: drop everything
		s.bearers.reset()
		s.subs.forgetKnown(func(store.SubscriptionKey) bool { return true })
	}
}
