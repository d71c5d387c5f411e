package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// child is a server process this tool started and must stop.
type child struct {
	name   string
	addr   string // 127.0.0.1:PORT
	cmd    *exec.Cmd
	stderr *tail
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's error, valid after done
}

// startChild starts bin with args, keeping the end of its stderr for
// error messages. The process gets SIGTERM if this one dies first (on
// Linux) and must be stopped with stop otherwise.
func startChild(name, addr, bin string, args ...string) (*child, error) {
	c := &child{name: name, addr: addr, stderr: &tail{max: 8 << 10}, done: make(chan struct{})}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout = nil // unfurld prints its routes; not needed here
	c.cmd.Stderr = c.stderr
	setParentDeathSignal(c.cmd)
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// stop asks the process to shut down (SIGINT, which both unfurld and the
// bare server handle) and kills it if it has not exited after grace.
func (c *child) stop(grace time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// waitHealthy polls GET /healthz until it answers 200, the process exits
// or timeout passes.
func (c *child) waitHealthy(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: loopbackDialer}, Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+"/healthz", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited before it was healthy (%v):\n%s", c.name, c.err, c.stderr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy on %s after %s:\n%s", c.name, c.addr, timeout, c.stderr)
		}
	}
}

// children tracks every started process so that all are stopped on exit.
type children struct {
	mu   sync.Mutex
	list []*child
}

func (cs *children) add(c *child) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.list = append(cs.list, c)
}

// stopAll stops every child still running, in parallel.
func (cs *children) stopAll() {
	cs.mu.Lock()
	list := cs.list
	cs.list = nil
	cs.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range list {
		wg.Go(func() { c.stop(5 * time.Second) })
	}
	wg.Wait()
}

// freeAddr picks a free loopback port. Another process could take it
// before the child listens; the health wait then reports it.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// buildUnfurld compiles ./cmd/unfurld into dir. It must run inside the
// module, which `go run ./cmd/unfurld-load` from the checkout is.
func buildUnfurld(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "unfurld")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/unfurld/unfurld/cmd/unfurld")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/unfurld (run from the repository, or pass --bin): %w\n%s", err, out)
	}
	return bin, nil
}

// unfurldConfig is the configuration of the measured server. One provider,
// one pattern, six attributes of the usual kinds including two
// expressions, upstream on the fake; /metrics open on loopback, for the
// round trips per unfurl. Placeholders: STORAGE (storageConfig), DATA,
// UPSTREAM, TTL.
const unfurldConfig = `# written by unfurld-load
server:
  mode: development
  public_url: http://127.0.0.1
  unfurl_timeout: 10s
  max_concurrent_upstream: 1024
  log: {level: warn}
  metrics: {require_token: false}
STORAGE
providers:
  - name: bench
    display_name: Bench
    dev: unfurld-load
    upstream:
      base_url: UPSTREAM
      allow_private_networks: true
      embed_hosts: [avatars.githubusercontent.com]
      timeout: 10s
      cache_ttl: TTL
    patterns:
      - name: item
        regex: '^https://bench\.example/items/(?<n>\d+)$'
        samples: ['https://bench.example/items/1']
        requests:
          - {name: item, url: '/items/{n}'}
        attributes:
          - {id: title, kind: title, expr: '"#" + groups.n + " " + item.title'}
          - {id: state, kind: enum, path: state, colors: {open: "#1a7f37", closed: "#8250df"}}
          - {id: author, kind: plain_text, section: secondary, path: user.login}
          - {id: avatar, kind: image, section: avatar, path: user.avatar_url}
          - {id: updated, kind: datetime, section: secondary, path: updated_at}
          - {id: labels, kind: plain_text, section: secondary, expr: 'join(map(item.labels, .name), ", ")'}
`

// unfurldServer is a running unfurld with a bearer for provider bench.
type unfurldServer struct {
	*child
	token string
}

// storageConfig is the storage section: the bbolt file in DATA when dsn
// is empty, else the PostgreSQL database dsn names (the path then only
// places the development secrets).
func storageConfig(dsn string) string {
	if dsn == "" {
		return "storage:\n  path: DATA/unfurld.db"
	}
	return "storage:\n  path: DATA/unfurld.db\n  driver: postgres\n  dsn: '" + strings.ReplaceAll(dsn, "'", "''") + "'"
}

// startUnfurld writes a configuration under dir/name with the given
// cache TTL, on bbolt or, with a dsn, on PostgreSQL, creates a token
// with `unfurld token` (which needs the store while the server is
// stopped), then serves on a free loopback port.
func startUnfurld(ctx context.Context, cs *children, bin, dir, name, upstream, cacheTTL, dsn string) (*unfurldServer, error) {
	data := filepath.Join(dir, name)
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	cfg := strings.NewReplacer("STORAGE", storageConfig(dsn)).Replace(unfurldConfig)
	cfg = strings.NewReplacer("DATA", data, "UPSTREAM", upstream, "TTL", cacheTTL).Replace(cfg)
	cfgPath := filepath.Join(data, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	tok := exec.CommandContext(ctx, bin, "token", "--config", cfgPath, "--provider", "bench")
	tok.Stdout, tok.Stderr = &stdout, &stderr
	if err := tok.Run(); err != nil {
		return nil, fmt.Errorf("unfurld token: %w\n%s", err, stderr.String())
	}
	token := strings.TrimSpace(stdout.String())
	if token == "" || strings.ContainsAny(token, " \n") {
		return nil, fmt.Errorf("unfurld token printed %q, want one token", stdout.String())
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c, err := startChild("unfurld ("+name+")", addr, bin, "serve", "--config", cfgPath, "--listen", addr)
	if err != nil {
		return nil, err
	}
	cs.add(c)
	if err := c.waitHealthy(ctx, 15*time.Second); err != nil {
		return nil, err
	}
	return &unfurldServer{child: c, token: token}, nil
}

// startBare re-runs this executable as the bare baseline server answering
// the bytes in bodyFile.
func startBare(ctx context.Context, cs *children, bodyFile string) (*child, error) {
	return startSelf(ctx, cs, "bare echo server", "bare", "--body", bodyFile)
}

// startSelf re-runs this executable with the sub-command and args on a
// free loopback address (its --listen), and waits until it answers.
func startSelf(ctx context.Context, cs *children, name, command string, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c, err := startChild(name, addr, self, append([]string{command, "--listen", addr}, args...)...)
	if err != nil {
		return nil, err
	}
	cs.add(c)
	if err := c.waitHealthy(ctx, 15*time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

// tail is an io.Writer keeping the last max bytes written.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// startHandwritten re-runs this executable as the hand-written baseline
// handler (handwritten.go), on the fake upstream, accepting token.
func startHandwritten(ctx context.Context, cs *children, upstream, token string) (*child, error) {
	return startSelf(ctx, cs, "hand-written handler", "handwritten", "--upstream", upstream, "--token", token)
}

// cpuTimes reads the CPU time of each of pids that still runs.
func cpuTimes(pids []int) map[int]time.Duration {
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		if c, ok := cpuTime(pid); ok {
			out[pid] = c
		}
	}
	return out
}
