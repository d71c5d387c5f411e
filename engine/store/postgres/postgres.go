// Package postgres is a store.Store kept in PostgreSQL, through pgx. It
// is for deployments that outgrow one bbolt file: a database server that
// is backed up and monitored on its own, and several processes sharing
// the data. It passes the same conformance suite (storetest) as bolt and
// memory.
//
// Layout: one table per record kind, keyed like the bbolt buckets
// (migrations/0001_init.sql says why strings are bytea and times int8
// nanoseconds). Indexes play the part of bolt's index buckets.
//
// Concurrency: bbolt runs one write transaction at a time; PostgreSQL
// runs many, so every read-modify-write locks what it reads. Updates
// take the row with SELECT ... FOR UPDATE, writes that depend on another
// record existing take that record FOR KEY SHARE (so a concurrent delete
// waits, then sees the new rows), and the two checks that span many rows
// (CreateFlow's cap, UpsertConnection's identity) are serialized by a
// transaction-scoped advisory lock. A transaction that loses a race on a
// new row, or a deadlock, is retried from the start.
//
// Several replicas: writes that other processes may hold in a cache
// send a notice in their own transaction (changes.go, store.ChangeFeed),
// and the outbox is claimed with leases and paced per connection in the
// database (shared.go, store.SharedOutbox).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unfurld/unfurld/engine/store"
)

// Store is a store.Store in a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a URL or key=value DSN, as
// libpq reads them), applies the pending migrations under an advisory
// lock (Migrate), and returns the store.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return OpenWith(ctx, dsn, Options{})
}

// OpenWith is Open with options: serve counts the store's round trips
// for /metrics.
func OpenWith(ctx context.Context, dsn string, opts Options) (*Store, error) {
	pool, err := connect(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	if _, err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// connect opens a pool and checks that the server answers. The DSN may
// hold a password: it never appears in an error.
func connect(ctx context.Context, dsn string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors quote the DSN, password included.
		return nil, errors.New("connect to postgres: the DSN does not parse (expected postgres://user:password@host:port/database?sslmode=... or host=... dbname=...)")
	}
	if opts.RoundTrip != nil {
		cfg.ConnConfig.Tracer = roundTripTracer{count: opts.RoundTrip}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// Close releases the pool's connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Probe implements store.Store: it writes a row and deletes it again in
// one transaction, so the commit does the I/O a real write does and
// fails where it would (a read-only server, a full disk).
func (s *Store) Probe(ctx context.Context) error {
	return s.tx(ctx, "probe", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO probe (id) VALUES (1) ON CONFLICT DO NOTHING`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM probe`)
		return err
	})
}

// errRetry asks tx to run the transaction again: it lost a race to
// insert a row another transaction inserted first, and the next run will
// find (and lock) that row.
var errRetry = errors.New("retry")

// maxAttempts bounds the runs of one transaction.
const maxAttempts = 10

// tx runs fn in a transaction and commits it, retrying on errRetry, a
// deadlock or a serialization failure; it names op in its own errors.
// An error fn returns otherwise rolls back and comes back as it is, so
// callers' errors and the store sentinels reach the caller unchanged.
func (s *Store) tx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for range maxAttempts {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil || !retryable(err) {
			return wrap(op, err)
		}
	}
	return fmt.Errorf("%s: gave up after %d conflicting attempts", op, maxAttempts)
}

// retryable reports whether a failed transaction may simply run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// serialization_failure, deadlock_detected
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return errors.Is(err, errRetry)
}

// wrap names op in errors that come from the database; sentinels,
// context errors and callers' errors pass as they are.
func wrap(op string, err error) error {
	var pe *pgconn.PgError
	if err == nil || !errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// exec runs one statement outside an explicit transaction and returns
// the rows it touched.
func (s *Store) exec(ctx context.Context, op, sql string, args ...any) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return tag.RowsAffected(), nil
}

// lockKey turns a tuple of strings into an advisory lock key. A
// collision only makes two unrelated transactions wait for each other.
func lockKey(parts ...string) int64 {
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
	}
	return int64(h.Sum64()) //nolint:gosec // a hash, wrapping is fine
}

// advisoryLock takes a transaction-scoped advisory lock.
func advisoryLock(ctx context.Context, tx pgx.Tx, key int64) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, key)
	return err
}
