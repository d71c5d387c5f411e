// Command unfurld serves Notion Link Previews for the providers declared in
// one YAML file.
//
//	unfurld --config config.yaml            serve (same as `unfurld serve`)
//	unfurld validate --config config.yaml   load and compile, print every problem
//	unfurld preview --config config.yaml URL [--trace] [--token T] [--record DIR]
//	unfurld test [--config config.yaml] [--update] DIR
//	unfurld token --config config.yaml --provider NAME
//	unfurld notion-settings --config config.yaml [--provider NAME] [--show-secrets]
//	unfurld status --config config.yaml [--server URL] [--provider NAME] [--uri URI | --connection ID]
//	unfurld disconnect --config config.yaml [--server URL] --connection ID
//	unfurld canary --config config.yaml [--provider NAME] [--baseline FILE | --record FILE] [--format json]
//	unfurld compact [--config config.yaml | PATH]
//	unfurld migrate --config config.yaml
//	unfurld migrate-store --from OLD.yaml|unfurld.db --to NEW.yaml
//	unfurld providers [--format json]
//	unfurld schema
//	unfurld healthcheck [--url URL]
//	unfurld version
//
// `unfurld help` lists the commands; commands() holds each one's help.
//
// This package only wires: it parses flags, builds the logger, opens the
// store (bbolt or PostgreSQL), handles signals and owns the exit codes. Behaviour lives in
// engine/.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
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
	// help is set while a command runs only to print its help.
	help *helpRequest
	// dial, when set, replaces the dialer of `status`'s requests to a
	// running server, so tests can prove what reaches which host
	// without leaving loopback.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// commands lists every subcommand, in the order the overview prints
