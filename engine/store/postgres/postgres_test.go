package postgres_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/cached"
	"github.com/unfurld/unfurld/engine/store/postgres"
	"github.com/unfurld/unfurld/engine/store/postgres/pgtest"
	"github.com/unfurld/unfurld/engine/store/storetest"
)

// cluster is this test binary's throwaway PostgreSQL server.
var cluster pgtest.Cluster

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

// open returns a store on a fresh database.
func open(t *testing.T) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), cluster.Database(t))
	require.NoError(t, err)
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func TestOutboxConformance(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T) storetest.OutboxStore { return open(t) })
}

func TestScheduleConformance(t *testing.T) {
	storetest.RunSchedule(t, func(t *testing.T) storetest.ScheduleStore { return open(t) })
}

func TestSealedConformance(t *testing.T) {
	storetest.RunSealed(t, func(t *testing.T) store.Store { return open(t) })
}

// TestMigrateConcurrently: replicas that start at once apply each
// migration once; the others wait for the lock and find nothing to do.
func TestMigrateConcurrently(t *testing.T) {
	dsn := cluster.Database(t)
	const n = 4
	applied := make(chan []string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			names, err := postgres.Migrate(t.Context(), dsn)
			assert.NoError(t, err)
			applied <- names
		})
	}
	wg.Wait()
	close(applied)
	var all []string
	for names := range applied {
		all = append(all, names...)
	}
	assert.ElementsMatch(t, []string{"0001_init.sql", "0002_connection_story.sql", "0003_schedule.sql", "0004_outbox_leases.sql", "0005_poll_budget.sql"}, all, "each migration applied exactly once")

	again, err := postgres.Migrate(t.Context(), dsn)
	require.NoError(t, err)
	assert.Empty(t, again)
	s, err := postgres.Open(t.Context(), dsn)
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

// TestOpenRefusesNewerSchema: a database migrated by a newer unfurld is
// not read by this one, as bolt refuses a newer file.
func TestOpenRefusesNewerSchema(t *testing.T) {
	dsn := cluster.Database(t)
	_, err := postgres.Migrate(t.Context(), dsn)
	require.NoError(t, err)
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(t.Context()))

	_, err = postgres.Open(t.Context(), dsn)
	require.ErrorContains(t, err, "database schema version 9999, this unfurld knows versions up to 5")
}

// TestOpenErrorsHideThePassword: a DSN holds the database password; no
// error of Open repeats it.
func TestOpenErrorsHideThePassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://unfurld:hunter2-secret@127.0.0.1:1/db?sslmode=disable&connect_timeout=5",
		"postgres://unfurld:hunter2-secret@host:notaport/db",
		"host=127.0.0.1 port=1 password=hunter2-secret connect_timeout=5 sslmode=disable",
	} {
		_, err := postgres.Open(t.Context(), dsn)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "hunter2-secret")
	}
}

// TestTimeOutsideRangeIsRefused: int8 nanoseconds hold the years 1678 to
// 2262; a time outside fails the write instead of wrapping around.
func TestTimeOutsideRangeIsRefused(t *testing.T) {
	s := open(t)
	defer func() { require.NoError(t, s.Close()) }()
	far := time.Date(3000, time.January, 1, 0, 0, 0, 0, time.UTC)
	err := s.CreateToken(t.Context(), store.Token{Digest: "d", Kind: store.KindAccess, Provider: "p", CreatedAt: far})
	require.ErrorContains(t, err, "outside the years 1678-2262")
	_, err = s.GetToken(t.Context(), store.KindAccess, "d")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestImportNeedsAnEmptyStore: Import copies, it never merges.
func TestImportNeedsAnEmptyStore(t *testing.T) {
	s := open(t)
	defer func() { require.NoError(t, s.Close()) }()
	snap := store.Snapshot{Connections: []store.Connection{{ID: "c1", Provider: "p"}}}
	require.NoError(t, s.Import(t.Context(), snap))
	require.ErrorIs(t, s.Import(t.Context(), store.Snapshot{Tokens: []store.Token{{Digest: "d", Kind: store.KindAccess}}}), store.ErrNotEmpty)
	got, err := s.Export(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"c1"}, []string{got.Connections[0].ID})
	assert.Empty(t, got.Tokens)
}

