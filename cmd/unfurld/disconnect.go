package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/unfurld/unfurld/engine/app"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

// disconnectWait bounds how long the command waits for the erase of the
// deleted connection's bytes before it exits.
const disconnectWait = time.Minute

// disconnect deletes one connection as Notion's deleted-token callback
// would: its records are erased from the database file and its upstream
// grant is revoked when the provider declares how (security.md TH-40).
// With the server stopped it works on the store itself; while a server
// holds the store, it asks the server's admin route with
// server.admin_token.
func disconnect(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("disconnect", e)
	cfgPath := configFlag(fs, e)
	id := fs.String("connection", "", "id of the connection to delete (required; see unfurld status)")
	server := fs.String("server", "", "ask the running server's admin API at this base `URL` instead of opening the store (default server.admin_url when the store is held); plain http only to loopback")
	if _, err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	if *id == "" {
		fmt.Fprintln(e.stderr, "unfurld disconnect: --connection is required")
		return exitUsage
	}
	l := load(*cfgPath, e, nil, e.stderr)
	if l == nil {
		return exitFailure
	}
	defer l.reg.Close()
	cfg := l.cfg
	if _, err := cfg.FillDevSecrets(filepath.Dir(cfg.Storage.Path)); err != nil {
		fmt.Fprintf(e.stderr, "unfurld disconnect: %v\n", err)
		return exitFailure
	}
	logger := newLogger(cfg.Server.Log, e.stderr)
	admin := adminClient{token: cfg.Server.AdminToken.Reveal(), dial: e.dial}
	var err error
	if *server != "" {
		err = askDisconnect(ctx, admin, *server, *id)
	} else {
		// PostgreSQL has no lock to find: the command deletes in the
		// database beside running servers, whose bearer caches forget the
		// connection's tokens within seconds.
		var st store.Store
		st, err = openStore(ctx, cfg.Storage, bolt.Options{LockTimeout: statusLockTimeout, Logger: logger}, postgres.Options{})
		switch {
		case errors.Is(err, bolt.ErrLocked):
			base := adminBase("", cfg)
			if base == "" {
				fmt.Fprintln(e.stderr, "unfurld disconnect: the store is held by a running unfurld; give its admin API with --server URL (for example http://127.0.0.1:8080) or server.admin_url")
				return exitFailure
			}
			err = askDisconnect(ctx, admin, base, *id)
		case err == nil:
			err = disconnectOffline(ctx, app.Options{Config: cfg, Registry: l.reg, Store: st, Logger: logger}, st, *id)
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		fmt.Fprintf(e.stderr, "unfurld disconnect: no connection %q\n", *id)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld disconnect: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "deleted connection %s\n", *id)
	return exitOK
}

// disconnectOffline runs the server's Disconnect on the store, then waits
// for the erase and closes the store.
func disconnectOffline(ctx context.Context, opts app.Options, st store.Store, id string) (err error) {
	a, err := app.New(opts)
	if err != nil {
		_ = st.Close()
		return err
	}
	// a.Store wraps st; closing it closes st.
	defer func() {
		if cerr := a.Store.Close(); err == nil {
			err = cerr
		}
	}()
	if err := a.Server.Disconnect(ctx, id); err != nil {
		return err
	}
	// bbolt zeroes the freed pages after the commit; wait for that.
	w, ok := st.(interface{ WaitErased(context.Context) error })
	if !ok {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, disconnectWait)
	defer cancel()
	return w.WaitErased(wctx)
}

// askDisconnect calls POST /admin/connections/<id>/delete on the running
// server at base.
func askDisconnect(ctx context.Context, admin adminClient, base, id string) error {
	code, _, err := admin.call(ctx, base, http.MethodPost, nil, 30*time.Second, "admin", "connections", id, "delete")
	if err != nil {
		return err
	}
	switch code {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		return store.ErrNotFound
	}
	return fmt.Errorf("the server answered %d %s", code, http.StatusText(code))
}
