package main

import (
	"context"
	"fmt"
	"time"

	"github.com/unfurld/unfurld/engine/oauth"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
)

// token creates a development connection and an access token for a
// provider, so the unfurl route can be tried with curl before the OAuth
// flow issues real ones. It needs the store, so run it while the server
// is stopped.
func token(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("token", e)
	cfgPath := configFlag(fs, e)
	name := fs.String("provider", "", "provider the token is for (required)")
	account := fs.String("account", "development", "display name of the development connection")
	if _, err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	l := load(*cfgPath, e, nil, e.stderr)
	if l == nil {
		return exitFailure
	}
	defer l.reg.Close()
	if _, ok := l.reg.Get(*name); !ok {
		fmt.Fprintf(e.stderr, "unfurld token: --provider must name a provider of %s\n", *cfgPath)
		return exitUsage
	}
	st, err := openStore(ctx, l.cfg.Storage, bolt.Options{LockTimeout: l.cfg.Storage.LockTimeout.D()})
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld token: %v\n", err)
		return exitFailure
	}
	defer func() { _ = st.Close() }()
	now := time.Now().UTC()
	conn := store.Connection{
		ID: oauth.NewID(), Provider: *name, AccountKey: "dev:" + oauth.NewID(), AccountName: *account,
		Status: store.StatusActive, CreatedAt: now, UpdatedAt: now,
	}
	if err := st.CreateConnection(ctx, conn); err != nil {
		fmt.Fprintf(e.stderr, "unfurld token: %v\n", err)
		return exitFailure
	}
	tok, err := oauth.IssueAccessToken(ctx, st, *name, conn.ID, now, 0)
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld token: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(e.stdout, tok)
	return exitOK
}
