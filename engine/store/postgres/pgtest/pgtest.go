// Package pgtest runs a throwaway PostgreSQL cluster for tests: initdb
// and pg_ctl from Debian's postgresql package, a data directory in a
// temporary directory, a Unix socket in that directory and no TCP port at
// all, so nothing listens beyond this machine and runs cannot collide on
// a port. One cluster serves a whole test binary; every test gets a fresh
// database of its own.
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
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// InstallHint is the command that provides the binaries.
const InstallHint = "apt-get install -y postgresql"

// UserEnv names the environment variable that picks the unprivileged user
// the cluster runs as when the tests run as root (initdb refuses root);
// unset, it is "nobody".
const UserEnv = "UNFURLD_PGTEST_USER"

// superuser is the cluster's superuser role; the socket is only reachable
// by this machine's users, so it trusts them.
const superuser = "postgres"

// Cluster is a lazily started throwaway cluster. The zero value is ready:
// the first Database call starts it. Its methods are safe for concurrent
// use.
type Cluster struct {
	once sync.Once
	err  error
	dir  string // temporary directory: data/, the socket, the log
	bin  string // directory of initdb, pg_ctl
	cred *syscall.Credential

	mu sync.Mutex
	n  int
}

// Database creates a fresh, empty database for t, drops it when t ends,
// and returns its DSN (a Unix-socket URL). It fails t when the cluster
// cannot start, naming the install command if the binaries are missing.
func (c *Cluster) Database(t testing.TB) string {
	t.Helper()
	c.once.Do(func() { c.err = c.start() })
	if c.err != nil {
		t.Fatalf("postgres test cluster: %v", c.err)
	}
	c.mu.Lock()
	c.n++
	name := "t" + strconv.Itoa(c.n)
	c.mu.Unlock()

	ctx := context.Background()
	admin := c.dsn("postgres")
	if err := c.exec(ctx, admin, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		// FORCE ends connections a failed test left open.
		if err := c.exec(context.Background(), admin, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	return c.dsn(name)
}

// Stop stops the cluster and removes its directory; a cluster that never
// started is left alone.
func (c *Cluster) Stop() {
	c.once.Do(func() { c.err = errors.New("stopped") })
	if c.dir == "" {
		return
	}
	_ = c.run(filepath.Join(c.bin, "pg_ctl"), "-D", c.data(), "-m", "immediate", "-w", "stop")
	_ = os.RemoveAll(c.dir)
	c.dir = ""
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// dsn is a URL to database db over the socket in c.dir.
func (c *Cluster) dsn(db string) string {
	q := url.Values{"host": {c.dir}, "user": {superuser}, "sslmode": {"disable"}}
	return "postgres:///" + db + "?" + q.Encode()
}

func (c *Cluster) exec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx, sql)
	return err
}

// start finds the binaries, runs initdb and pg_ctl start. Durability is
// off (fsync, full pages): the cluster is thrown away, and the tests are
// about semantics, not crash safety.
func (c *Cluster) start() error {
	bin, err := findBin()
	if err != nil {
		return err
	}
	c.bin = bin
	if os.Geteuid() == 0 {
		name := os.Getenv(UserEnv)
		if name == "" {
			name = "nobody"
		}
		cred, err := credential(name)
		if err != nil {
			return err
		}
		c.cred = cred
	}
	dir, err := os.MkdirTemp("", "unfurld-pgtest-")
	if err != nil {
		return err
	}
	c.dir = dir
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return err
		}
	}
	if err := c.run(filepath.Join(bin, "initdb"), "-D", c.data(), "-U", superuser, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		return err
	}
	opts := strings.Join([]string{
		"-c listen_addresses=''", "-k " + dir, "-c fsync=off", "-c full_page_writes=off",
		"-c synchronous_commit=off", "-c max_connections=200",
	}, " ")
	return c.run(filepath.Join(bin, "pg_ctl"), "-D", c.data(), "-l", filepath.Join(dir, "log"),
		"-o", opts, "-w", "-t", "120", "start")
}

// run runs a cluster binary as the cluster's user and returns its output
// with any error.
func (c *Cluster) run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + c.dir}
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("%s: %w\n%s\n%s", filepath.Base(name), err, out, log)
	}
	return nil
}

// findBin returns Debian's PostgreSQL binary directory, the newest
// version when several are installed.
func findBin() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", fmt.Errorf("initdb and pg_ctl not found: the PostgreSQL store is tested against a real server; install it with: %s", InstallHint)
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) < version(found[j]) })
	return filepath.Dir(found[len(found)-1]), nil
}

// version reads the major version out of /usr/lib/postgresql/<v>/bin/initdb.
func version(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("the test cluster runs as %q (initdb refuses root; set %s to another user): %w", name, UserEnv, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
