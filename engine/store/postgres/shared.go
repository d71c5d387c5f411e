package postgres

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unfurld/unfurld/engine/store"
)

// Several replicas drain the one outbox (store.SharedOutbox, migration
// 0004). A claim is the well-known queue pattern: select due rows FOR
// UPDATE SKIP LOCKED, so that replicas claiming at once take different
// rows without waiting on each other, and mark them leased in the same
// statement. The lease is a time, not a lock held by a session: a
// replica killed with kill -9 holds nothing once its lease runs out.
// A queue library (River and the like) would bring its own job table,
// workers and retry policy beside the outbox's, which already has
// coalescing, Seq-guarded settling and Notion's backoff; a lease column
// on the existing table is all that was missing.

var _ store.SharedOutbox = (*Store)(nil)

// minNs is the int8 the zero time (NULL) counts as in due_at.
const minNs = "-9223372036854775808"

// dueNs is t as due_at compares it: the zero time is before every other,
// and times past what int8 nanoseconds hold are clamped to its ends.
func dueNs(t time.Time) int64 {
	switch {
	case t.IsZero() || t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime): // "every item", as DeliverDue's endOfTime asks
		return math.MaxInt64
	}
	return t.UnixNano()
}

// ClaimOutbox implements store.SharedOutbox.
func (s *Store) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.OutboxClaim, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cols := "o." + strings.ReplaceAll(outboxCols, ", ", ", o.")
	rows, err := s.pool.Query(ctx, `UPDATE outbox o SET lease_until = $2
		FROM (SELECT provider, connection_id, uri FROM outbox WHERE due_at <= $1
			ORDER BY due_at, provider, uri, connection_id LIMIT $3 FOR UPDATE SKIP LOCKED) d
		WHERE o.provider = d.provider AND o.connection_id = d.connection_id AND o.uri = d.uri
		RETURNING `+cols+`, o.slot_at`, dueNs(now), ns(now.Add(lease)), max(limit, 0))
	out, err := collect(rows, err, func(row pgx.Row) (store.OutboxClaim, error) {
		var c store.OutboxClaim
		var seq int64
		err := row.Scan(sb(&c.Provider), sb(&c.ConnectionID), sb(&c.URI), &seq, &c.Body, sb(&c.AttrHash),
			sns(&c.EnqueuedAt), sns(&c.NextAt), &c.Attempts, sb(&c.LastError), sns(&c.Slot))
		c.Seq = uint64(seq) //nolint:gosec // see scanItem
		return c, err
	})
	if err != nil {
		return nil, wrap("claim outbox", err)
	}
	// RETURNING keeps no order: put the claims back in DueOutbox's.
	slices.SortFunc(out, func(a, b store.OutboxClaim) int {
		return cmp.Or(a.NextAt.Compare(b.NextAt), strings.Compare(a.Provider, b.Provider),
			strings.Compare(a.URI, b.URI), strings.Compare(a.ConnectionID, b.ConnectionID))
	})
	return out, nil
}

// DeferOutbox implements store.SharedOutbox.
func (s *Store) DeferOutbox(ctx context.Context, updates []store.OutboxUpdate) (int, error) {
	return s.reschedule(ctx, "defer outbox", updates, true)
}

// UpdatePace implements store.SharedOutbox: the connection's row is
// locked from the read to the write (a new row is inserted first, so
// there is always one to lock), so reservations made at once by several
// replicas are applied one after the other.
func (s *Store) UpdatePace(ctx context.Context, connectionID string, fn func(store.Pace) store.Pace) error {
	return s.tx(ctx, "update pace", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO outbox_pace (connection_id) VALUES ($1) ON CONFLICT DO NOTHING`, b(connectionID)); err != nil {
			return err
		}
		var p store.Pace
		if err := tx.QueryRow(ctx, `SELECT tat, hold FROM outbox_pace WHERE connection_id = $1 FOR UPDATE`,
			b(connectionID)).Scan(sns(&p.TAT), sns(&p.Hold)); err != nil {
			return err
		}
		p = fn(p)
		_, err := tx.Exec(ctx, `UPDATE outbox_pace SET tat = $2, hold = $3 WHERE connection_id = $1`,
			b(connectionID), ns(p.TAT), ns(p.Hold))
		return err
	})
}