// them. A function, not a package variable: no globals (STYLE.md).
func commands() []command {
	return []command{
		{
			name: "serve", args: "[--config FILE] [--listen ADDR] [--drop-key ID]", summary: "run the server",
			description: `Loads the configuration, opens the store and serves Notion's OAuth, unfurl and
deletion callbacks until SIGINT or SIGTERM, then drains in-flight requests.
"unfurld --config FILE" with no command does the same.`,
			example: "unfurld serve --config config.yaml",
			run:     serve,
		},
		{
			name: "validate", args: "[--config FILE]", summary: "check a configuration; exit 1 on any error",
			description: `Loads and compiles the configuration exactly as serve would and prints every
problem, one per line with file:line:col and the key. Exit 0 when it would start.`,
			example: "unfurld validate --config config.example.yaml",
			run:     validate,
		},
		{
			name: "preview", args: "[--config FILE] [--trace] [--token T] [--provider NAME] [--record DIR [--case NAME] [--expect-error]] URL", summary: "dry-run one unfurl and print Notion's JSON",
			description: `Matches URL against the providers, calls the upstream as configured and prints
the JSON the unfurl callback would answer. --trace explains each step on stderr;
--record DIR writes the exchange as a fixture case for 'unfurld test'.
Needs no running server and no Notion.`,
			example: "unfurld preview --config config.yaml --trace 'https://news.ycombinator.com/item?id=8863'",
			run:     preview,
		},
		{
			name: "test", args: "[--config FILE] [--update] [-v] DIR", summary: "run provider fixture cases under DIR",
			description: `Runs every fixture case (request.json, upstream/, want.golden.json) under DIR
against a fake upstream and compares the answer with the golden file.`,
			example: "unfurld test providers/testdata",
			run:     test,
		},
		{
			name: "token", args: "[--config FILE] --provider NAME [--credential C]", summary: "create a development connection and access token",
			description: `Creates a connection without Notion's consent flow and prints an access token
for the provider's unfurl route, so it can be tried with curl. For a provider
that takes a per-user API key or token, give it with --credential or in the
environment variable UNFURLD_CREDENTIAL; it is sealed like one from the consent
page. Run it while the server is stopped: it opens the store.`,
			example: `tok=$(unfurld token --config config.yaml --provider hackernews)
curl -H "Authorization: Bearer $tok" -d '{"uri":"https://news.ycombinator.com/item?id=8863"}' http://127.0.0.1:8080/providers/hackernews/unfurl`,
			run: token,
		},
		{
			name: "notion-settings", args: "[--config FILE] [--provider NAME] [--show-secrets] [--format json]", summary: "print what to type into Notion's dashboard",
			description: `Prints, per provider, every field of Notion's integration settings: the OAuth
URLs, the client id, the unfurl domain and the regex attributes. Secrets are
printed only with --show-secrets.`,
			example: "unfurld notion-settings --config config.yaml --provider github",
			run: func(_ context.Context, args []string, e env) int {
				return notionSettings(args, e)
			},
		},
		{
			name: "status", args: "[--config FILE] [--server URL] [--provider NAME] [--uri URI | --connection ID] [--format json]", summary: "connections, subscriptions, queue and last refreshes",
			description: `Prints per provider the connections, subscriptions, queued updates and the last
refresh; with --uri or --connection the story of one link or connection.
It reads the store when no server holds it. While a server runs, it asks the
server's admin API at --server or server.admin_url with server.admin_token; it
never guesses the address, and never sends the token over plain http to a
host other than loopback.`,
			example: "unfurld status --config config.yaml --server http://127.0.0.1:8080 --connection 3f9c2a",
			run:     statusCmd,
		},
		{
			name: "disconnect", args: "[--config FILE] [--server URL] --connection ID", summary: "erase a connection and revoke its upstream grant",
			description: `Deletes one connection as Notion's deleted-token callback would: its tokens and
subscriptions are erased from the database file and its upstream grant is
revoked when the provider declares how. With the server stopped it works on the
store; while a server holds the store, it asks the server's admin API at
--server or server.admin_url with server.admin_token (plain http only to
loopback).`,
			example: "unfurld disconnect --config config.yaml --connection 3f9c2a",
			run:     disconnect,
		},
		{
			name: "canary", args: "[--config FILE] [--provider NAME] [--baseline FILE | --record FILE] [--format json]", summary: "run every sample against the real upstream; exit 1 on regressions",
			description: `Runs every pattern's samples through the provider's own unfurl against the
real upstream and reports per provider what still maps and what changed since
the baseline (--baseline, or canary.baseline). --record writes this run as the
new baseline instead. Exit 1 on any regression.`,
			example: "unfurld canary --config config.yaml --provider github",
			run:     canaryCmd,
		},
		{
			name: "compact", args: "[--config FILE | PATH]", summary: "rewrite the stopped server's database file, live records only",
			description: `Rewrites the bbolt file so that it holds only live records: the bytes of deleted
connections and tokens left in free pages are gone. The server must be stopped.`,
			example: "unfurld compact --config config.yaml",
			run: func(_ context.Context, args []string, e env) int {
				return compactCmd(args, e)
			},
		},
		{
			name: "check", args: "[--config FILE | PATH]", summary: "read every page of the stopped server's database file",
			description: `Runs the integrity check of the bbolt file, which reads every page: what serve
does in the background after it starts listening. Exit 1 when the file is
damaged or held by a running server.`,
			example: "unfurld check --config config.yaml",
			run: func(_ context.Context, args []string, e env) int {
				return checkCmd(args, e)
			},
		},
		{
			name: "migrate", args: "[--config FILE]", summary: "apply the PostgreSQL schema migrations",
			description: `Applies the PostgreSQL schema migrations of storage.driver: postgres without
starting the server (serve applies them too). With a bbolt store there is
nothing to do: a bbolt file is upgraded when it is opened.`,
			example: "unfurld migrate --config config.yaml",
			run:     migrateCmd,
		},
		{
			name: "migrate-store", args: "--from CONFIG_OR_PATH --to CONFIG", summary: "copy every record into an empty store",
			description: `Copies every record from one store to another, most often a bbolt file to
PostgreSQL, sealed values unopened, and checks the counts. The destination
must be empty and both servers stopped.`,
			example: "unfurld migrate-store --from data/unfurld.db --to postgres.yaml",
			run:     migrateStoreCmd,
		},
		{
			name: "providers", args: "[--format json]", summary: "list the built-in providers: domains, URL kinds, sign-in",
			description: `Lists the built-in providers that 'include: builtin:NAME' accepts: the links
each one unfurls and how its users sign in. Needs no configuration.`,
			example: "unfurld providers --format json",
			run: func(_ context.Context, args []string, e env) int {
				return providersCmd(args, e)
			},
		},
		{
			name: "schema", summary: "print the JSON Schema of the configuration, for editors",
			description: `Prints the JSON Schema of the configuration file, generated from the same table
as the configuration reference (docs/configuration.md); docs/unfurld.schema.json is its
output. Point an editor at it with a first line such as
  # yaml-language-server: $schema=docs/unfurld.schema.json`,
			example: "unfurld schema > docs/unfurld.schema.json",
			run: func(_ context.Context, args []string, e env) int {
				return schemaCmd(args, e)
			},
		},
		{
			name: "healthcheck", args: "[--url URL]", summary: "exit 0 when the server's /healthz answers ok",
			description: `Asks a running server's /healthz and exits 0 when it answers 200, 1 otherwise.
Made for container health checks (the image has no shell or curl).`,
			example: "unfurld healthcheck --url http://127.0.0.1:8080/healthz",
			run:     healthcheck,
		},
		{
			name: "version", summary: "print the version and VCS revision",
			description: "Prints the module version, the VCS revision and its time, from the build.",
			example:     "unfurld version",
			run:         versionCmd,
		},
		{
			name: "help", args: "[COMMAND]", summary: "print this overview or a command's help",
			description: "Prints the list of commands, or one command's description, flags and example.",
			example:     "unfurld help status",
		},
	}
}

func run(ctx context.Context, args []string, e env) int {
	cmds := commands()
	if len(args) == 0 {
		printOverview(e.stderr, cmds)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	if strings.HasPrefix(name, "-") {
		if name == "-h" || name == "--help" || name == "-help" {
			printOverview(e.stdout, cmds)
			return exitOK
		}
		name, rest = "serve", args
	}
	if name == "help" {
		if len(rest) == 0 {
			printOverview(e.stdout, cmds)
			return exitOK
		}
		if !helpRequested(rest[:1]) {
			name = rest[0]
		}
		rest = []string{"--help"}
	}
	for _, c := range cmds {
		if c.name != name {
			continue
		}
		if c.run == nil || helpRequested(rest) {
			return commandHelp(ctx, c, e)
		}
		return c.run(ctx, rest, e)
	}
	fmt.Fprintf(e.stderr, "unfurld: unknown command %q\n\n", name)
	printOverview(e.stderr, cmds)
	return exitUsage
}

// commandHelp prints c's help. The command runs with only "-h", so its
// flag set prints the help with the flags it really parses and the
// command stops at the parse.
func commandHelp(ctx context.Context, c command, e env) int {
	hr := &helpRequest{cmd: c}
	if c.run != nil {
		he := e
		he.help = hr
		he.stderr = io.Discard
		_ = c.run(ctx, []string{"-h"}, he)
	}
	if !hr.printed {
		printCommandHelp(e.stdout, c, nil)
	}
	return exitOK
}