// TestConformanceUnderCache: the shared cached store (bearer cache,
// subscription group commit) over PostgreSQL keeps the contract too.
func TestConformanceUnderCache(t *testing.T) {
	over := func(t *testing.T) *cached.Store { return cached.New(open(t), cached.Options{}) }
	storetest.Run(t, func(t *testing.T) store.Store { return over(t) })
	storetest.RunOutbox(t, func(t *testing.T) storetest.OutboxStore { return over(t) })
	storetest.RunSealed(t, func(t *testing.T) store.Store { return over(t) })
	storetest.RunSchedule(t, func(t *testing.T) storetest.ScheduleStore { return over(t) })
}

// waitForLockWaiters polls until n sessions of the database wait on a
// lock, so that a test can order its transactions.
func waitForLockWaiters(t *testing.T, conn *pgx.Conn, n int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var waiting int
		require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting))
		if waiting >= n {
			return
		}
	}
	t.Fatalf("fewer than %d sessions wait on a lock", n)
}

// TestConsumeDuringDeletion_TH16_TH40: a redemption racing the deletion
// of its connection, or the revocation of its grant, leaves no token
// behind. The redemption holds the connection and the grant while it
// creates the new tokens, so the deletion waits and then removes them
// too; without that, the deletion's statement, begun before the
// redemption committed, would miss them. An outside transaction holds
// the code's row so that both calls queue up behind it in a known order:
// the redemption first.
func TestConsumeDuringDeletion_TH16_TH40(t *testing.T) {
	tests := []struct {
		name   string
		delete func(ctx context.Context, s *postgres.Store) error
	}{
		{"DeleteConnection", func(ctx context.Context, s *postgres.Store) error { return s.DeleteConnection(ctx, "c1") }},
		{"RevokeGrant", func(ctx context.Context, s *postgres.Store) error { _, err := s.RevokeGrant(ctx, "g"); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn := cluster.Database(t)
			s, err := postgres.Open(t.Context(), dsn)
			require.NoError(t, err)
			defer func() { require.NoError(t, s.Close()) }()
			ctx := t.Context()
			now := time.Now()
			require.NoError(t, s.CreateConnection(ctx, store.Connection{ID: "c1", Provider: "p", CreatedAt: now}))
			require.NoError(t, s.CreateToken(ctx, store.Token{Digest: "code", Kind: store.KindCode, Provider: "p",
				ConnectionID: "c1", GrantID: "g", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}))

			holder, err := pgx.Connect(ctx, dsn)
			require.NoError(t, err)
			defer func() { _ = holder.Close(context.WithoutCancel(ctx)) }()
			watcher, err := pgx.Connect(ctx, dsn)
			require.NoError(t, err)
			defer func() { _ = watcher.Close(context.WithoutCancel(ctx)) }()
			hold, err := holder.Begin(ctx)
			require.NoError(t, err)
			_, err = hold.Exec(ctx, `SELECT FROM tokens WHERE digest = 'code'::bytea FOR UPDATE`)
			require.NoError(t, err)

			var wg sync.WaitGroup
			wg.Go(func() {
				_, _, err := s.ConsumeToken(ctx, store.Consume{Kind: store.KindCode, Digest: "code", Provider: "p", Now: now,
					Issue: func(old store.Token) ([]store.Token, []byte, error) {
						return []store.Token{{Digest: "access", Kind: store.KindAccess, Provider: "p", ConnectionID: "c1", GrantID: "g", CreatedAt: now}}, nil, nil
					}})
				assert.NoError(t, err)
			})
			waitForLockWaiters(t, watcher, 1)
			wg.Go(func() { assert.NoError(t, tc.delete(ctx, s)) })
			waitForLockWaiters(t, watcher, 2)
			require.NoError(t, hold.Commit(ctx))
			wg.Wait()

			for _, d := range []string{"code", "access"} {
				for _, kind := range []store.TokenKind{store.KindCode, store.KindAccess} {
					_, err := s.GetToken(ctx, kind, d)
					assert.ErrorIs(t, err, store.ErrNotFound, "token %s survived", d)
				}
			}
		})
	}
}

func TestSharedPollBudgetConformance(t *testing.T) {
	storetest.RunSharedPollBudget(t, func(t *testing.T) storetest.BudgetStore { return open(t) })
}
