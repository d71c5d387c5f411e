package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/fixture"
	"github.com/unfurld/unfurld/providers"
)

// test runs provider fixture cases under DIR: DIR/<provider>/<case>/.
// Without --config it tests the built-in providers.
func test(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("test", e)
	cfgPath := fs.String("config", "", "configuration `file` declaring the providers (default: the built-in providers)")
	update := fs.Bool("update", false, "write want.golden.json from the current output instead of comparing (never an error answer the case does not expect, nor with a missing or unread fixture file)")
	verbose := fs.Bool("v", false, "list passing cases too")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(e.stderr, "usage: unfurld test [--config FILE] [--update] DIR")
		return exitUsage
	}
	var cfg *config.Config
	if *cfgPath != "" {
		l := load(*cfgPath, e, nil, e.stderr)
		if l == nil {
			return exitFailure
		}
		l.reg.Close()
		cfg = l.cfg
	} else {
		c, errs := builtinConfig()
		if c == nil {
			fmt.Fprintln(e.stderr, errs.Error())
			return exitFailure
		}
		c.Registry.Close()
		cfg = c.Config
	}
	names := make([]string, len(cfg.Providers))
	for i, p := range cfg.Providers {
		names[i] = p.Name
	}
	cases, err := fixture.Discover(pos[0], names)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitFailure
	}
	passed, failed := 0, 0
	for _, c := range cases {
		r := fixture.Run(ctx, cfg, c, *update)
		switch {
		case r.Err != nil:
			failed++
			fmt.Fprintf(e.stdout, "FAIL %s/%s\n     %s\n", c.Provider, c.Name, strings.ReplaceAll(r.Err.Error(), "\n", "\n     "))
		case *update:
			passed++
			fmt.Fprintf(e.stdout, "wrote %s/%s\n", c.Provider, c.Name)
		default:
			passed++
			if *verbose {
				fmt.Fprintf(e.stdout, "ok   %s/%s\n", c.Provider, c.Name)
			}
		}
	}
	fmt.Fprintf(e.stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 || len(cases) == 0 {
		if len(cases) == 0 {
			fmt.Fprintf(e.stderr, "no cases under %s\n", pos[0])
		}
		return exitFailure
	}
	return exitOK
}

// builtinConfig is a development configuration including every built-in
// provider, with nothing from the environment but stand-ins for the
// variables a builtin cannot load without (github-oauth's upstream app):
// fixture cases never reach an upstream's sign-in. github and
// github-oauth both claim github.com, which a deployment may not do;
// fixture cases never reach Notion, so the harness allows it.
func builtinConfig() (*compiled.Config, config.Errors) {
	var b strings.Builder
	b.WriteString("server: {mode: development}\nproviders:\n")
	for _, n := range providers.Names() {
		fmt.Fprintf(&b, "  - include: builtin:%s\n", n)
	}
	stand := providers.PlaceholderEnv()
	lookup := func(k string) (string, bool) { v, ok := stand[k]; return v, ok }
	return compiled.Parse("builtin", []byte(b.String()), compiled.Options{LookupEnv: lookup, Builtins: providers.FS(), AllowSharedDomains: true})
}
