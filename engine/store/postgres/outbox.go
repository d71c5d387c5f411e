package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unfurld/unfurld/engine/store"
)

var _ store.Outbox = (*Store)(nil)

const outboxCols = `provider, connection_id, uri, seq, body, attr_hash, enqueued_at, next_at, attempts, last_error`

func scanItem(row pgx.Row) (store.OutboxItem, error) {
	var it store.OutboxItem
	var seq int64
	err := row.Scan(sb(&it.Provider), sb(&it.ConnectionID), sb(&it.URI), &seq, &it.Body, sb(&it.AttrHash),
		sns(&it.EnqueuedAt), sns(&it.NextAt), &it.Attempts, sb(&it.LastError))
	it.Seq = uint64(seq) //nolint:gosec // sequences start at 1
	return it, notFound(err)
}

// Enqueue implements store.Outbox with one upsert: a new state replaces
// the pending one of its key (coalescing), takes a new Seq from
// outbox_seq, and keeps the later NextAt. A replacing state draws its Seq
// in the UPDATE, after the row lock, so of concurrent enqueues the one
// that commits last holds the largest Seq (the value drawn in VALUES
// is then left unused). The subscription is read FOR
// KEY SHARE first, so a concurrent deletion either comes first (ErrNotFound)
// or waits and deletes the item too (TH-40, TH-52).
func (s *Store) Enqueue(ctx context.Context, it store.OutboxItem) (uint64, error) {
	var seq int64
	err := s.tx(ctx, "enqueue", func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT true FROM subscriptions WHERE `+keyWhere+` FOR KEY SHARE`,
			keyArgs(it.SubscriptionKey)...).Scan(&ok); err != nil {
			return notFound(err)
		}
		return tx.QueryRow(ctx, `INSERT INTO outbox (`+outboxCols+`)
			VALUES ($1, $2, $3, nextval('outbox_seq'), $4, $5, $6, $7, 0, '')
			ON CONFLICT (provider, connection_id, uri) DO UPDATE SET seq = nextval('outbox_seq'), body = EXCLUDED.body,
				attr_hash = EXCLUDED.attr_hash, enqueued_at = EXCLUDED.enqueued_at,
				next_at = greatest(outbox.next_at, EXCLUDED.next_at), attempts = 0, last_error = ''
			RETURNING seq`,
			b(it.Provider), b(it.ConnectionID), b(it.URI), nullBytes(it.Body), b(it.AttrHash),
			ns(it.EnqueuedAt), ns(it.NextAt)).Scan(&seq)
	})
	if err != nil {
		return 0, err
	}
	return uint64(seq), nil //nolint:gosec // sequences start at 1
}

// GetOutboxItem implements store.Outbox.
func (s *Store) GetOutboxItem(ctx context.Context, k store.SubscriptionKey) (store.OutboxItem, error) {
	if err := ctx.Err(); err != nil {
		return store.OutboxItem{}, err
	}
	it, err := scanItem(s.pool.QueryRow(ctx, `SELECT `+outboxCols+` FROM outbox WHERE `+keyWhere, keyArgs(k)...))
	if err != nil {
		return store.OutboxItem{}, wrap("get outbox item", err)
	}
	return it, nil
}

// DueOutbox implements store.Outbox, in bolt's index order: NextAt (the
// zero time first), then provider, uri, connection.
func (s *Store) DueOutbox(ctx context.Context, now time.Time, limit int) ([]store.OutboxItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// An item leased to a process (ClaimOutbox) is due when the lease
	// ends, and reports that as its NextAt, so that a deliverer waits for
	// it instead of finding it due again and again.
	rows, err := s.pool.Query(ctx, `SELECT provider, connection_id, uri, seq, body, attr_hash, enqueued_at,
			CASE WHEN lease_until > coalesce(next_at, `+minNs+`) THEN lease_until ELSE next_at END,
			attempts, last_error FROM outbox
		WHERE due_at <= $1
		ORDER BY due_at, provider, uri, connection_id LIMIT $2`, dueNs(now), max(limit, 0))
	out, err := collect(rows, err, scanItem)
	return out, wrap("due outbox", err)
}

// RescheduleOutbox implements store.Outbox.
func (s *Store) RescheduleOutbox(ctx context.Context, updates []store.OutboxUpdate) (int, error) {
	return s.reschedule(ctx, "reschedule outbox", updates, false)
}

// reschedule applies updates, each while its item still has the update's
// Seq, and ends the lease of each key whatever its Seq. slotted notes the
// new NextAt as the item's reserved pacing slot (DeferOutbox); otherwise
// the item has none.
func (s *Store) reschedule(ctx context.Context, op string, updates []store.OutboxUpdate, slotted bool) (int, error) {
	var n int
	err := s.tx(ctx, op, func(tx pgx.Tx) error {
		n = 0
		for _, u := range updates {
			tag, err := tx.Exec(ctx, `UPDATE outbox SET next_at = $5::int8, attempts = $6, last_error = $7,
					lease_until = NULL, slot_at = CASE WHEN $8::boolean THEN $5::int8 END
				WHERE `+keyWhere+` AND seq = $4`,
				b(u.Provider), b(u.ConnectionID), b(u.URI), int64(u.Seq), ns(u.NextAt), u.Attempts, b(u.LastError), slotted) //nolint:gosec // see scanItem
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				if err := release(ctx, tx, u.SubscriptionKey); err != nil {
					return err
				}
			}
			n += int(tag.RowsAffected())
		}
		return nil
	})
	return n, err
}

// release ends the lease on k's item, for a newer state than the one the
// lease holder settled.
func release(ctx context.Context, tx pgx.Tx, k store.SubscriptionKey) error {
	_, err := tx.Exec(ctx, `UPDATE outbox SET lease_until = NULL WHERE `+keyWhere+` AND lease_until IS NOT NULL`, keyArgs(k)...)
	return err
}

// AckOutbox implements store.Outbox.
func (s *Store) AckOutbox(ctx context.Context, sent store.OutboxItem, at time.Time) error {
	return s.tx(ctx, "ack outbox", func(tx pgx.Tx) error {
		args := append(keyArgs(sent.SubscriptionKey), int64(sent.Seq)) //nolint:gosec // see scanItem
		tag, err := tx.Exec(ctx, `DELETE FROM outbox WHERE `+keyWhere+` AND seq = $4`, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			if err := release(ctx, tx, sent.SubscriptionKey); err != nil {
				return err
			}
		}
		// As every store: the hash and UpdatedAt change with the hash, and
		// DeliveredAt when the item was settled here or the hash changed,
		// so acking an item twice changes nothing.
		_, err = tx.Exec(ctx, `UPDATE subscriptions SET
			updated_at = CASE WHEN attr_hash <> $4 THEN $5 ELSE updated_at END,
			attr_hash = $4, delivered_at = $5
			WHERE `+keyWhere+` AND (attr_hash <> $4 OR $6::boolean)`,
			append(keyArgs(sent.SubscriptionKey), b(sent.AttrHash), ns(at), tag.RowsAffected() > 0)...)
		if err != nil {
			return err
		}
		// The hash another replica's recorder remembers for this key is
		// stale now (cached.Store.AckOutbox).
		return notify(ctx, tx, store.Change{Kind: store.ChangeSubscription, Sub: sent.SubscriptionKey})
	})
}

// DeleteOutboxItem implements store.Outbox.
func (s *Store) DeleteOutboxItem(ctx context.Context, k store.SubscriptionKey, seq uint64) (bool, error) {
	var deleted bool
	err := s.tx(ctx, "delete outbox item", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM outbox WHERE `+keyWhere+` AND ($4 = 0 OR seq = $4)`,
			append(keyArgs(k), int64(seq))...) //nolint:gosec // see scanItem
		if err != nil {
			return err
		}
		deleted = tag.RowsAffected() > 0
		if deleted {
			return nil
		}
		return release(ctx, tx, k)
	})
	return deleted, err
}

// DeleteOutboxByConnection implements store.Outbox.
func (s *Store) DeleteOutboxByConnection(ctx context.Context, connectionID string) (int, error) {
	n, err := s.exec(ctx, "delete outbox", `DELETE FROM outbox WHERE connection_id = $1`, b(connectionID))
	return int(n), err
}

// DeleteOutboxByURI implements store.Outbox.
func (s *Store) DeleteOutboxByURI(ctx context.Context, provider, uri string) (int, error) {
	n, err := s.exec(ctx, "delete outbox", `DELETE FROM outbox WHERE provider = $1 AND uri = $2`, b(provider), b(uri))
	return int(n), err
}

// OutboxDepth implements store.Outbox.
func (s *Store) OutboxDepth(ctx context.Context) (map[string]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT provider, count(*) FROM outbox GROUP BY provider`)
	type depth struct {
		provider string
		n        int
	}
	list, err := collect(rows, err, func(row pgx.Row) (depth, error) {
		var d depth
		return d, row.Scan(sb(&d.provider), &d.n)
	})
	if err != nil {
		return nil, wrap("outbox depth", err)
	}
	out := map[string]int{}
	for _, d := range list {
		out[d.provider] = d.n
	}
	return out, nil
}
