package connect

import (
	"context"
	"fmt"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
)

// Shared reports whether conn unfurls with p's service-wide credential
// (or none): it has no credential of its own to open or refresh, and its
// results share one cache entry with everyone's. A token without a
// connection is shared too.
func Shared(p *provider.Provider, conn store.Connection) bool {
	return len(conn.UpstreamCredential) == 0 && (conn.ID == "" || p.AuthType() == config.AuthNone)
}

// Unfurl runs p for uri as conn. It is the engine's one credential
// policy, followed alike by the unfurl route and the live refresher
// (issue 3 item 6):
//
//   - a connection marked for reconnecting fetches nothing: ErrReconnect;
//   - a shared connection (Shared) fetches with no credential of its own;
//   - otherwise the connection's credential is opened, and refreshed
//     first when it has expired (Credential);
//   - an upstream 401 to that credential, unless it is a passing rate
//     limit, renews it once (Rejected) and retries once, bypassing the
//     cache; a credential that cannot be renewed marks the connection,
//     and the answer is ErrReconnect.
//
// Any other error says the credential could not be had: with a nil
// result when nothing was fetched, or with the refused result when a
// 401 could not be answered by a renewal. A context that ends after the
// first fetch skips the retry; the caller checks ctx.
func (s *Service) Unfurl(ctx context.Context, p *provider.Provider, conn store.Connection, uri string, opts provider.UnfurlOptions) (*provider.Result, error) {
	if conn.Status == store.StatusReconnect {
		return nil, ErrReconnect
	}
	if Shared(p, conn) {
		return p.Unfurl(ctx, uri, provider.Credential{}, opts), nil
	}
	cred, err := s.Credential(ctx, p, conn)
	if err != nil {
		return nil, wrapCredential("upstream credential", err)
	}
	res := p.Unfurl(ctx, uri, cred, opts)
	if res.Error == nil || res.Error.Status != 401 || len(conn.UpstreamCredential) == 0 || rateLimited(res.Upstream) || ctx.Err() != nil {
		return res, nil
	}
	cred, err = s.Rejected(ctx, p, conn)
	if err != nil {
		return res, wrapCredential("upstream credential refused and not renewed", err)
	}
	opts.NoCache = true
	retry := *p.Unfurl(ctx, uri, cred, opts) // a copy: the count below is this caller's
	retry.Upstream.Requests += res.Upstream.Requests
	return &retry, nil
}

// wrapCredential says what failed; ErrReconnect stays visible to
// errors.Is through the wrap.
func wrapCredential(what string, err error) error {
	return fmt.Errorf("%s: %w", what, err)
}

// rateLimited reports whether a 401 came with the signs of a rate limit
// (a Retry-After, or no requests remaining): the credential is fine and
// renewing it would not help.
func rateLimited(u provider.UpstreamInfo) bool {
	return u.Requests > 0 && (u.RetryAfter > 0 || (u.RateLimit.Known && u.RateLimit.Remaining == 0))
}
