package server

import (
	"context"
	"errors"

	"github.com/unfurld/unfurld/engine/connect"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
)

// run unfurls uri as the caller's connection. The credential policy
// (shared or own credential, refresh, one retry after a 401, reconnect
// marking) is connect.Service.Unfurl's, the same the live refresher
// follows; run adds what belongs to a request: a cache hit is answered
// before any credential is opened, and the unfurl timeout starts after
// it (the timer alone was 3 % of a warm unfurl, issue 2).
func (h *unfurlHandler) run(parent context.Context, cl *caller, uri string) *provider.Result {
	p := cl.provider
	svc := h.s.cfg.Connect
	if cl.conn.Status == store.StatusReconnect {
		return p.ReconnectResult(uri)
	}
	// A connection's own credential has its own cache entries, keyed by
	// the connection; everyone else shares one.
	cacheCred := provider.Credential{}
	if svc != nil && !connect.Shared(p, cl.conn) {
		cacheCred.Key = cl.conn.ID
	}
	if r := p.Cached(uri, cacheCred); r != nil {
		return r
	}
	ctx, cancel := context.WithTimeout(parent, h.s.cfg.Settings.UnfurlTimeout.D())
	defer cancel()
	if svc == nil { // no connection flow (unit tests): the service-wide credential
		return p.Unfurl(ctx, uri, provider.Credential{}, provider.UnfurlOptions{})
	}
	r, err := svc.Unfurl(ctx, p, cl.conn, uri, provider.UnfurlOptions{})
	switch {
	case errors.Is(err, connect.ErrReconnect):
		return p.ReconnectResult(uri)
	case err != nil && r == nil:
		h.s.log.WarnContext(ctx, "upstream credential", "provider", p.Name, "connection", cl.conn.ID, "err", err)
		return p.TryLaterResult(uri)
	case err != nil:
		h.s.log.WarnContext(ctx, "upstream credential refused and not renewed", "provider", p.Name, "connection", cl.conn.ID, "err", err)
	}
	return r
}
