package pgcluster_test

import (
	"net/url"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store/postgres/pgcluster"
)

// TestClusterLifecycle starts a durable cluster as the load tool does,
// creates a database reachable through the socket in the cluster's
// directory, lists the server's processes, and leaves nothing behind.
func TestClusterLifecycle(t *testing.T) {
	c, err := pgcluster.Start(pgcluster.Options{Durable: true, MaxConnections: 20})
	require.NoError(t, err)
	t.Cleanup(c.Stop)

	dsn, err := c.CreateDatabase(t.Context(), "lifecycle")
	require.NoError(t, err)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	dir := u.Query().Get("host")
	assert.DirExists(t, dir, "a Unix socket in the cluster's directory, no TCP port")

	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	var fsync, maxConns string
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT current_setting('fsync'), current_setting('max_connections')`).Scan(&fsync, &maxConns))
	assert.Equal(t, "on", fsync, "durable keeps fsync")
	assert.Equal(t, "20", maxConns)
	require.NoError(t, conn.Close(t.Context()))

	if runtime.GOOS == "linux" {
		assert.Greater(t, len(c.PIDs()), 1, "the postmaster and its children")
	}
	require.NoError(t, c.DropDatabase(t.Context(), "lifecycle"))

	c.Stop()
	assert.NoDirExists(t, dir)
	assert.Empty(t, c.PIDs())
}
