package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/unfurld/unfurld/engine/app"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
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
	cfgPath := fs.String("config", "config.yaml", "configuration `file`")
	id := fs.String("connection", "", "id of the connection to delete (required; see unfurld status)")
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
	// PostgreSQL has no lock to find: the command deletes in the
	// database beside running servers, whose bearer caches forget the
	// connection's tokens within seconds.
	st, err := openStore(ctx, cfg.Storage, bolt.Options{LockTimeout: statusLockTimeout, Logger: logger})
	switch {
	case errors.Is(err, bolt.ErrLocked):
		if cfg.Server.AdminToken.IsZero() {
			fmt.Fprintln(e.stderr, "unfurld disconnect: the store is held by a running unfurld; set server.admin_token and this command asks the server instead")
			return exitFailure
		}
		err = askDisconnect(ctx, cfg.Server.Listen, cfg.Server.AdminToken.Reveal(), *id)
	case err == nil:
		err = disconnectOffline(ctx, app.Options{Config: cfg, Registry: l.reg, Store: st, Logger: logger}, st, *id)
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
// server (loopback when it listens on every interface).
func askDisconnect(ctx context.Context, listen, token, id string) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("server.listen %q: %w", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	u := "http://" + net.JoinHostPort(host, port) + "/admin/connections/" + url.PathEscape(id) + "/delete"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask the running server: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		return store.ErrNotFound
	}
	return fmt.Errorf("the server answered %s", resp.Status)
}
