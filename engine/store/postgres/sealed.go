package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/unfurld/unfurld/engine/store"
)

var _ store.SealedStore = (*Store)(nil)

// ListFlows implements store.SealedStore, in ID order.
func (s *Store) ListFlows(ctx context.Context) ([]store.Flow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+flowCols+` FROM flows ORDER BY id`)
	out, err := collect(rows, err, scanFlow)
	return out, wrap("list flows", err)
}

// ListSuccessors implements store.SealedStore, in digest order.
func (s *Store) ListSuccessors(ctx context.Context) ([]store.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+tokenCols+` FROM tokens WHERE length(successor) > 0 ORDER BY digest`)
	out, err := collect(rows, err, scanToken)
	return out, wrap("list successors", err)
}

// UpdateSuccessor implements store.SealedStore; fn runs with the token's
// row locked.
func (s *Store) UpdateSuccessor(ctx context.Context, digest string, fn func(store.Token) ([]byte, error)) error {
	return s.tx(ctx, "update successor", func(tx pgx.Tx) error {
		t, err := scanToken(tx.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE digest = $1 FOR UPDATE`, b(digest)))
		if err != nil {
			return err
		}
		next, err := fn(t)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE tokens SET successor = $2 WHERE digest = $1`, b(digest), nullBytes(next))
		return err
	})
}
