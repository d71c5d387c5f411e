// Package pgtest runs a throwaway PostgreSQL cluster for tests
// (pgcluster: initdb and pg_ctl from Debian's postgresql package, a data
// directory in a temporary directory, a Unix socket in that directory and
// no TCP port at all, so nothing listens beyond this machine and runs
// cannot collide on a port). One cluster serves a whole test binary;
// every test gets a fresh database of its own.
//
// A test package keeps one Cluster and stops it from TestMain:
//
//	var cluster pgtest.Cluster
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		cluster.Stop()
//		os.Exit(code)
//	}
//
// There is no skip: without the binaries, Database fails the test with
// the command that installs them.
package pgtest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/unfurld/unfurld/engine/store/postgres/pgcluster"
)

// InstallHint is the command that provides the binaries.
const InstallHint = pgcluster.InstallHint

// UserEnv names the environment variable that picks the unprivileged user
// the cluster runs as when the tests run as root (initdb refuses root);
// unset, it is "nobody".
const UserEnv = pgcluster.UserEnv

// Cluster is a lazily started throwaway cluster (pgcluster, without
// durability: the tests are about semantics, not crash safety). The zero
// value is ready: the first Database call starts it. Its methods are
// safe for concurrent use.
type Cluster struct {
	once sync.Once
	err  error
	c    *pgcluster.Cluster

	mu sync.Mutex
	n  int
}

// Database creates a fresh, empty database for t, drops it when t ends,
// and returns its DSN (a Unix-socket URL). It fails t when the cluster
// cannot start, naming the install command if the binaries are missing.
func (c *Cluster) Database(t testing.TB) string {
	t.Helper()
	c.once.Do(func() { c.c, c.err = pgcluster.Start(pgcluster.Options{}) })
	if c.err != nil {
		t.Fatalf("postgres test cluster (the PostgreSQL store is tested against a real server): %v", c.err)
	}
	c.mu.Lock()
	c.n++
	name := "t" + strconv.Itoa(c.n)
	c.mu.Unlock()

	dsn, err := c.c.CreateDatabase(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.c.DropDatabase(context.Background(), name); err != nil {
			t.Error(err)
		}
	})
	return dsn
}

// Stop stops the cluster and removes its directory; a cluster that never
// started is left alone.
func (c *Cluster) Stop() {
	c.once.Do(func() { c.err = errStopped })
	if c.c != nil {
		c.c.Stop()
	}
}

// errStopped is the error of a Database call after Stop.
var errStopped = errors.New("stopped")
