package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/unfurld/unfurld/engine/store"
)

// CreateToken implements store.Store.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	return s.tx(ctx, "create token", func(tx pgx.Tx) error { return insertToken(ctx, tx, t) })
}

// GetToken implements store.Store.
func (s *Store) GetToken(ctx context.Context, kind store.TokenKind, digest string) (store.Token, error) {
	if err := ctx.Err(); err != nil {
		return store.Token{}, err
	}
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE digest = $1 AND kind = $2`,
		b(digest), b(string(kind))))
	if err != nil {
		return store.Token{}, wrap("get token", err)
	}
	return t, nil
}

// DeleteToken implements store.Store.
func (s *Store) DeleteToken(ctx context.Context, digest string) error {
	n, err := s.exec(ctx, "delete token", `DELETE FROM tokens WHERE digest = $1`, b(digest))
	if err == nil && n == 0 {
		return store.ErrNotFound
	}
	return err
}

// CreateConnection implements store.Store.
func (s *Store) CreateConnection(ctx context.Context, c store.Connection) error {
	n, err := s.exec(ctx, "create connection", insertConnSQL, connArgs(c)...)
	if err == nil && n == 0 {
		return store.ErrAlreadyExists
	}
	return err
}

// GetConnection implements store.Store.
func (s *Store) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	if err := ctx.Err(); err != nil {
		return store.Connection{}, err
	}
	c, err := scanConn(s.pool.QueryRow(ctx, `SELECT `+connCols+` FROM connections WHERE id = $1`, b(id)))
	if err != nil {
		return store.Connection{}, wrap("get connection", err)
	}
	return c, nil
}

// UpdateConnection implements store.Store: the row is locked from the
// read to the write, so concurrent updates apply one after the other.
// fn runs inside the transaction and must not call the store. The record
// stays under id whatever ID fn returns.
func (s *Store) UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error {
	return s.tx(ctx, "update connection", func(tx pgx.Tx) error {
		c, err := scanConn(tx.QueryRow(ctx, `SELECT `+connCols+` FROM connections WHERE id = $1 FOR UPDATE`, b(id)))
		if err != nil {
			return err
		}
		n, err := fn(c)
		if err != nil {
			return err
		}
		n.ID = id
		_, err = tx.Exec(ctx, updateConnSQL, connArgs(n)...)
		return err
	})
}

// DeleteConnection implements store.Store: the connection, its tokens,
// subscriptions and queued updates go in one transaction (TH-40). The
// connection's row is deleted first: a PutSubscriptions or Enqueue that
// holds it waits, and the deletes that follow see what it wrote.
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	return s.tx(ctx, "delete connection", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM connections WHERE id = $1`, b(id))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		for _, q := range []string{
			`DELETE FROM tokens WHERE connection_id = $1`,
			`DELETE FROM subscriptions WHERE connection_id = $1`,
			`DELETE FROM outbox WHERE connection_id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, b(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListConnections implements store.Store, in id order.
func (s *Store) ListConnections(ctx context.Context, provider string) ([]store.Connection, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+connCols+` FROM connections
		WHERE $1::bytea = '' OR provider = $1 ORDER BY id`, b(provider))
	out, err := collect(rows, err, scanConn)
	return out, wrap("list connections", err)
}

// PutSubscription implements store.Store.
func (s *Store) PutSubscription(ctx context.Context, sub store.Subscription) (bool, error) {
	var wrote bool
	err := s.tx(ctx, "put subscription", func(tx pgx.Tx) error {
		var err error
		wrote, err = putSub(ctx, tx, sub)
		return err
	})
	return wrote, err
}

// putSub merges sub into the stored record (store.MergeSubscription)
// with the row locked. When there is no row yet and another transaction
// inserts one first, the insert does nothing and the transaction runs
// again, to merge into that row.
func putSub(ctx context.Context, tx pgx.Tx, sub store.Subscription) (bool, error) {
	old, err := scanSub(tx.QueryRow(ctx, `SELECT `+subCols+` FROM subscriptions WHERE `+keyWhere+` FOR UPDATE`,
		keyArgs(sub.SubscriptionKey)...))
	found := err == nil
	if err != nil && err != store.ErrNotFound {
		return false, err
	}
	next, write := store.MergeSubscription(old, found, sub)
	if !write {
		return false, nil
	}
	if found {
		_, err := tx.Exec(ctx, `UPDATE subscriptions SET attr_hash = $4, etag = $5, last_modified = $6,
			created_at = $7, updated_at = $8, refresh_at = $9, refresh_trigger = $10, refresh_outcome = $11,
			refresh_status = $12, refresh_detail = $13 WHERE `+keyWhere, subArgs(next)...)
		return err == nil, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO subscriptions (`+subCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING`, subArgs(next)...)
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 0 {
		return false, errRetry
	}
	return true, nil
}

// PutSubscriptions implements store.Store: one transaction, records in
// order. Each record's connection is read FOR KEY SHARE, so a concurrent
// DeleteConnection either runs first (the record is skipped) or waits
// for this commit and deletes what it wrote (TH-40).
func (s *Store) PutSubscriptions(ctx context.Context, subs []store.Subscription) (int, error) {
	var written int
	err := s.tx(ctx, "put subscriptions", func(tx pgx.Tx) error {
		written = 0
		live := map[string]bool{}
		for _, sub := range subs {
			ok, seen := live[sub.ConnectionID]
			if !seen {
				err := tx.QueryRow(ctx, `SELECT true FROM connections WHERE id = $1 FOR KEY SHARE`, b(sub.ConnectionID)).Scan(&ok)
				if err := notFound(err); err != nil && err != store.ErrNotFound {
					return err
				}
				live[sub.ConnectionID] = ok
			}
			if !ok {
				continue
			}
			wrote, err := putSub(ctx, tx, sub)
			if err != nil {
				return err
			}
			if wrote {
				written++
			}
		}
		return nil
	})
	return written, err
}

// GetSubscription implements store.Store.
func (s *Store) GetSubscription(ctx context.Context, k store.SubscriptionKey) (store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return store.Subscription{}, err
	}
	sub, err := scanSub(s.pool.QueryRow(ctx, `SELECT `+subCols+` FROM subscriptions WHERE `+keyWhere, keyArgs(k)...))
	if err != nil {
		return store.Subscription{}, wrap("get subscription", err)
	}
	return sub, nil
}

// DeleteSubscription implements store.Store.
func (s *Store) DeleteSubscription(ctx context.Context, k store.SubscriptionKey) error {
	n, err := s.exec(ctx, "delete subscription", `DELETE FROM subscriptions WHERE `+keyWhere, keyArgs(k)...)
	if err == nil && n == 0 {
		return store.ErrNotFound
	}
	return err
}

// DeleteSubscriptionsByURI implements store.Store.
func (s *Store) DeleteSubscriptionsByURI(ctx context.Context, provider, uri string) (int, error) {
	n, err := s.exec(ctx, "delete subscriptions", `DELETE FROM subscriptions WHERE provider = $1 AND uri = $2`,
		b(provider), b(uri))
	return int(n), err
}

// listPage is how many subscriptions ListSubscriptions reads per query.
const listPage = 500

// ListSubscriptions implements store.Store, in (provider, connection,
// uri) order. It reads a page at a time after the last key it saw and
// calls fn with no query open, so fn may call the store, and a walk over
// many subscriptions holds one page in memory. Like bolt's walk, it sees
// each record as of the page that read it.
func (s *Store) ListSubscriptions(ctx context.Context, provider string, fn func(store.Subscription) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var after *store.SubscriptionKey
	for {
		args := []any{b(provider), listPage, false, b(""), b(""), b("")}
		if after != nil {
			args[2], args[3], args[4], args[5] = true, b(after.Provider), b(after.ConnectionID), b(after.URI)
		}
		rows, err := s.pool.Query(ctx, `SELECT `+subCols+` FROM subscriptions
			WHERE ($1::bytea = '' OR provider = $1)
			AND (NOT $3::bool OR (provider, connection_id, uri) > ($4::bytea, $5::bytea, $6::bytea))
			ORDER BY provider, connection_id, uri LIMIT $2`, args...)
		page, err := collect(rows, err, scanSub)
		if err != nil {
			return fmt.Errorf("list subscriptions: %w", err)
		}
		for _, sub := range page {
			if err := fn(sub); err != nil {
				return err
			}
		}
		if len(page) < listPage {
			return nil
		}
		last := page[len(page)-1].SubscriptionKey
		after = &last
	}
}

// ListSubscriptionsByURIPrefix implements store.Store, in (uri,
// connection) order. The range uri >= prefix lets the index find the
// start; the prefix test ends the match.
func (s *Store) ListSubscriptionsByURIPrefix(ctx context.Context, provider, prefix string, limit int) ([]store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+subCols+` FROM subscriptions
		WHERE provider = $1 AND uri >= $2::bytea AND substring(uri FROM 1 FOR length($2::bytea)) = $2::bytea
		ORDER BY uri, connection_id LIMIT $3`, b(provider), b(prefix), max(limit, 0))
	out, err := collect(rows, err, scanSub)
	return out, wrap("list subscriptions by uri", err)
}
