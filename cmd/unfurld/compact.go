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
	path, code := boltFile("compact", *cfgPath, pos, "compact rewrites a bbolt file (in PostgreSQL, VACUUM FULL rewrites a table)", e)
	if code != exitOK {
		return code
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

// boltFile is the bbolt file a maintenance command works on: the one
// path given, or storage.path of the configuration. A postgres
// configuration is refused with why; code is exitOK or the exit code.
func boltFile(cmd, cfgPath string, pos []string, postgresWhy string, e env) (path string, code int) {
	switch len(pos) {
	case 0:
		l := load(cfgPath, e, nil, e.stderr)
		if l == nil {
			return "", exitFailure
		}
		l.reg.Close()
		if l.cfg.Storage.Driver == config.StoragePostgres {
			fmt.Fprintf(e.stderr, "unfurld %s: storage.driver is postgres; %s\n", cmd, postgresWhy)
			return "", exitUsage
		}
		return l.cfg.Storage.Path, exitOK
	case 1:
		return pos[0], exitOK
	default:
		fmt.Fprintf(e.stderr, "unfurld %s: give either --config or one database path\n", cmd)
		return "", exitUsage
	}
}
