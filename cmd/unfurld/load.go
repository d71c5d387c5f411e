package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/providers"
)

// loaded is a configuration loaded and compiled.
type loaded struct {
	cfg *config.Config
	reg *provider.Registry
	// warnings are the problems that do not stop the server; loadQuiet
	// leaves them for the caller to log.
	warnings config.Errors
}

// load reads, compiles and checks a configuration through
// compiled.Load, printing every problem (errors and warnings) to w. It
// returns nil when there is any error. Every command loads through it,
// so `validate` refuses exactly what `serve` and a reload would.
func load(path string, e env, logger *slog.Logger, w io.Writer) *loaded {
	return loadWith(path, e, loadOptions(e, logger), w, false)
}

// loadWith is load with the given options (serve adds the metrics
// observer); with quiet, a configuration that loads prints nothing, and
// its warnings are left in loaded.warnings for serve to log in the
// process's log format (errors still print to w: there is no logger
// without a configuration).
func loadWith(path string, e env, opts compiled.Options, w io.Writer, quiet bool) *loaded {
	c, errs := compiled.Load(path, opts)
	if !quiet || c == nil {
		for _, line := range dedupe(errs) {
			fmt.Fprintln(w, line)
		}
	}
	if c == nil {
		return nil
	}
	return &loaded{cfg: c.Config, reg: c.Registry, warnings: errs}
}

// loadOptions are the options every command loads with: the process
// environment and the built-in providers.
func loadOptions(e env, logger *slog.Logger) compiled.Options {
	return compiled.Options{LookupEnv: e.lookupEnv, Builtins: providers.FS(), Logger: logger}
}

// logWarnings logs the configuration's warnings through the process
// logger, one record each with the position and key as attributes, so
// that they reach the same sink, in the same format, as everything else.
// A warning never holds a secret: config errors quote keys and shapes,
// and secrets are redacted values.
func logWarnings(logger *slog.Logger, errs config.Errors) {
	seen := map[string]bool{}
	for _, e := range errs {
		if !e.Warning || seen[e.Error()] {
			continue
		}
		seen[e.Error()] = true
		logger.Warn("config", "file", e.Pos.File, "line", e.Pos.Line, "col", e.Pos.Col, "key", e.Path, "problem", e.Msg)
	}
}

func dedupe(errs config.Errors) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range errs {
		s := e.Error()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// newLogger builds the process logger from the log settings; every record
// logged with a request's context carries its request_id.
func newLogger(s config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(s.Level))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if strings.EqualFold(s.Format, "json") {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(server.LogHandler(h))
}

// newFlagSet returns a flag set that reports to e.stderr and does not exit.
func newFlagSet(name string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet("unfurld "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		if e.help != nil {
			e.help.printed = true
			printCommandHelp(e.stdout, e.help.cmd, fs)
			return
		}
		fmt.Fprintf(e.stderr, "Run 'unfurld %s --help' for its flags and an example.\n", name)
	}
	return fs
}

// configFlag defines --config, defaulting to $UNFURLD_CONFIG and then to
// config.yaml, so a container or a shell can name the file once.
func configFlag(fs *flag.FlagSet, e env) *string {
	def := "config.yaml"
	if v, ok := e.lookupEnv("UNFURLD_CONFIG"); ok && v != "" {
		def = v
	}
	return fs.String("config", def, "configuration `file`; $UNFURLD_CONFIG names it when this flag is absent")
}

// parseFlags parses args allowing flags after positional arguments
// ("preview URL --trace"), which the flag package alone does not.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
