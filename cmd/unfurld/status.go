package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/status"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

// statusLockTimeout is short: a running server holds the store, and then
// the command asks the server instead.
const statusLockTimeout = 500 * time.Millisecond

// statusCmd prints the live-update status (issue 4 item 5): per provider,
// subscriptions, queue depth, the last refresh and failures, and with
// --uri or --connection the story of one link or connection. It reads the
// store; when a running server holds it, it asks that server's
// /admin/status with server.admin_token, which adds the in-memory
// delivery and polling statistics. The server is asked only at an address
// given explicitly (--server or server.admin_url), never one guessed from
// server.listen, which may be a proxy's or another host's view.
func statusCmd(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("status", e)
	cfgPath := configFlag(fs, e)
	q := status.Query{}
	fs.StringVar(&q.Provider, "provider", "", "only this provider")
	fs.StringVar(&q.URI, "uri", "", "the story of one link")
	fs.StringVar(&q.Connection, "connection", "", "the story of one connection: tokens, credential, reconnect reason, failures")
	server := fs.String("server", "", "ask the running server's admin API at this base `URL` instead of reading the store (default server.admin_url when the store is held); plain http only to loopback")
	format := fs.String("format", "text", "text or json")
	if _, err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(e.stderr, "unfurld status: --format must be text or json\n")
		return exitUsage
	}
	l := load(*cfgPath, e, nil, e.stderr)
	if l == nil {
		return exitFailure
	}
	defer l.reg.Close()
	var providers []status.Provider
	var names []string
	for _, p := range l.reg.All() {
		providers = append(providers, status.Provider{Name: p.Name, Auth: p.AuthType()})
		names = append(names, p.Name)
	}
	if q.Provider != "" {
		if _, ok := l.reg.Get(q.Provider); !ok {
			fmt.Fprintf(e.stderr, "unfurld status: no provider %q in %s (have %s)\n", q.Provider, *cfgPath, strings.Join(names, ", "))
			return exitUsage
		}
	}
	if _, err := l.cfg.FillDevSecrets(filepath.Dir(l.cfg.Storage.Path)); err != nil {
		fmt.Fprintf(e.stderr, "unfurld status: %v\n", err)
		return exitFailure
	}
	admin := adminClient{token: l.cfg.Server.AdminToken.Reveal(), dial: e.dial}

	var r *status.Report
	var err error
	if *server != "" {
		r, err = admin.ask(ctx, *server, q)
	} else {
		r, err = readStatus(ctx, l, providers, q)
		if errors.Is(err, bolt.ErrLocked) {
			if l.cfg.Server.AdminURL == "" {
				fmt.Fprintf(e.stderr, "unfurld status: the store is held by a running unfurld; give its admin API with --server URL (for example %s) or server.admin_url\n", adminExample(l.cfg))
				return exitFailure
			}
			r, err = admin.ask(ctx, l.cfg.Server.AdminURL, q)
		}
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld status: %v\n", err)
		return exitFailure
	}
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
		return exitOK
	}
	printStatus(e.stdout, r)
	printSealingKeys(e.stdout, r.SealingKeys)
	return exitOK
}

// readStatus builds the report from the store; bolt.ErrLocked when a
// running server holds a bbolt file (PostgreSQL is shared, so the report
// always comes from the database there).
func readStatus(ctx context.Context, l *loaded, providers []status.Provider, q status.Query) (*status.Report, error) {
	st, err := openStore(ctx, l.cfg.Storage, bolt.Options{LockTimeout: statusLockTimeout}, postgres.Options{})
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.Close() }()
	r, err := status.Build(ctx, st, providers, q, nil, time.Now())
	if err != nil {
		return nil, err
	}
	kr, err := sealing.ParseKeyring(l.cfg.Server.SecretKeys.Reveal())
	if err != nil {
		return nil, err
	}
	if err := r.AddSealingKeys(ctx, st, kr, time.Now()); err != nil {
		return nil, err
	}
	return r, nil
}

// ask fetches the report from the running server's /admin/status.
func (a adminClient) ask(ctx context.Context, base string, q status.Query) (*status.Report, error) {
	v := url.Values{}
	for k, val := range map[string]string{"provider": q.Provider, "uri": q.URI, "connection": q.Connection} {
		if val != "" {
			v.Set(k, val)
		}
	}
	code, body, err := a.call(ctx, base, http.MethodGet, v, 10*time.Second, "admin", "status")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("the server answered %d %s", code, http.StatusText(code))
	}
	var r status.Report
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("read the server's answer: %w", err)
	}
	return &r, nil
}

// adminExample is an admin URL to suggest when none is configured: the
// admin listener's port (or the main one's) on loopback. It is only
// printed, never asked: the listen address may be a proxy's view or
// another host's.
func adminExample(cfg *config.Config) string {
	addr := cfg.Server.Listen
	if cfg.Server.AdminListen != "" {
		addr = cfg.Server.AdminListen // /admin/status lives there
	}
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return "http://" + net.JoinHostPort("127.0.0.1", port)
	}
	return "http://127.0.0.1:8080"
}
