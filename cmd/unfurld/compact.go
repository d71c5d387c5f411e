package main

import (
	"errors"
	"fmt"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/store/bolt"
)

// compactCmd rewrites the database file offline so that it holds only
// live records (security.md TH-40, F2). The server must be stopped: the
// file lock refuses a compaction of a file in use.
func compactCmd(args []string, e env) int {
	fs := newFlagSet("compact", e)
	cfgPath := configFlag(fs, e)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitUsage
	}
	var path string
	switch len(pos) {
	case 0:
		l := load(*cfgPath, e, nil, e.stderr)
		if l == nil {
			return exitFailure
		}
		l.reg.Close()
		if l.cfg.Storage.Driver == config.StoragePostgres {
			fmt.Fprintln(e.stderr, "unfurld compact: storage.driver is postgres; compact rewrites a bbolt file (in PostgreSQL, VACUUM FULL rewrites a table)")
			return exitUsage
		}
		path = l.cfg.Storage.Path
	case 1:
		path = pos[0]
	default:
		fmt.Fprintln(e.stderr, "unfurld compact: give either --config or one database path")
		return exitUsage
	}
	res, err := bolt.Compact(path, bolt.Options{LockTimeout: statusLockTimeout})
	if errors.Is(err, bolt.ErrLocked) {
		fmt.Fprintf(e.stderr, "unfurld compact: %s is held by a running unfurld; stop it first\n", path)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld compact: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "compacted %s: %d -> %d bytes\n", path, res.Before, res.After)
	return exitOK
}
