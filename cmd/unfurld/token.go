package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/connect"
	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/store/postgres"
	"github.com/unfurld/unfurld/engine/upstreamauth"
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
	var credential stringList
	fs.Var(&credential, "credential", "the user's upstream API key or access `token`, for providers with per-user credentials (default $"+credentialEnv+"); for a form of several fields, NAME=VALUE once per field (default $"+credentialEnv+"_NAME)")
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
	tok, msg := tokenCredential(p, credential, e)
	if msg != "" {
		fmt.Fprintf(e.stderr, "unfurld token: %s\n", msg)
		return exitUsage
	}
	// The sealing keys: from the configuration, or the development ones
	// serve generates beside the store, so serve can open what this
	// command seals.
	if _, err := l.cfg.FillDevSecrets(filepath.Dir(l.cfg.Storage.Path)); err != nil {
		fmt.Fprintf(e.stderr, "unfurld token: %v\n", err)
		return exitFailure
	}
	kr, err := sealing.ParseKeyring(l.cfg.Server.SecretKeys.Reveal())
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld token: server.secret_keys: %v\n", err)
		return exitFailure
	}
	st, err := openStore(ctx, l.cfg.Storage, bolt.Options{LockTimeout: l.cfg.Storage.LockTimeout.D()}, postgres.Options{})
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld token: %v\n", err)
		return exitFailure
	}
	defer func() { _ = st.Close() }()
	now := time.Now().UTC()
	conn := store.Connection{
		ID: issuer.NewID(), Provider: p.Name, AccountKey: "dev:" + issuer.NewID(), AccountName: *account,
		Status: store.StatusActive, CreatedAt: now, UpdatedAt: now,
	}
	if tok != nil {
		enc, err := tok.Encode()
		if err == nil {
			conn.UpstreamCredential, err = sealing.SealConnectionField(kr, conn, sealing.FieldUpstreamCredential, enc)
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
	access, err := issuer.IssueAccessToken(ctx, st, p.Name, conn.ID, now, 0)
	if err != nil {
		fmt.Fprintf(e.stderr, "unfurld token: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(e.stdout, access)
	return exitOK
}

// credentialKind names what a user brings for an auth type.
func credentialKind(auth string) string {
	if auth == config.AuthAPIKey {
		return "API key"
	}
	return "access token"
}

// tokenCredential is the upstream credential given to `token` for p, nil
// when p takes none, or a message saying what is wrong. A provider whose
// API-key form asks for several fields gets each as --credential
// NAME=VALUE or $UNFURLD_CREDENTIAL_NAME; the values are checked as the
// form checks them.
func tokenCredential(p *provider.Provider, given []string, e env) (*upstreamauth.Token, string) {
	auth := p.AuthType()
	fields := p.Config.Upstream.Auth.APIKey.Fields
	if auth == config.AuthNone {
		// $UNFURLD_CREDENTIAL may be left set for another provider; a flag
		// given here is a mistake.
		if len(given) > 0 {
			return nil, fmt.Sprintf("provider %s takes no per-user credential (upstream.auth type none); drop --credential", p.Name)
		}
		return nil, ""
	}
	if auth != config.AuthAPIKey || len(fields) == 0 {
		cred := ""
		switch len(given) {
		case 0:
			v, _ := e.lookupEnv(credentialEnv)
			cred = strings.TrimSpace(v)
		case 1:
			cred = strings.TrimSpace(given[0])
		default:
			return nil, fmt.Sprintf("provider %s takes one credential, not %d", p.Name, len(given))
		}
		switch {
		case cred == "":
			return nil, fmt.Sprintf("provider %s needs each user's own %s: give it with --credential or $%s", p.Name, credentialKind(auth), credentialEnv)
		case len(cred) > maxCredential || strings.ContainsFunc(cred, func(r rune) bool { return r < 0x21 || r == 0x7f }):
			return nil, "the credential is too long or holds spaces or control characters"
		}
		return &upstreamauth.Token{AccessToken: config.Secret(cred)}, ""
	}
	byName := map[string]string{}
	for _, g := range given {
		name, value, ok := strings.Cut(g, "=")
		if !ok {
			return nil, fmt.Sprintf("provider %s asks for several fields: give each as --credential NAME=VALUE", p.Name)
		}
		byName[name] = value
	}
	tok := &upstreamauth.Token{Fields: make(map[string]config.Secret, len(fields))}
	var names []string
	for _, f := range fields {
		names = append(names, f.Name)
		v, ok := byName[f.Name]
		if !ok {
			v, _ = e.lookupEnv(credentialEnv + "_" + strings.ToUpper(f.Name))
		}
		delete(byName, f.Name)
		v = strings.TrimSpace(v)
		if complaint := connect.CheckKeyField(f, v); complaint != "" {
			return nil, fmt.Sprintf("%s (give %s with --credential %s=VALUE or $%s_%s)", complaint, f.Name, f.Name, credentialEnv, strings.ToUpper(f.Name))
		}
		tok.Fields[f.Name] = config.Secret(v)
	}
	for name := range byName {
		return nil, fmt.Sprintf("provider %s has no credential field %q (it asks for %s)", p.Name, name, strings.Join(names, ", "))
	}
	return tok, ""
}

// stringList is a repeatable flag that keeps each value whole: a
// credential may hold commas.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, " ") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}
