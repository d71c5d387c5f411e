package postgres_test

import (
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
	assert.Equal(t, []string{"0001_init.sql"}, all, "each migration applied exactly once")

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
	require.ErrorContains(t, err, "database schema version 9999, this unfurld knows versions up to 1")
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
}
