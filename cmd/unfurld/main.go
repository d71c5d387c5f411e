// Command unfurld serves Notion Link Previews for the providers declared in
// one YAML file.
//
//	unfurld --config config.yaml            serve (same as `unfurld serve`)
//	unfurld validate --config config.yaml   load and compile, print every problem
//	unfurld preview --config config.yaml URL [--trace] [--token T] [--record DIR]
//	unfurld test [--config config.yaml] [--update] DIR
//	unfurld token --config config.yaml --provider NAME
//	unfurld notion-settings --config config.yaml [--provider NAME] [--show-secrets]
//	unfurld status --config config.yaml [--provider NAME] [--uri URI | --connection ID]
//	unfurld disconnect --config config.yaml --connection ID
//	unfurld canary --config config.yaml [--provider NAME] [--baseline FILE | --record FILE] [--format json]
//	unfurld compact [--config config.yaml | PATH]
//	unfurld migrate --config config.yaml
//	unfurld migrate-store --from OLD.yaml|unfurld.db --to NEW.yaml
//	unfurld providers [--format json]
//
// This package only wires: it parses flags, builds the logger, opens the
// store (bbolt or PostgreSQL), handles signals and owns the exit codes. Behaviour lives in
// engine/.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv})
	stop()
	os.Exit(code)
}

// env is what a command may touch of the process, injected for tests.
type env struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	// ready, when set, receives the listening address once serve listens.
	ready func(addr string)
}

const usage = `unfurld serves Notion Link Previews for providers declared in YAML.

Usage:
  unfurld [serve] --config FILE [--drop-key ID]    run the server
  unfurld validate --config FILE                   check a configuration; exit 1 on any error
  unfurld preview --config FILE [--trace] [--token T] [--record DIR] URL
                                                   dry-run one unfurl and print Notion's JSON
  unfurld test [--config FILE] [--update] DIR      run provider fixture cases under DIR
  unfurld token --config FILE --provider NAME      create a development connection and access token
  unfurld notion-settings --config FILE [--provider NAME] [--show-secrets] [--format json]
                                                   print what to type into Notion's dashboard
  unfurld status --config FILE [--provider NAME] [--uri URI] [--connection ID] [--format json]
                                                   live updates: subscriptions, queue, last refresh
  unfurld disconnect --config FILE --connection ID erase a connection and revoke its upstream grant
  unfurld canary --config FILE [--provider NAME] [--baseline FILE | --record FILE] [--format json]
                                                   run every sample against the real upstream; exit 1 on regressions
  unfurld compact [--config FILE | PATH]           rewrite the stopped server's database file, live records only
  unfurld migrate --config FILE                    apply the PostgreSQL schema migrations
  unfurld migrate-store --from CONFIG_OR_PATH --to CONFIG
                                                   copy every record from a store (a bbolt file) into an empty PostgreSQL one
  unfurld providers [--format json]                list the built-in providers: domains, URL kinds, sign-in
  unfurld version

Run 'unfurld COMMAND --help' for a command's flags.
`

func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	if strings.HasPrefix(cmd, "-") {
		if cmd == "-h" || cmd == "--help" || cmd == "-help" {
			fmt.Fprint(e.stdout, usage)
			return exitOK
		}
		cmd, rest = "serve", args
	}
	switch cmd {
	case "serve":
		return serve(ctx, rest, e)
	case "validate":
		return validate(ctx, rest, e)
	case "preview":
		return preview(ctx, rest, e)
	case "test":
		return test(ctx, rest, e)
	case "token":
		return token(ctx, rest, e)
	case "notion-settings":
		return notionSettings(rest, e)
	case "status":
		return statusCmd(ctx, rest, e)
	case "disconnect":
		return disconnect(ctx, rest, e)
	case "canary":
		return canaryCmd(ctx, rest, e)
	case "compact":
		return compactCmd(rest, e)
	case "migrate":
		return migrateCmd(ctx, rest, e)
	case "migrate-store":
		return migrateStoreCmd(ctx, rest, e)
	case "providers":
		return providersCmd(rest, e)
	case "version":
		fmt.Fprintln(e.stdout, "unfurld", version())
		return exitOK
	case "help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(e.stderr, "unfurld: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}
