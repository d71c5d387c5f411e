package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
	return s.tx(ctx, "delete token", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM tokens WHERE digest = $1`, b(digest))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return notify(ctx, tx, store.Change{Kind: store.ChangeToken, ID: digest})
	})
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
		if _, err = tx.Exec(ctx, updateConnSQL, connArgs(n)...); err != nil {
			return err
		}
		return notify(ctx, tx, store.Change{Kind: store.ChangeConnection, ID: id})
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
			`DELETE FROM outbox_pace WHERE connection_id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, b(id)); err != nil {
				return err
			}
		}
		return notify(ctx, tx, store.Change{Kind: store.ChangeConnection, ID: id})
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

// ListConnectionTokens implements store.Store through the tokens_by_conn
// index.
func (s *Store) ListConnectionTokens(ctx context.Context, id string) ([]store.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+tokenCols+` FROM tokens WHERE connection_id = $1 ORDER BY digest`, b(id))
	out, err := collect(rows, err, scanToken)
	return out, wrap("list connection tokens", err)
}

// PutSubscription implements store.Store.
func (s *Store) PutSubscription(ctx context.Context, sub store.Subscription) (bool, error) {
	n, err := s.putSubs(ctx, "put subscription", []store.Subscription{sub}, false)
	return n > 0, err
}

// PutSubscriptions implements store.Store: one transaction, records in
// order. Each record's connection is read FOR KEY SHARE, so a concurrent
// DeleteConnection either runs first (the record is skipped) or waits
// for this commit and deletes what it wrote (TH-40).
func (s *Store) PutSubscriptions(ctx context.Context, subs []store.Subscription) (int, error) {
	return s.putSubs(ctx, "put subscriptions", subs, true)
}

// putSubs merges subs into the stored records (store.MergeSubscription)
// in three round trips whatever their number, since the recorder puts
// every unfurl of a busy second through here: lock the connections (when
// needConn), lock and read the stored records, then send the writes as
// one batch. Rows are locked in key order, so concurrent batches queue
// rather than deadlock. A new row another transaction inserted first
// makes the insert do nothing, and the whole transaction runs again, to
// merge into that row.
func (s *Store) putSubs(ctx context.Context, op string, subs []store.Subscription, needConn bool) (int, error) {
	if len(subs) == 0 {
		return 0, ctx.Err()
	}
	var written int
	err := s.tx(ctx, op, func(tx pgx.Tx) error {
		written = 0
		live, err := lockConnections(ctx, tx, subs, needConn)
		if err != nil {
			return err
		}
		stored, err := lockSubs(ctx, tx, subs, live)
		if err != nil {
			return err
		}
		type pending struct {
			sub    store.Subscription
			exists bool
		}
		next := map[store.SubscriptionKey]*pending{}
		var order, release []store.SubscriptionKey
		for _, sub := range subs {
			if !live[sub.ConnectionID] {
				continue
			}
			p := next[sub.SubscriptionKey]
			old, found := stored[sub.SubscriptionKey]
			if p != nil {
				old, found = p.sub, true
			}
			merged, write := store.MergeSubscription(old, found, sub)
			if found && old.Pending() && merged.Pending() && !sub.Refresh.IsZero() && !sub.Pending() {
				release = append(release, sub.SubscriptionKey)
			}
			if !write {
				continue
			}
			written++
			if p == nil {
				_, exists := stored[sub.SubscriptionKey]
				p = &pending{exists: exists}
				next[sub.SubscriptionKey] = p
				order = append(order, sub.SubscriptionKey)
			}
			p.sub = merged
		}
		if len(order) == 0 && len(release) == 0 {
			return nil
		}
		batch := &pgx.Batch{}
		for _, k := range release {
			batch.Queue(releasePendingSQL, keyArgs(k)...)
		}
		var inserts []store.Subscription
		for _, k := range order {
			p := next[k]
			if p.exists {
				batch.Queue(updateSubSQL, updateArgs(p.sub)...)
				continue
			}
			inserts = append(inserts, p.sub)
		}
		if len(inserts) > 0 {
			cols, err := subColumns(inserts)
			if err != nil {
				return err
			}
			batch.Queue(insertSubsSQL, cols...).Exec(func(tag pgconn.CommandTag) error {
				if tag.RowsAffected() < int64(len(inserts)) {
					return errRetry
				}
				return nil
			})
		}
		return tx.SendBatch(ctx, batch).Close()
	})
	return written, err
}

