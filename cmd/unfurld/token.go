package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/oauth"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
)

// credentialEnv names the environment variable `token` reads a per-user
// upstream credential from, so it stays out of shell history.
const credentialEnv = "UNFURLD_CREDENTIAL"

// maxCredential caps a credential given to `token`, as the API-key form
// caps a pasted key.
const maxCredential = 4096

// token creates a development connection and an access token for a
// provider, so the unfurl route can be tried with curl before the OAuth
// flow issues real ones. A provider whose users bring their own upstream
// credential (an API key or an OAuth token) gets it from --credential or
// $UNFURLD_CREDENTIAL, sealed into the connection exactly as the
// consent flow seals it, so every provider can be tried by hand. It needs
// the store, so run it while the server is stopped.
func token(ctx context.Context, args []string, e env) int {
	fs := newFlagSet("token", e)
	cfgPath := configFlag(fs, e)
	name := fs.String("provider", "", "provider the token is for (required)")
	account := fs.String("account", "development", "display name of the development connection")
	credential := fs.String("credential", "", "the user's upstream API key or access `token`, for providers with per-user credentials (default $"+credentialEnv+")")
	if _, err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	l := load(*cfgPath, e, nil, e.stderr)
	if l == nil {
		return exitFailure
	}
	defer l.reg.Close()
	p, ok := l.reg.Get(*name)
	if !ok {
		fmt.Fprintf(e.stderr, "unfurld token: --provider must name a provider of %s\n", *cfgPath)
		return exitUsage
	}
	cred := strings.TrimSpace(*credential)
	if cred == "" {
		v, _ := e.lookupEnv(credentialEnv)
		cred = strings.TrimSpace(v)
	}
	switch auth := p.AuthType(); {
	case auth == config.AuthNone && cred != "":
		fmt.Fprintf(e.stderr, "unfurld token: provider %s takes no per-user credential (upstream.auth type none); drop --credential and $%s\n", p.Name, credentialEnv)
		return exitUsage
	case auth != config.AuthNone && cred == "":
		fmt.Fprintf(e.stderr, "unfurld token: provider %s needs each user's own %s: give it with --credential or $%s\n", p.Name, credentialKind(auth), credentialEnv)
		return exitUsage
	case len(cred) > maxCredential || strings.ContainsFunc(cred, func(r rune) bool { return r < 0x21 || r == 0x7f }):
		fmt.Fprintf(e.stderr, "unfurld token: the credential is too long or holds spaces or control characters\n")
		return exitUsage
	}
	// The sealing keys: from the configuration, or the development ones
	// serve generates beside the store, so serve can open what this
	// command seals.
	if _, err := l.cfg.FillDevSecrets(filepath.Dir(l.cfg.Storage.Path)); err != nil {
		fmt.Fprintf(e.stderr, "unfurld token: %v\n", err)
		return exitFailure
	}
	kr, err := oauth.ParseKeyring(l.cfg.Server.SecretKeys.Reveal())
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld token: server.secret_keys: %v\n", err)
		return exitFailure
	}
	st, err := openStore(ctx, l.cfg.Storage, bolt.Options{LockTimeout: l.cfg.Storage.LockTimeout.D()})
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld token: %v\n", err)
		return exitFailure
	}
	defer func() { _ = st.Close() }()
	now := time.Now().UTC()
	conn := store.Connection{
		ID: oauth.NewID(), Provider: p.Name, AccountKey: "dev:" + oauth.NewID(), AccountName: *account,
		Status: store.StatusActive, CreatedAt: now, UpdatedAt: now,
	}
	if cred != "" {
		enc, err := oauth.UpstreamToken{AccessToken: config.Secret(cred)}.Encode()
		if err == nil {
			conn.UpstreamCredential, err = oauth.SealConnectionField(kr, conn, oauth.FieldUpstreamCredential, enc)
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "unfurld token: seal the credential: %v\n", err)
			return exitFailure
		}
	}
	if err := st.CreateConnection(ctx, conn); err != nil {
		fmt.Fprintf(e.stderr, "unfurld token: %v\n", err)
		return exitFailure
	}
	tok, err := oauth.IssueAccessToken(ctx, st, p.Name, conn.ID, now, 0)
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld token: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(e.stdout, tok)
	return exitOK
}

// credentialKind names what a user brings for an auth type.
func credentialKind(auth string) string {
	if auth == config.AuthAPIKey {
		return "API key"
	}
	return "access token"
}
