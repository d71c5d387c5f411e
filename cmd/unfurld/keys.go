package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store/bolt"
)

// keyList is a repeatable, comma-separated flag of key ids (--drop-key).
type keyList []string

func (l *keyList) String() string { return strings.Join(*l, ",") }

func (l *keyList) Set(v string) error {
	for _, id := range strings.Split(v, ",") {
		if id = strings.TrimSpace(id); id != "" {
			*l = append(*l, id)
		}
	}
	return nil
}

// printKeyErrors prints each line of a sealing-key refusal, so several
// removed keys read one per line.
func printKeyErrors(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "unfurld: %s\n", line)
	}
}

// checkStoredKeys runs serve's sealing-key check for `unfurld validate`:
// when the store file the configuration names exists, no key that its
// records still need may be missing from server.secret_keys. It reports
// whether the configuration passes. It never needs a running server: when
// one holds the store it says so and skips only this check; in
// development mode with generated keys there is no rotation to check.
func checkStoredKeys(ctx context.Context, cfg *config.Config, name string, e env) bool {
	if cfg.Storage.Driver == config.StoragePostgres {
		// Opening the database would apply migrations: not a check's
		// business. serve runs the same check at start.
		fmt.Fprintf(e.stdout, "%s: sealing keys not checked: storage.driver is postgres (serve checks them at start; `unfurld status` shows what each key seals)\n", name)
		return true
	}
	path := cfg.Storage.Path
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return true // nothing stored yet, nothing sealed
	}
	if cfg.Server.SecretKeys.IsZero() {
		fmt.Fprintf(e.stdout, "%s: sealing keys not checked: server.secret_keys is generated in development mode\n", name)
		return true
	}
	kr, err := sealing.ParseKeyring(cfg.Server.SecretKeys.Reveal())
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: server.secret_keys: %v\n", name, err)
		return false
	}
	st, err := bolt.Open(path, bolt.Options{LockTimeout: statusLockTimeout})
	switch {
	case errors.Is(err, bolt.ErrLocked):
		fmt.Fprintf(e.stdout, "%s: sealing keys not checked: %s is held by a running unfurld (`unfurld status` shows what each key seals)\n", name, path)
		return true
	case err != nil:
		fmt.Fprintf(e.stderr, "%s: storage.path: %v\n", name, err)
		return false
	}
	defer st.Close()
	if err := sealing.CheckRemovedKeys(ctx, st, kr, time.Now()); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(e.stderr, "%s: server.secret_keys: %s\n", name, line)
		}
		return false
	}
	return true
}

// printSealingKeys prints what each sealing key seals, and which old keys
// may now leave server.secret_keys.
func printSealingKeys(w io.Writer, keys []sealing.KeyUsage) {
	if len(keys) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEALING KEY\tROLE\tCONNECTIONS\tRECONNECT\tPENDING FLOWS\tREFRESH SUCCESSORS")
	var idle []string
	for _, k := range keys {
		role := "old"
		switch {
		case k.Primary:
			role = "primary"
		case !k.InKeyring:
			role = "missing"
		case k.Needed() == 0 && k.Connections == 0:
			idle = append(idle, k.ID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\n", k.ID, role, k.Connections, k.ReconnectRequired, k.Flows, k.Successors)
	}
	_ = tw.Flush()
	for _, id := range idle {
		fmt.Fprintf(w, "key %s seals nothing any more: it may leave server.secret_keys\n", id)
	}
}
