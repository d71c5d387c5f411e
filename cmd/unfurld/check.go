package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/unfurld/unfurld/engine/store/bolt"
)

// checkCmd runs the bbolt file's integrity check, which reads every page,
// on a stopped server's file: the check serve runs in the background
// after it starts listening, on demand (security.md F12).
func checkCmd(args []string, e env) int {
	fs := newFlagSet("check", e)
	cfgPath := configFlag(fs, e)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitUsage
	}
	path, code := boltFile("check", *cfgPath, pos, "PostgreSQL checks its own pages (data checksums, amcheck)", e)
	if code != exitOK {
		return code
	}
	start := time.Now()
	st, err := bolt.Open(path, bolt.Options{LockTimeout: statusLockTimeout})
	switch {
	case errors.Is(err, bolt.ErrLocked):
		fmt.Fprintf(e.stderr, "unfurld check: %s is held by a running unfurld, which checks it after starting (see its log and /healthz); stop it to check here\n", path)
		return exitFailure
	case err != nil:
		fmt.Fprintf(e.stderr, "unfurld check: %v\n", err)
		return exitFailure
	}
	if err := st.Close(); err != nil {
		fmt.Fprintf(e.stderr, "unfurld check: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "%s: every page read, no damage found (%s)\n", path, time.Since(start).Round(time.Millisecond))
	return exitOK
}
