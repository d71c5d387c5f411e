package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The schema's migrations: migrations/NNNN_name.sql, applied in order of
// NNNN, each once, each in its own transaction, and recorded in
// schema_migrations. They are plain SQL embedded in the binary. A
// library (golang-migrate and the like) would bring drivers, sources and
// a CLI for what is a sorted loop over files under one lock; this is
// that loop.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the session-level advisory lock key that serializes
// migrations: several replicas starting at once apply each migration
// once, the others wait and find it applied. ("unfurld" in ASCII.)
const migrationLock int64 = 0x756e6675726c64

// migration is one embedded file.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded files in version order.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", e.Name())
		}
		text, err := fs.ReadFile(migrations, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && out[len(out)-1].version >= v {
			return nil, fmt.Errorf("migration %s: version %d is not after %d", e.Name(), v, out[len(out)-1].version)
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(text)})
	}
	return out, nil
}

// Migrate connects to dsn, applies the pending migrations and returns
// the names of those it applied (none when the schema is current). Open
// does the same; this is `unfurld migrate`'s entry point.
func Migrate(ctx context.Context, dsn string) ([]string, error) {
	pool, err := connect(ctx, dsn, Options{})
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	return migrate(ctx, pool)
}

// migrate applies the pending migrations while holding migrationLock on
// one connection. A database whose schema is newer than this binary's is
// refused, as bolt refuses a newer file: this binary would misread it.
func migrate(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	all, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	// Unlock with a fresh context: a cancelled ctx must not leave the
	// lock held on a connection that goes back to the pool.
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock) }()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version int4 PRIMARY KEY,
		name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if last := all[len(all)-1].version; current > last {
		return nil, fmt.Errorf("migrate: database schema version %d, this unfurld knows versions up to %d", current, last)
	}
	var applied []string
	for _, m := range all {
		if m.version <= current {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migrate: apply %s: %w", m.name, err)
		}
		applied = append(applied, m.name)
	}
	return applied, nil
}
