package postgres

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unfurld/unfurld/engine/store"
)

// The schedule is columns of subscriptions (migrations/0003_schedule.sql).
// Claims follow the well-known queue pattern: select the first rows of an
// index FOR UPDATE SKIP LOCKED and write their lease in the same
// statement. A concurrent claim skips the rows being leased instead of
// waiting for them, and once the lease is committed the WHERE clause
// keeps every later claim off them until it runs out; in READ COMMITTED
// a claim that finds a row changed under its snapshot re-checks the
// clause against the new version, so a lease committed a moment before
// is never overridden. River and similar job queues are built on the
// same statement; they would bring their own tables and workers for
// what are a few queries over the rows we already keep.

var _ store.Schedule = (*Store)(nil)

// claimPollsSQL leases the first $5 due, unleased subscriptions of
// provider $1 at now $2 to owner $3 until $4.
var claimPollsSQL = `WITH c AS (
		SELECT provider, connection_id, uri FROM subscriptions
		WHERE provider = $1 AND next_poll_at <= $2 AND (poll_until IS NULL OR poll_until <= $2)
		ORDER BY next_poll_at, connection_id, uri LIMIT $5
		FOR UPDATE SKIP LOCKED)
	UPDATE subscriptions s SET poll_owner = $3, poll_until = $4
	FROM c WHERE s.provider = c.provider AND s.connection_id = c.connection_id AND s.uri = c.uri
	RETURNING ` + subColsOf("s")

// claimPendingSQL leases the $4 oldest unleased marks at now $1 to owner
// $2 until $3. Its WHERE matches the partial index subs_pending.
var claimPendingSQL = `WITH c AS (
		SELECT provider, connection_id, uri FROM subscriptions
		WHERE refresh_outcome = 'pending'::bytea AND (pending_until IS NULL OR pending_until <= $1)
		ORDER BY refresh_at, provider, connection_id, uri LIMIT $4
		FOR UPDATE SKIP LOCKED)
	UPDATE subscriptions s SET pending_owner = $2, pending_until = $3
	FROM c WHERE s.provider = c.provider AND s.connection_id = c.connection_id AND s.uri = c.uri
	RETURNING ` + subColsOf("s")

// ClaimDuePolls implements store.Schedule.
func (s *Store) ClaimDuePolls(ctx context.Context, provider, owner string, now time.Time, d time.Duration, limit int) ([]store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, claimPollsSQL, b(provider), ns(now), b(owner), ns(now.Add(d)), limit)
	out, err := collect(rows, err, scanSub)
	if err != nil {
		return nil, wrap("claim due polls", err)
	}
	// RETURNING comes in no particular order.
	slices.SortFunc(out, func(a, b store.Subscription) int {
		return cmp.Or(a.NextPollAt.Compare(b.NextPollAt), compareKeys(a.SubscriptionKey, b.SubscriptionKey))
	})
	return out, nil
}

// compareKeys orders keys as the primary key does (bytea compares bytes,
// as Go compares strings).
func compareKeys(a, b store.SubscriptionKey) int {
	return cmp.Or(strings.Compare(a.Provider, b.Provider), strings.Compare(a.ConnectionID, b.ConnectionID),
		strings.Compare(a.URI, b.URI))
}

