package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/unfurld/unfurld/engine/app"
	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/metrics"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

func serve(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("serve", e)
	cfgPath := configFlag(fs, e)
	listen := fs.String("listen", "", "override server.listen (e.g. 127.0.0.1:0)")
	var drop keyList
	fs.Var(&drop, "drop-key", "give up on the records sealed with this removed key `id` (repeatable): their users must reconnect")
	if _, err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	// SIGHUP reloads the configuration (POST /admin/reload does the
	// same); Reload logs what it did or why it refused the file. It is
	// caught from the start, so a SIGHUP sent early does not kill the
	// process; one sent before the server runs is handled once it does.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// The GC runs with Go's defaults: a higher GC target bought some
	// latency with up to five times the heap, which is not a default for
	// a server holding large stores (issue 11). GOGC and GOMEMLIMIT in
	// the environment tune it (docs/operations.md, Memory).
	// The metrics exist before the providers, which report their
	// upstream calls to them (engine/metrics).
	m := metrics.New()
	lopts := loadOptions(e, nil)
	lopts.Observer = m
	l := loadWith(*cfgPath, e, lopts, e.stderr, true)
	if l == nil {
		fmt.Fprintf(e.stderr, "unfurld: %s has errors; nothing started\n", *cfgPath)
		return exitFailure
	}
	defer l.reg.Close()
	cfg := l.cfg
	logger := newLogger(cfg.Server.Log, e.stderr)
	logWarnings(logger, l.warnings)

	dataDir := filepath.Dir(cfg.Storage.Path)
	filled, err := cfg.FillDevSecrets(dataDir)
	if err != nil {
		logger.Error("development secrets", "err", err)
		return exitFailure
	}
	if len(filled) > 0 {
		logger.Warn("DEVELOPMENT MODE: generated secrets are in use; set them in the environment and use server.mode: production before exposing this server",
			"file", filepath.Join(dataDir, config.DevSecretsFile), "generated", strings.Join(filled, ","))
	}

	// The integrity check of a bbolt file reads every page, seconds for a
	// large store: the file is opened without it (the cheap checks of a
	// truncated or empty file still run) and the App runs it in the
	// background once the server listens, with /healthz degraded if it
	// fails (docs/operations.md, Integrity check).
	st, err := openStore(ctx, cfg.Storage, bolt.Options{LockTimeout: cfg.Storage.LockTimeout.D(), Logger: logger, SkipCheck: true}, postgres.Options{RoundTrip: m.StoreRoundTrip})
	if err != nil {
		logger.Error("open store", "err", err)
		return exitFailure
	}
	var check func(context.Context) error
	if bs, ok := st.(*bolt.Store); ok {
		check = bs.Check
	}
	a, err := app.New(app.Options{Config: cfg, Registry: l.reg, Store: st, Logger: logger, Metrics: m, Load: reloader(*cfgPath, dataDir, e, logger, m), Check: check})
	if err != nil {
		logger.Error("start", "err", err)
		if err := st.Close(); err != nil {
			logger.Error("close store", "err", err)
		}
		return exitFailure
	}
	// a.Store is the one handle on the file; closing it waits for the
	// subscription commits still running, then closes the file. Every
	// answered unfurl's subscription was written before its answer.
	defer func() {
		if err := a.Store.Close(); err != nil {
			logger.Error("close store", "err", err)
		}
	}()
	if err := a.CheckSealingKeys(ctx, drop); err != nil {
		printKeyErrors(e.stderr, err)
		return exitFailure
	}
	srv := a.Server
	// Live updates and the sweep run until serve returns; the deferred
	// stop waits for them, and runs before the store's Close above, so
	// their last records reach the store before it closes (F15).
	bg, stopBackground := context.WithCancel(context.Background())
	bgDone := make(chan struct{})
	go func() {
		defer close(bgDone)
		a.Run(bg)
	}()
	defer func() {
		stopBackground()
		<-bgDone
	}()
	addr := cfg.Server.Listen
	if *listen != "" {
		addr = *listen
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		logger.Error("listen", "addr", addr, "err", err)
		return exitFailure
	}
	ln = srv.Listener(ln) // server.max_connections
	hs := srv.HTTPServer(addr)
	// The admin listener (server.admin_listen) serves /metrics and
	// /admin/status off the public port.
	var (
		adminLn net.Listener
		adminHS *http.Server
	)
	if a := cfg.Server.AdminListen; a != "" {
		if adminLn, err = net.Listen("tcp", a); err != nil {
			_ = ln.Close()
			logger.Error("listen", "addr", a, "err", err)
			return exitFailure
		}
		adminHS = srv.AdminHTTPServer(a)
	}
	printRoutes(e, cfg)
	printNextSteps(e.stdout, cfg, *cfgPath, ln.Addr().String())
	logger.Info("listening", "addr", ln.Addr().String(), "public_url", cfg.Server.PublicURL, "store", storeName(cfg.Storage), "mode", cfg.Server.Mode, "version", version())
	if adminLn != nil {
		logger.Info("admin listening", "addr", adminLn.Addr().String())
	}
	if e.ready != nil {
		e.ready(ln.Addr().String())
	}

	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	if adminHS != nil {
		go func() { errc <- adminHS.Serve(adminLn) }()
		defer func() { _ = adminHS.Close() }()
	}
	for stop := false; !stop; {
		select {
		case err := <-errc:
			logger.Error("serve", "err", err)
			return exitFailure
		case <-hup:
			logger.Info("SIGHUP: reloading the configuration", "file", *cfgPath)
			a.Reload(ctx)
		case <-ctx.Done():
			stop = true
		}
	}
	// Drain in-flight requests, then close the store (F15).
	logger.Info("shutting down", "timeout", cfg.Server.ShutdownTimeout.D())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.D())
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		logger.Error("shutdown", "err", err)
		return exitFailure
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("serve", "err", err)
	}
	return exitOK
}