const (
	// insertSubsSQL inserts a batch of new subscriptions in one
	// statement, one array per column (subColumns): the recorder's group
	// commit of many cold unfurls costs the server one statement, not
	// one per record (docs/operations.md, PostgreSQL performance).
	insertSubsSQL = `INSERT INTO subscriptions (` + subCols + `)
		SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[],
			$7::int8[], $8::int8[], $9::int8[], $10::bytea[], $11::bytea[], $12::int8[], $13::bytea[],
			$14::int8[], $15::int8[], $16::int8[])
		ON CONFLICT DO NOTHING`
	// updateSubSQL keeps next_poll_at, which only SchedulePolls changes
	// (so it takes updateArgs), and drops the pending lease with the mark: a mark made
	// later starts unleased (store.Schedule.ClaimPending).
	updateSubSQL = `UPDATE subscriptions SET attr_hash = $4, etag = $5, last_modified = $6,
		created_at = $7, updated_at = $8, refresh_at = $9, refresh_trigger = $10, refresh_outcome = $11,
		refresh_status = $12, refresh_detail = $13, delivered_at = $14, unfurled_at = $15,
		pending_owner = CASE WHEN $11 = 'pending'::bytea THEN pending_owner END,
		pending_until = CASE WHEN $11 = 'pending'::bytea THEN pending_until END
		WHERE ` + keyWhere
	// releasePendingSQL drops the lease on a mark that a recorded
	// refresh leaves standing (store.Schedule.ClaimPending).
	releasePendingSQL = `UPDATE subscriptions SET pending_owner = NULL, pending_until = NULL
		WHERE ` + keyWhere + ` AND pending_until IS NOT NULL`
)

// lockConnections returns which connections of subs exist, locked FOR
// KEY SHARE; without needConn every one counts as live.
func lockConnections(ctx context.Context, tx pgx.Tx, subs []store.Subscription, needConn bool) (map[string]bool, error) {
	live := map[string]bool{}
	var ids [][]byte
	for _, sub := range subs {
		if !live[sub.ConnectionID] {
			live[sub.ConnectionID] = true
			ids = append(ids, []byte(sub.ConnectionID))
		}
	}
	if !needConn {
		return live, nil
	}
	rows, err := tx.Query(ctx, `SELECT id FROM connections WHERE id = ANY($1::bytea[]) ORDER BY id FOR KEY SHARE`, ids)
	found, err := collect(rows, err, func(row pgx.Row) (string, error) {
		var id string
		return id, row.Scan(sb(&id))
	})
	if err != nil {
		return nil, err
	}
	clear(live)
	for _, id := range found {
		live[id] = true
	}
	return live, nil
}

// lockSubs reads and locks the stored subscriptions of subs whose
// connection is live.
func lockSubs(ctx context.Context, tx pgx.Tx, subs []store.Subscription, live map[string]bool) (map[store.SubscriptionKey]store.Subscription, error) {
	var ps, cs, us [][]byte
	for _, sub := range subs {
		if live[sub.ConnectionID] {
			ps, cs, us = append(ps, []byte(sub.Provider)), append(cs, []byte(sub.ConnectionID)), append(us, []byte(sub.URI))
		}
	}
	stored := map[store.SubscriptionKey]store.Subscription{}
	if len(ps) == 0 {
		return stored, nil
	}
	rows, err := tx.Query(ctx, `SELECT `+subColsOf("s")+` FROM subscriptions s
		JOIN unnest($1::bytea[], $2::bytea[], $3::bytea[]) AS k (p, c, u)
		ON s.provider = k.p AND s.connection_id = k.c AND s.uri = k.u
		ORDER BY s.provider, s.connection_id, s.uri FOR UPDATE OF s`, ps, cs, us)
	list, err := collect(rows, err, scanSub)
	if err != nil {
		return nil, err
	}
	for _, sub := range list {
		stored[sub.SubscriptionKey] = sub
	}
	return stored, nil
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
	return s.tx(ctx, "delete subscription", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM subscriptions WHERE `+keyWhere, keyArgs(k)...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return notify(ctx, tx, store.Change{Kind: store.ChangeSubscription, Sub: k})
	})
}

// DeleteSubscriptionsByURI implements store.Store.
func (s *Store) DeleteSubscriptionsByURI(ctx context.Context, provider, uri string) (int, error) {
	var n int
	err := s.tx(ctx, "delete subscriptions", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM subscriptions WHERE provider = $1 AND uri = $2`, b(provider), b(uri))
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		if n == 0 {
			return nil
		}
		return notify(ctx, tx, store.Change{Kind: store.ChangeURI, Sub: store.SubscriptionKey{Provider: provider, URI: uri}})
	})
	return n, err
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
