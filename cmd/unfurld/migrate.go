package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

// migrateLockTimeout bounds the wait for a bbolt file held by a running
// server: moving a store needs the server stopped, so waiting longer
// would not help.
const migrateLockTimeout = 2 * time.Second

// migrateCmd applies the PostgreSQL schema migrations without starting
// the server (serve applies them too, under the same lock).
func migrateCmd(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("migrate", e)
	cfgPath := configFlag(fs, e)
	if _, err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	l := load(*cfgPath, e, nil, e.stderr)
	if l == nil {
		return exitFailure
	}
	defer l.reg.Close()
	if l.cfg.Storage.Driver != config.StoragePostgres {
		fmt.Fprintf(e.stdout, "storage.driver is %s: nothing to migrate (a bbolt file is upgraded when it is opened)\n", l.cfg.Storage.Driver)
		return exitOK
	}
	applied, err := postgres.Migrate(ctx, l.cfg.Storage.DSN.Reveal())
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld migrate: %v\n", err)
		return exitFailure
	}
	if len(applied) == 0 {
		fmt.Fprintln(e.stdout, "the schema is up to date")
		return exitOK
	}
	for _, name := range applied {
		fmt.Fprintln(e.stdout, "applied", name)
	}
	return exitOK
}

// migrateStoreCmd copies every record from one store to another, most
// often a bbolt file to PostgreSQL, and checks the counts. The copy goes
// through store.Exporter and store.Importer: one read transaction, one
// write transaction into an empty store, sealed bytes unopened.
func migrateStoreCmd(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("migrate-store", e)
	from := fs.String("from", "", "the source: a configuration `file` (.yaml), or the path of a bbolt file")
	to := fs.String("to", "", "the destination's configuration `file`; its store must be empty")
	if _, err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	if *from == "" || *to == "" {
		fmt.Fprintln(e.stderr, "unfurld migrate-store: --from and --to are required")
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(e.stderr, "unfurld migrate-store: %v\n", err)
		return exitFailure
	}

	dl := load(*to, e, nil, e.stderr)
	if dl == nil {
		return exitFailure
	}
	defer dl.reg.Close()
	src, srcName, err := openSource(ctx, *from, e)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = src.Close() }()
	exp, ok := src.(store.Exporter)
	if !ok {
		return fail(fmt.Errorf("%s cannot be exported", srcName))
	}
	// The sealed records must open with the destination's keys; check
	// before copying, the way serve would refuse at its first start.
	if !dl.cfg.Server.SecretKeys.IsZero() {
		kr, err := sealing.ParseKeyring(dl.cfg.Server.SecretKeys.Reveal())
		if err != nil {
			return fail(fmt.Errorf("%s: server.secret_keys: %w", *to, err))
		}
		if err := sealing.CheckRemovedKeys(ctx, src, kr, time.Now()); err != nil {
			return fail(fmt.Errorf("%s: server.secret_keys cannot open what %s holds:\n%w", *to, srcName, err))
		}
	}

	dst, err := openStore(ctx, dl.cfg.Storage, bolt.Options{LockTimeout: migrateLockTimeout}, postgres.Options{})
	if err != nil {
		return fail(fmt.Errorf("%s: %w", storeName(dl.cfg.Storage), err))
	}
	defer func() { _ = dst.Close() }()
	imp, ok := dst.(store.Importer)
	dexp, ok2 := dst.(store.Exporter)
	if !ok || !ok2 {
		return fail(fmt.Errorf("storage.driver %s cannot be imported into; the destination must be postgres", dl.cfg.Storage.Driver))
	}

	snap, err := exp.Export(ctx)
	if err != nil {
		return fail(fmt.Errorf("read %s: %w", srcName, err))
	}
	if err := imp.Import(ctx, snap); err != nil {
		if errors.Is(err, store.ErrNotEmpty) {
			return fail(fmt.Errorf("%s: %w: migrate-store copies into an empty store and never merges", storeName(dl.cfg.Storage), err))
		}
		return fail(fmt.Errorf("write %s: %w", storeName(dl.cfg.Storage), err))
	}
	got, err := dexp.Export(ctx)
	if err != nil {
		return fail(fmt.Errorf("verify %s: %w", storeName(dl.cfg.Storage), err))
	}

	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RECORDS\tSOURCE\tCOPIED")
	want, have := snap.Counts(), got.Counts()
	var bad []string
	for i, c := range want {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", c.Kind, c.Count, have[i].Count)
		if have[i].Count != c.Count {
			bad = append(bad, c.Kind)
		}
	}
	_ = tw.Flush()
	if len(bad) > 0 {
		return fail(fmt.Errorf("the counts differ for %s", strings.Join(bad, ", ")))
	}
	fmt.Fprintf(e.stdout, "copied %s to %s; point the server at %s and start it\n", srcName, storeName(dl.cfg.Storage), *to)
	return exitOK
}

// openSource opens --from: a configuration's store, or a bbolt file by
// path. A file a running server holds is refused: the copy must see a
// store that nothing writes to.
func openSource(ctx context.Context, from string, e env) (store.Store, string, error) {
	var s config.Storage
	switch strings.ToLower(filepath.Ext(from)) {
	case ".yaml", ".yml":
		l := load(from, e, nil, e.stderr)
		if l == nil {
			return nil, "", fmt.Errorf("%s has errors", from)
		}
		l.reg.Close()
		s = l.cfg.Storage
	default:
		// bolt.Open would create a missing file, and copy nothing.
		if _, err := os.Stat(from); err != nil {
			return nil, "", err
		}
		s = config.Storage{Driver: config.StorageBolt, Path: from}
	}
	st, err := openStore(ctx, s, bolt.Options{LockTimeout: migrateLockTimeout}, postgres.Options{})
	if errors.Is(err, bolt.ErrLocked) {
		return nil, "", fmt.Errorf("%s: %w; stop the server first", s.Path, err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", storeName(s), err)
	}
	return st, storeName(s), nil
}
