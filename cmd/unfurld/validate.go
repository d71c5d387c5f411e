package main

import (
	"context"
	"fmt"
)

// validate loads and compiles a configuration and prints every problem
// as FILE:LINE:COL: path: message. Warnings print but do not fail. When
// the configuration's store file exists, it also runs serve's check that
// no sealing key its records need was removed.
func validate(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("validate", e)
	cfgPath := configFlag(fs, e)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitUsage
	}
	paths := append([]string{*cfgPath}, pos...)
	code := exitOK
	for _, p := range paths {
		l := load(p, e, nil, e.stderr)
		if l == nil {
			fmt.Fprintf(e.stderr, "%s: invalid\n", p)
			code = exitFailure
			continue
		}
		if !checkStoredKeys(ctx, l.cfg, p, e) {
			fmt.Fprintf(e.stderr, "%s: invalid\n", p)
			code = exitFailure
			l.reg.Close()
			continue
		}
		patterns := 0
		for _, pr := range l.reg.All() {
			patterns += len(pr.Patterns)
		}
		fmt.Fprintf(e.stdout, "%s: ok (%d providers, %d patterns)\n", p, len(l.reg.All()), patterns)
		l.reg.Close()
	}
	return code
}