// NextPollDue implements store.Schedule in one query of two index
// lookups: the earliest unleased next poll (subs_by_next_poll, reading
// past the few leased rows at its front) and the earliest end of a lease
// still running (the small partial index subs_poll_leased).
func (s *Store) NextPollDue(ctx context.Context, provider string, now time.Time) (time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, err
	}
	var free, leased *int64
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT next_poll_at FROM subscriptions
			WHERE provider = $1 AND (poll_until IS NULL OR poll_until <= $2)
			ORDER BY next_poll_at LIMIT 1),
		(SELECT min(greatest(next_poll_at, poll_until)) FROM subscriptions
			WHERE provider = $1 AND poll_until IS NOT NULL AND poll_until > $2)`,
		b(provider), ns(now)).Scan(&free, &leased)
	if err != nil {
		return time.Time{}, false, wrap("next poll due", err)
	}
	var at *int64
	switch {
	case free == nil:
		at = leased
	case leased == nil || *free <= *leased:
		at = free
	default:
		at = leased
	}
	if at == nil {
		return time.Time{}, false, nil
	}
	var next time.Time
	if err := snext(&next).Scan(*at); err != nil {
		return time.Time{}, false, wrap("next poll due", err)
	}
	return next, true, nil
}

// SchedulePolls implements store.Schedule in one statement over the
// slots; a key given twice takes its last slot.
func (s *Store) SchedulePolls(ctx context.Context, owner string, slots []store.PollSlot) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	last := map[store.SubscriptionKey]int{}
	for i, slot := range slots {
		last[slot.SubscriptionKey] = i
	}
	var ps, cs, us [][]byte
	var next []int64
	for i, slot := range slots {
		if last[slot.SubscriptionKey] != i {
			continue
		}
		v, err := nextPoll(slot.Next).Value()
		if err != nil {
			return 0, wrap("schedule polls", err)
		}
		ps, cs, us = append(ps, []byte(slot.Provider)), append(cs, []byte(slot.ConnectionID)), append(us, []byte(slot.URI))
		next = append(next, v.(int64))
	}
	if len(ps) == 0 {
		return 0, nil
	}
	n, err := s.exec(ctx, "schedule polls", `UPDATE subscriptions s
		SET next_poll_at = k.n, poll_owner = NULL, poll_until = NULL
		FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::int8[]) AS k (p, c, u, n)
		WHERE s.provider = k.p AND s.connection_id = k.c AND s.uri = k.u
		AND (s.poll_owner IS NULL OR s.poll_owner = $5)`, ps, cs, us, next, b(owner))
	return int(n), err
}

// ClaimPending implements store.Schedule.
func (s *Store) ClaimPending(ctx context.Context, owner string, now time.Time, d time.Duration, limit int) ([]store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, claimPendingSQL, ns(now), b(owner), ns(now.Add(d)), limit)
	out, err := collect(rows, err, scanSub)
	if err != nil {
		return nil, wrap("claim pending", err)
	}
	slices.SortFunc(out, func(a, b store.Subscription) int {
		return cmp.Or(a.Refresh.At.Compare(b.Refresh.At), compareKeys(a.SubscriptionKey, b.SubscriptionKey))
	})
	return out, nil
}

// unfurledExpr is the expression subs_by_unfurled indexes; queries must
// spell it the same for the index to serve them.
const unfurledExpr = `coalesce(unfurled_at, updated_at, -9223372036854775808)`

// ExpireSubscriptions implements store.Schedule: one DELETE of the
// oldest rows by subs_by_unfurled. Rows locked by another transaction
// are skipped: that one is writing them, which is a sign of life.
func (s *Store) ExpireSubscriptions(ctx context.Context, provider string, before time.Time, limit int) ([]store.SubscriptionKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	var out []store.SubscriptionKey
	err := s.tx(ctx, "expire subscriptions", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `WITH c AS (
				SELECT provider, connection_id, uri, `+unfurledExpr+` AS at FROM subscriptions
				WHERE provider = $1 AND `+unfurledExpr+` < $2
				ORDER BY `+unfurledExpr+`, connection_id, uri LIMIT $3
				FOR UPDATE SKIP LOCKED)
			DELETE FROM subscriptions s USING c
			WHERE s.provider = c.provider AND s.connection_id = c.connection_id AND s.uri = c.uri
			RETURNING s.provider, s.connection_id, s.uri, c.at`, b(provider), ns(before), limit)
		type gone struct {
			k  store.SubscriptionKey
			at int64
		}
		list, err := collect(rows, err, func(row pgx.Row) (gone, error) {
			var g gone
			return g, row.Scan(sb(&g.k.Provider), sb(&g.k.ConnectionID), sb(&g.k.URI), &g.at)
		})
		if err != nil {
			return err
		}
		slices.SortFunc(list, func(a, b gone) int { return cmp.Or(cmp.Compare(a.at, b.at), compareKeys(a.k, b.k)) })
		out = out[:0]
		for _, g := range list {
			out = append(out, g.k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ScheduleCounts implements store.Schedule with one aggregate over the
// provider's rows: PostgreSQL counts them from subs_by_next_poll and the
// heap, without decoding anything in Go.
func (s *Store) ScheduleCounts(ctx context.Context, provider string, now time.Time) (store.ScheduleCounts, error) {
	if err := ctx.Err(); err != nil {
		return store.ScheduleCounts{}, err
	}
	var c store.ScheduleCounts
	err := s.pool.QueryRow(ctx, `SELECT count(*),
		count(*) FILTER (WHERE next_poll_at <= $2 AND (poll_until IS NULL OR poll_until <= $2)),
		count(*) FILTER (WHERE poll_until > $2),
		count(*) FILTER (WHERE refresh_outcome = 'pending'::bytea)
		FROM subscriptions WHERE provider = $1`, b(provider), ns(now)).Scan(&c.Subscriptions, &c.Due, &c.Leased, &c.Pending)
	return c, wrap("schedule counts", err)
}