// reloader loads path again for a reload exactly as serve loaded it at
// start: through compiled.Load, then with the secrets development mode
// generated filled in from the running data directory dataDir (a changed
// storage.path takes effect at the next restart only).
func reloader(path, dataDir string, e env, logger *slog.Logger, observer provider.Observer) func() (*compiled.Config, config.Errors) {
	opts := loadOptions(e, logger)
	opts.Observer = observer // the metrics see the providers a reload adds
	return func() (*compiled.Config, config.Errors) {
		c, errs := compiled.Load(path, opts)
		if c == nil {
			return nil, errs
		}
		filled, err := c.Config.FillDevSecrets(dataDir)
		if err != nil {
			c.Registry.Close()
			return nil, append(errs, config.Error{Pos: config.Pos{File: path}, Msg: fmt.Sprintf("development secrets: %v", err)})
		}
		if len(filled) > 0 {
			// As loud as at start: a provider added by the reload may
			// run on a generated secret.
			logger.Warn("DEVELOPMENT MODE: generated secrets are in use; set them in the environment and use server.mode: production before exposing this server",
				"file", filepath.Join(dataDir, config.DevSecretsFile), "generated", strings.Join(filled, ","))
		}
		return c, errs
	}
}

// printRoutes tells the operator, per provider, the URLs to paste into
// Notion's dashboard (protocol 1.4); `unfurld notion-settings` prints
// every field, Unfurl Regex Attributes included. Secrets are never
// printed.
func printRoutes(e env, cfg *config.Config) {
	base := strings.TrimRight(cfg.Server.PublicURL, "/")
	w := e.stdout
	for _, p := range cfg.Providers {
		route := base + "/providers/" + p.Name
		fmt.Fprintf(w, "%s (%s): paste into Notion's integration settings\n", p.DisplayName, p.Name)
		fmt.Fprintf(w, "  OAuth Authorize URL:  %s/authorize\n", route)
		fmt.Fprintf(w, "  OAuth Token URL:      %s/token\n", route)
		fmt.Fprintf(w, "  OAuth Client ID:      %s\n", p.Notion.ClientID)
		fmt.Fprintf(w, "  Deleted Token URL:    %s/deleted\n", route)
		fmt.Fprintf(w, "  Unfurl Callback URL:  %s/unfurl\n", route)
		fmt.Fprintf(w, "  Unfurl URL Domain:    %s\n", p.Notion.Domain)
		for _, pat := range p.Patterns {
			fmt.Fprintf(w, "  Rule %-16q pattern %s\n", pat.Name, pat.Regex)
		}
		if p.Upstream.Auth.Type == config.AuthOAuth2 {
			fmt.Fprintf(w, "  at the upstream, register the OAuth callback %s/callback\n", route)
		}
	}
	if len(cfg.Providers) > 0 {
		fmt.Fprintln(w, "Every field, with the Unfurl Regex Attributes: unfurld notion-settings --config FILE")
		fmt.Fprintln(w)
	}
}
