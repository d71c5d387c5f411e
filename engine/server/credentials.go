package server

import (
	"context"
	"errors"

	"github.com/unfurld/unfurld/engine/connect"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
)

// run unfurls uri with the caller's own upstream credential (issue 3 item
// 6). An upstream token that expired is refreshed first; a 401 from the
// upstream triggers one refresh and one retry; a credential that cannot be
// renewed marks the connection and answers "reconnect".
func (h *unfurlHandler) run(ctx context.Context, cl *caller, uri string) *provider.Result {
	p := cl.provider
	svc := h.s.cfg.Connect
	if cl.conn.Status == store.StatusReconnect {
		return p.ReconnectResult(uri)
	}
	if svc == nil || cl.conn.ID == "" {
		return p.Unfurl(ctx, uri, provider.Credential{Key: credentialKey(cl)}, provider.UnfurlOptions{})
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
