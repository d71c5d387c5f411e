package connect

import (
	"context"
	"time"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/upstreamauth"
)

// Revocation is what revoking one connection's upstream grant takes: the
// provider's OAuth client, the opened credential and the timeout. It is
// read before the connection is deleted, since the deletion erases the
// credential (security.md TH-40). The zero value revokes nothing.
type Revocation struct {
	up      *upstreamauth.Client
	tok     upstreamauth.Token
	timeout time.Duration
	conn    string
}

// RevocationFor returns what revoking conn's grant takes, or the zero
// value when its provider declares no revocation endpoint (API-key and
// public providers never do) or conn holds no credential. A credential
// that no longer opens cannot be revoked; that is logged, and the
// deletion goes on.
func (s *Service) RevocationFor(ctx context.Context, conn store.Connection) Revocation {
	u, ok := s.upstream(conn.Provider)
	if !ok || !u.CanRevoke() || len(conn.UpstreamCredential) == 0 {
		return Revocation{}
	}
	tok, err := s.openCredential(conn)
	if err != nil {
		s.log.WarnContext(ctx, "upstream grant not revoked: credential does not open", "provider", conn.Provider, "connection", conn.ID, "err", err)
		return Revocation{}
	}
	r := Revocation{up: u, tok: tok, conn: conn.ID}
	if p, ok := s.opts.Registry.Get(conn.Provider); ok {
		r.timeout = p.Config.Upstream.Timeout.D()
	}
	return r
}

// Revoke revokes r's grant at the upstream, best effort, and reports
// whether it did. Call it only after the local deletion has committed:
// the user's wish to disconnect must not wait on, or fail with, the
// upstream. It runs to its own timeouts even if ctx is canceled (Notion
// hanging up must not leave the grant alive); a failure is logged at
// warn, without the token.
func (s *Service) Revoke(ctx context.Context, r Revocation) bool {
	if r.up == nil {
		return false
	}
	err := r.up.Revoke(context.WithoutCancel(ctx), r.tok, r.timeout)
	if err != nil {
		s.log.WarnContext(ctx, "upstream grant not revoked", "provider", r.up.Provider(), "connection", r.conn, "err", err)
		return false
	}
	s.log.InfoContext(ctx, "upstream grant revoked", "provider", r.up.Provider(), "connection", r.conn)
	return true
}
