// Package pgcluster runs a throwaway PostgreSQL cluster on this machine:
// initdb and pg_ctl from Debian's postgresql package, a data directory in
// a temporary directory, a Unix socket in that directory and no TCP port
// at all, so nothing listens beyond this machine and two clusters cannot
// collide on a port. The tests reach it through pgtest, which adds a
// fresh database per test; the load tool (cmd/unfurld-load) starts one to
// measure unfurld on PostgreSQL without an operator's server.
package pgcluster

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// InstallHint is the command that provides the binaries.
const InstallHint = "apt-get install -y postgresql"

// UserEnv names the environment variable that picks the unprivileged user
// the cluster runs as when this process runs as root (initdb refuses
// root); unset, it is "nobody".
const UserEnv = "UNFURLD_PGTEST_USER"

// superuser is the cluster's superuser role; the socket is only reachable
// by this machine's users, so it trusts them.
const superuser = "postgres"

// Options tune a cluster.
type Options struct {
	// Durable keeps PostgreSQL's defaults for fsync, full page writes and
	// synchronous commit, so that a commit costs what it costs on a real
	// server: the load tool measures with it. Off, the cluster skips
	// them, which is what tests want (they are about semantics, not crash
	// safety, and run on a loaded machine).
	Durable bool
	// MaxConnections is the server's max_connections; 0 means 200.
	MaxConnections int
}

// Cluster is a running throwaway cluster. Its methods are safe for
// concurrent use; Stop it when done, or its processes and directory
// outlive this one.
type Cluster struct {
	dir  string // temporary directory: data/, the socket, the log
	bin  string // directory of initdb, pg_ctl
	cred *syscall.Credential
}

// Start finds the binaries, runs initdb and pg_ctl start, and returns
// the running cluster. Without the binaries the error names the command
// that installs them.
func Start(opts Options) (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		name := os.Getenv(UserEnv)
		if name == "" {
			name = "nobody"
		}
		if c.cred, err = credential(name); err != nil {
			return nil, err
		}
	}
	if c.dir, err = os.MkdirTemp("", "unfurld-pgcluster-"); err != nil {
		return nil, err
	}
	if err := c.start(opts); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(opts Options) error {
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return err
		}
	}
	if err := c.run(filepath.Join(c.bin, "initdb"), "-D", c.data(), "-U", superuser, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		return err
	}
	maxConns := opts.MaxConnections
	if maxConns <= 0 {
		maxConns = 200
	}
	settings := []string{"-c listen_addresses=''", "-k " + c.dir, "-c max_connections=" + strconv.Itoa(maxConns)}
	if !opts.Durable {
		settings = append(settings, "-c fsync=off", "-c full_page_writes=off", "-c synchronous_commit=off")
	}
	return c.run(filepath.Join(c.bin, "pg_ctl"), "-D", c.data(), "-l", filepath.Join(c.dir, "log"),
		"-o", strings.Join(settings, " "), "-w", "-t", "120", "start")
}

// CreateDatabase creates an empty database called name (letters, digits
// and underscores) and returns its DSN, a Unix-socket URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := c.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return c.DSN(name), nil
}

// DropDatabase drops database name, ending the connections still open
// on it.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	if err := c.exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// DSN is a URL to database db over the cluster's socket.
func (c *Cluster) DSN(db string) string {
	q := url.Values{"host": {c.dir}, "user": {superuser}, "sslmode": {"disable"}}
	return "postgres:///" + db + "?" + q.Encode()
}

// Stop stops the cluster at once (its data is thrown away) and removes
// its directory.
func (c *Cluster) Stop() {
	if c.dir == "" {
		return
	}
	if _, err := os.Stat(filepath.Join(c.data(), "postmaster.pid")); err == nil {
		_ = c.run(filepath.Join(c.bin, "pg_ctl"), "-D", c.data(), "-m", "immediate", "-w", "stop")
	}
	_ = os.RemoveAll(c.dir)
	c.dir = ""
}

// PIDs lists the cluster's processes, the postmaster and its children
// (backends, writers), for a caller that measures the server's CPU. It
// reads /proc, so it finds nothing outside Linux.
func (c *Cluster) PIDs() []int {
	b, err := os.ReadFile(filepath.Join(c.data(), "postmaster.pid"))
	if err != nil {
		return nil
	}
	first, _, _ := strings.Cut(string(b), "\n")
	postmaster, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return nil
	}
	pids := []int{postmaster}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		if f := strings.Fields(string(stat[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(postmaster) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// exec runs one statement in the maintenance database.
func (c *Cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx, sql)
	return err
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
		return "", fmt.Errorf("initdb and pg_ctl not found: install PostgreSQL with: %s", InstallHint)
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
		return nil, fmt.Errorf("the cluster runs as %q (initdb refuses root; set %s to another user): %w", name, UserEnv, err)
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
