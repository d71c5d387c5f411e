package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/unfurld/unfurld/engine/store"
)

var (
	_ store.Exporter = (*Store)(nil)
	_ store.Importer = (*Store)(nil)
)

// tables lists the record tables, for Import's emptiness check.
var tables = []string{"connections", "tokens", "flows", "subscriptions", "outbox"}

// Export implements store.Exporter in one repeatable-read, read-only
// transaction, so every table is read as of the same instant. The
// outbox comes in (provider, uri, connection) order, as bolt keys it.
func (s *Store) Export(ctx context.Context) (store.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return store.Snapshot{}, err
	}
	var snap store.Snapshot
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err := pgx.BeginTxFunc(ctx, s.pool, opts, func(tx pgx.Tx) error {
		var err error
		rows, err := tx.Query(ctx, `SELECT `+connCols+` FROM connections ORDER BY id`)
		if snap.Connections, err = collect(rows, err, scanConn); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY digest`)
		if snap.Tokens, err = collect(rows, err, scanToken); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT `+flowCols+` FROM flows ORDER BY id`)
		if snap.Flows, err = collect(rows, err, scanFlow); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT `+subCols+` FROM subscriptions ORDER BY provider, connection_id, uri`)
		if snap.Subscriptions, err = collect(rows, err, scanSub); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT `+outboxCols+` FROM outbox ORDER BY provider, uri, connection_id`)
		snap.Outbox, err = collect(rows, err, scanItem)
		return err
	})
	if err != nil {
		return store.Snapshot{}, wrap("export", err)
	}
	return snap, nil
}

// Import implements store.Importer with COPY, one table after the other
// in one transaction, then moves outbox_seq past the largest imported
// Seq. The tables are locked first, so nothing writes between the
// emptiness check and the commit.
func (s *Store) Import(ctx context.Context, snap store.Snapshot) error {
	return s.tx(ctx, "import", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(tables, ", ")+` IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		for _, t := range tables {
			var any bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t+`)`).Scan(&any); err != nil {
				return err
			}
			if any {
				return store.ErrNotEmpty
			}
		}
		copies := []struct {
			table string
			cols  string
			n     int
			row   func(i int) []any
		}{
			{"connections", connCols, len(snap.Connections), func(i int) []any { return connArgs(snap.Connections[i]) }},
			{"tokens", tokenCols, len(snap.Tokens), func(i int) []any { return tokenArgs(snap.Tokens[i]) }},
			{"flows", flowCols, len(snap.Flows), func(i int) []any { return flowArgs(snap.Flows[i]) }},
			{"subscriptions", subCols, len(snap.Subscriptions), func(i int) []any { return subArgs(snap.Subscriptions[i]) }},
			{"outbox", outboxCols, len(snap.Outbox), func(i int) []any { return itemArgs(snap.Outbox[i]) }},
		}
		var maxSeq uint64
		for _, it := range snap.Outbox {
			maxSeq = max(maxSeq, it.Seq)
		}
		for _, c := range copies {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, columns(c.cols),
				pgx.CopyFromSlice(c.n, func(i int) ([]any, error) { return c.row(i), nil }))
			if err != nil {
				return err
			}
		}
		if maxSeq > 0 {
			_, err := tx.Exec(ctx, `SELECT setval('outbox_seq', $1)`, int64(maxSeq)) //nolint:gosec // see scanItem
			return err
		}
		return nil
	})
}

// columns splits a column list constant.
func columns(list string) []string {
	return strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
}

func flowArgs(f store.Flow) []any {
	return []any{b(f.ID), b(f.Provider), nullBytes(f.Data), ns(f.CreatedAt), ns(f.ExpiresAt)}
}

func itemArgs(it store.OutboxItem) []any {
	return []any{b(it.Provider), b(it.ConnectionID), b(it.URI), int64(it.Seq), nullBytes(it.Body), //nolint:gosec // see scanItem
		b(it.AttrHash), ns(it.EnqueuedAt), ns(it.NextAt), it.Attempts, b(it.LastError)}
}
