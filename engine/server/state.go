package server

import (
	"context"
)

// initState builds the in-memory state that keeps the request path off
// the store (issue 2): the bearer cache and the subscription recorder,
// and puts invalidatingStore in front of the store so that every change
// the handlers make keeps them right.
func (s *Server) initState() {
	s.bearers = newBearerCache()
	s.subs = newSubscriptionRecorder(s.cfg.Store, s.log, s.cfg.Now)
	s.cfg.Store = invalidatingStore{Store: s.cfg.Store, bearers: s.bearers, subs: s.subs}
}

// Close writes the subscriptions recorded so far and stops the background
// writer. Call it after http.Server.Shutdown has drained the requests and
// before the store is closed: a graceful stop then loses no subscription
// of an answered unfurl. It gives up when ctx ends. It may be called more
// than once.
func (s *Server) Close(ctx context.Context) error {
	return s.subs.Close(ctx)
}

// Flush waits until every subscription recorded before the call is in
// the store, or ctx ends. Recording happens off the request path, so a
// test that reads the store right after an unfurl flushes first.
func (s *Server) Flush(ctx context.Context) error {
	return s.subs.Flush(ctx)
}

// ForgetConnection drops what the server caches about connection id,
// for code that changes or deletes it through another store handle than
// the server's (the server's own changes are seen, see
// invalidatingStore): its bearers are looked up again on their next use.
func (s *Server) ForgetConnection(id string) {
	s.bearers.forgetConnection(id)
}
