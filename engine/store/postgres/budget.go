package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/unfurld/unfurld/engine/store"
)

// Several replicas poll within one budget (store.SharedPollBudget,
// migration 0005): a provider's token bucket is a row, and a reservation
// is one UPDATE ... RETURNING on it, which refills, settles and takes in
// one statement; the row lock applies reservations made at once one
// after the other, as outbox_pace does for Notion's pacing.

var _ store.SharedPollBudget = (*Store)(nil)

// budgetRefill is the bucket refilled for the time since its last
// reservation, capped at the burst, less the debt settled (capped again,
// for a refund): $2 now, $3 tokens a nanosecond, $4 burst, $6 debt.
const budgetRefill = `least($4::float8, least($4::float8, tokens + greatest(0, $2::int8 - at)::float8 * $3::float8) - $6::float8)`

// budgetGrant is the whole tokens taken, at most $5 (want).
const budgetGrant = `least($5::int8, greatest(0, floor(` + budgetRefill + ` + 1e-6))::int8)`

// ReservePollBudget implements store.SharedPollBudget.
func (s *Store) ReservePollBudget(ctx context.Context, r store.BudgetReservation) (int, float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	now := ns(r.Now)
	args := []any{b(r.Provider), now, r.PerSecond / 1e9, r.Burst, max(r.Want, 0), r.Debt}
	reserve := func() (int, float64, error) {
		var granted int64
		var left float64
		err := s.pool.QueryRow(ctx, `UPDATE poll_budget SET granted = `+budgetGrant+`,
			tokens = `+budgetRefill+` - `+budgetGrant+`, at = greatest(at, $2::int8)
			WHERE provider = $1 RETURNING granted, tokens`, args...).Scan(&granted, &left)
		return int(granted), left, err
	}
	granted, left, err := reserve()
	if errors.Is(err, pgx.ErrNoRows) {
		// The provider's first reservation: a full bucket, then the same
		// statement (a replica inserting at once is no matter).
		if _, err = s.pool.Exec(ctx, `INSERT INTO poll_budget (provider, tokens, at) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, b(r.Provider), r.Burst, now); err == nil {
			granted, left, err = reserve()
		}
	}
	if err != nil {
		return 0, 0, wrap("reserve poll budget", err)
	}
	return granted, left, nil
}
