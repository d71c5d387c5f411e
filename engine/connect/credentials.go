package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/upstreamauth"
)

// ErrReconnect means a connection's upstream credential is unusable for
// good: the user must connect again. The connection has been marked
// reconnect_required.
var ErrReconnect = errors.New("connection needs reconnecting")

// refreshSkew refreshes an upstream token a little before it expires, so
// it does not expire between our check and the upstream's.
const refreshSkew = time.Minute

// Credential returns the upstream credential an unfurl for conn runs
// with. An expired upstream OAuth token is refreshed first, single-flight
// per connection, and the new pair is committed before it is used
// (TH-37). ErrReconnect when the credential cannot be used; any other
// error is temporary.
func (s *Service) Credential(ctx context.Context, p *provider.Provider, conn store.Connection) (provider.Credential, error) {
	if conn.Status == store.StatusReconnect {
		return provider.Credential{}, ErrReconnect
	}
	if len(conn.UpstreamCredential) == 0 {
		if p.AuthType() != config.AuthNone {
			return provider.Credential{}, s.markReconnect(ctx, conn, store.ConnectionEvent{Call: "open credential", Detail: "no upstream credential"})
		}
		// Public API: the provider's service-wide token, shared cache.
		return provider.Credential{}, nil
	}
	tok, err := s.openCredential(conn)
	if err != nil {
		// A key that is gone or a tampered record: never plaintext
		// fallback (TH-42).
		return provider.Credential{}, s.markReconnect(ctx, conn, store.ConnectionEvent{Call: "open credential", Detail: err.Error()})
	}
	if tok.Expired(s.now(), refreshSkew) {
		tok, err = s.refresh(ctx, p, conn, tok)
		if err != nil {
			return provider.Credential{}, err
		}
	}
	return provider.Credential{Key: conn.ID, Token: tok.AccessToken, Fields: tok.Fields}, nil
}

// Rejected is called when the upstream answered 401 to conn's credential.
// If the credential can be refreshed, it is, and the new credential is
// returned for one retry; otherwise the connection is marked and
// ErrReconnect returned.
func (s *Service) Rejected(ctx context.Context, p *provider.Provider, conn store.Connection) (provider.Credential, error) {
	if len(conn.UpstreamCredential) == 0 {
		// The service-wide token was refused: an operator problem, not
		// the user's; do not mark the connection.
		return provider.Credential{}, fmt.Errorf("service-wide token of %s refused", p.Name)
	}
	tok, err := s.openCredential(conn)
	if err != nil {
		return provider.Credential{}, s.markReconnect(ctx, conn, store.ConnectionEvent{Call: "open credential", Detail: err.Error()})
	}
	if tok.RefreshToken.IsZero() {
		return provider.Credential{}, s.markReconnect(ctx, conn, store.ConnectionEvent{Call: "upstream request", Status: http.StatusUnauthorized, Detail: "upstream refused the credential and it cannot be refreshed"})
	}
	tok, err = s.refresh(ctx, p, conn, tok)
	if err != nil {
		return provider.Credential{}, err
	}
	return provider.Credential{Key: conn.ID, Token: tok.AccessToken, Fields: tok.Fields}, nil
}

func (s *Service) openCredential(conn store.Connection) (upstreamauth.Token, error) {
	b, err := sealing.OpenConnectionField(s.opts.Keyring, conn, sealing.FieldUpstreamCredential, conn.UpstreamCredential)
	if err != nil {
		return upstreamauth.Token{}, err
	}
	return upstreamauth.DecodeToken(b)
}

// refresh renews tok through the provider's upstream OAuth client. The
// commit seals the new pair into the connection before Refresh hands it
// out.
func (s *Service) refresh(ctx context.Context, p *provider.Provider, conn store.Connection, tok upstreamauth.Token) (upstreamauth.Token, error) {
	u, ok := s.upstream(p.Name)
	if !ok || tok.RefreshToken.IsZero() {
		return upstreamauth.Token{}, s.markReconnect(ctx, conn, store.ConnectionEvent{Call: "upstream token refresh", Detail: "upstream credential expired and cannot be refreshed"})
	}
	commit := func(ctx context.Context, next upstreamauth.Token) error {
		enc, err := next.Encode()
		if err != nil {
			return err
		}
		sealed, err := sealing.SealConnectionField(s.opts.Keyring, conn, sealing.FieldUpstreamCredential, enc)
		if err != nil {
			return err
		}
		return s.opts.Store.UpdateConnection(ctx, conn.ID, func(c store.Connection) (store.Connection, error) {
			now := s.now().UTC()
			c.UpstreamCredential, c.UpstreamExpiry, c.UpdatedAt, c.UpstreamRefreshedAt = sealed, next.Expiry, now, now
			return c, nil
		})
	}
	next, err := u.Refresh(ctx, conn.ID, tok, commit)
	s.event(p.Name, "refresh", err)
	if errors.Is(err, upstreamauth.ErrReauthorize) {
		ev := store.ConnectionEvent{Call: "upstream token refresh", Detail: err.Error()}
		if te := (*upstreamauth.TokenError)(nil); errors.As(err, &te) {
			ev.Status = te.Status
		}
		return upstreamauth.Token{}, s.markReconnect(ctx, conn, ev)
	}
	if err != nil {
		return upstreamauth.Token{}, fmt.Errorf("refresh upstream credential: %w", err)
	}
	return next, nil
}

// markReconnect flags conn so every later unfurl answers "reconnect" at
// once (issue 3 item 6), keeping why (which call, which status) for the
// operator's view, and returns ErrReconnect.
func (s *Service) markReconnect(ctx context.Context, conn store.Connection, why store.ConnectionEvent) error {
	if s.opts.Observe != nil {
		s.opts.Observe(conn.Provider, "reconnect", "marked")
	}
	s.log.WarnContext(ctx, "connection needs reconnecting", "provider", conn.Provider, "connection", conn.ID, "call", why.Call, "status", why.Status, "reason", why.Detail)
	now := s.now().UTC()
	why.At = now
	err := s.opts.Store.UpdateConnection(ctx, conn.ID, func(c store.Connection) (store.Connection, error) {
		c.Status, c.UpdatedAt, c.Reconnect = store.StatusReconnect, now, why
		return c, nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.ErrorContext(ctx, "mark connection", "connection", conn.ID, "err", err)
	}
	return ErrReconnect
}
