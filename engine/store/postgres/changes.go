package postgres

import (
	"context"
	"encoding/base64"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unfurld/unfurld/engine/store"
)

// The change feed (store.ChangeFeed): every write that another replica
// may hold in a cache (a revoked token, an updated or deleted
// connection, a deleted or delivered subscription) calls pg_notify in
// its own transaction, so the notice goes out exactly when the write
// commits and never for a write that rolled back. Each process keeps one
// connection that LISTENs on the channel and hands the notices to its
// cached store. PostgreSQL does not queue notices for a listener that is
// not connected, so after any gap the listener reports ChangeLost and
// then ChangeResync, and the cache drops everything.

// changesChannel is the LISTEN/NOTIFY channel.
const changesChannel = "unfurld_changes"

// listenerName is the application_name of the listening connection, so
// an operator (and a test) can tell it apart in pg_stat_activity.
const listenerName = "unfurld listen"

// listenRetry is the wait before the listener connects again after it
// lost its connection. Meanwhile the caches hold nothing, so the wait
// costs reads, not correctness.
const listenRetry = time.Second

// maxPayload keeps a notice under PostgreSQL's 8000-byte limit; a longer
// one (a very long URI) is sent as ChangeSubscriptions, which drops more.
const maxPayload = 7900

// notify sends ch to every listener when tx commits.
func notify(ctx context.Context, tx pgx.Tx, ch store.Change) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, changesChannel, encodeChange(ch))
	return err
}

// Payload letters; the parts after them are base64url, so any bytes
// survive (IDs and URIs are Go strings, not necessarily UTF-8, and a
// notice is text).
var changeLetters = map[store.ChangeKind]string{
	store.ChangeToken: "t", store.ChangeConnection: "c", store.ChangeGrant: "g", store.ChangeTokens: "T",
	store.ChangeSubscription: "s", store.ChangeURI: "u", store.ChangeSubscriptions: "S",
}

// encodeChange writes ch as a notice payload: a letter, then the
// base64url parts separated by dots.
func encodeChange(ch store.Change) string {
	enc := base64.RawURLEncoding.EncodeToString
	var parts []string
	switch ch.Kind {
	case store.ChangeToken, store.ChangeConnection, store.ChangeGrant:
		parts = []string{enc([]byte(ch.ID))}
	case store.ChangeSubscription:
		parts = []string{enc([]byte(ch.Sub.Provider)), enc([]byte(ch.Sub.ConnectionID)), enc([]byte(ch.Sub.URI))}
	case store.ChangeURI:
		parts = []string{enc([]byte(ch.Sub.Provider)), enc([]byte(ch.Sub.URI))}
	}
	p := changeLetters[ch.Kind] + strings.Join(parts, ".")
	if len(p) > maxPayload {
		return changeLetters[store.ChangeSubscriptions]
	}
	return p
}

// decodeChange reads a payload; ok is false for one this version does
// not know, which the listener treats as a resync (drop everything)
// rather than ignore.
func decodeChange(p string) (store.Change, bool) {
	if p == "" {
		return store.Change{}, false
	}
	var kind store.ChangeKind
	for k, l := range changeLetters {
		if l == p[:1] {
			kind = k
		}
	}
	var parts []string
	for _, s := range strings.Split(p[1:], ".") {
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return store.Change{}, false
		}
		parts = append(parts, string(raw))
	}
	ch := store.Change{Kind: kind}
	switch {
	case (kind == store.ChangeToken || kind == store.ChangeConnection || kind == store.ChangeGrant) && len(parts) == 1:
		ch.ID = parts[0]
	case kind == store.ChangeSubscription && len(parts) == 3:
		ch.Sub = store.SubscriptionKey{Provider: parts[0], ConnectionID: parts[1], URI: parts[2]}
	case kind == store.ChangeURI && len(parts) == 2:
		ch.Sub = store.SubscriptionKey{Provider: parts[0], URI: parts[1]}
	case kind == store.ChangeTokens || kind == store.ChangeSubscriptions:
	default:
		return store.Change{}, false
	}
	return ch, true
}

var _ store.ChangeFeed = (*Store)(nil)

// WatchChanges implements store.ChangeFeed with a dedicated connection
// (not one of the pool's, which serve requests) that LISTENs on
// changesChannel, and connects again after listenRetry whenever it is
// lost.
func (s *Store) WatchChanges(ctx context.Context, fn func(store.Change)) {
	for {
		s.listen(ctx, fn)
		if ctx.Err() != nil {
			return
		}
		fn(store.Change{Kind: store.ChangeLost})
		select {
		case <-ctx.Done():
			return
		case <-time.After(listenRetry):
		}
	}
}

// listen runs one listening connection until it fails or ctx ends. Only
// once LISTEN is in place does it report ChangeResync: a write committed
// before that is covered by the resync, one after it by its notice.
func (s *Store) listen(ctx context.Context, fn func(store.Change)) {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = listenerName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, `LISTEN `+changesChannel); err != nil {
		return
	}
	fn(store.Change{Kind: store.ChangeResync})
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return
		}
		ch, ok := decodeChange(n.Payload)
		if !ok {
			ch = store.Change{Kind: store.ChangeResync}
		}
		fn(ch)
	}
}
