package server

import (
	"context"
	"errors"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/connect"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
)

// run unfurls uri with the caller's own upstream credential (issue 3 item
// 6). An upstream token that expired is refreshed first; a 401 from the
// upstream triggers one refresh and one retry; a credential that cannot be
// renewed marks the connection and answers "reconnect". The unfurl
// timeout starts here, after a cache hit has had its chance: the timer
// alone was 3 % of a warm unfurl (issue 2).
func (h *unfurlHandler) run(parent context.Context, cl *caller, uri string) *provider.Result {
	p := cl.provider
	svc := h.s.cfg.Connect
	if cl.conn.Status == store.StatusReconnect {
		return p.ReconnectResult(uri)
	}
	// The provider's service-wide credential (or none) needs nothing
	// opened or refreshed per connection and has one cache for everyone;
	// a connection's own credential has its own cache entries, keyed by
	// the connection, which a hit answers before the credential is opened.
	shared := len(cl.conn.UpstreamCredential) == 0 && (svc == nil || cl.conn.ID == "" || p.AuthType() == config.AuthNone)
	cacheCred := provider.Credential{}
	if !shared {
		cacheCred.Key = cl.conn.ID
	}
	if r := p.Cached(uri, cacheCred); r != nil {
		return r
	}
	ctx, cancel := context.WithTimeout(parent, h.s.cfg.Settings.UnfurlTimeout.D())
	defer cancel()
	if shared {
		return p.Unfurl(ctx, uri, provider.Credential{}, provider.UnfurlOptions{})
	}
	cred, err := svc.Credential(ctx, p, cl.conn)
	switch {
	case errors.Is(err, connect.ErrReconnect):
		return p.ReconnectResult(uri)
	case err != nil:
		h.s.log.WarnContext(ctx, "upstream credential", "provider", p.Name, "connection", cl.conn.ID, "err", err)
		return p.TryLaterResult(uri)
	}
	r := p.Unfurl(ctx, uri, cred, provider.UnfurlOptions{})
	if r.Error == nil || r.Error.Status != 401 || len(cl.conn.UpstreamCredential) == 0 {
		return r
	}
	cred, err = svc.Rejected(ctx, p, cl.conn)
	switch {
	case errors.Is(err, connect.ErrReconnect):
		return p.ReconnectResult(uri)
	case err != nil:
		h.s.log.WarnContext(ctx, "upstream credential refused and not renewed", "provider", p.Name, "connection", cl.conn.ID, "err", err)
		return r
	}
	return p.Unfurl(ctx, uri, cred, provider.UnfurlOptions{NoCache: true})
}
