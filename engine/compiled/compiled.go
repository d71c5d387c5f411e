package compiled

import (
	"io/fs"
	"log/slog"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
)

// Options tune Load, Parse and Compile.
type Options struct {
	// LookupEnv resolves ${NAME}; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Builtins holds the built-in providers for `include: builtin:NAME`;
	// may be nil.
	Builtins fs.FS
	// AllowSharedDomains is config.LoadOptions.AllowSharedDomains: for
	// fixture harnesses only.
	AllowSharedDomains bool
	// Logger receives provider-scoped logs; nil discards them.
	Logger *slog.Logger
	// Now is the providers' clock; nil means time.Now.
	Now func() time.Time
	// Observer learns what the providers do, for metrics; nil observes
	// nothing.
	Observer provider.Observer
}

// Config is a configuration loaded, compiled and checked.
type Config struct {
	// Config is the typed configuration, defaults applied.
	Config *config.Config
	// Registry holds its compiled providers.
	Registry *provider.Registry
}

// Load reads the configuration file at path and compiles it. It returns
// every problem found (errors and warnings, sorted) and a nil Config when
// any of them is an error.
func Load(path string, opts Options) (*Config, config.Errors) {
	cfg, errs := config.Load(path, opts.loadOptions())
	return compile(cfg, errs, opts)
}

// Parse is Load on bytes already read; name stands for the file in
// positions, and includes resolve beside it.
func Parse(name string, data []byte, opts Options) (*Config, config.Errors) {
	cfg, errs := config.Parse(name, data, opts.loadOptions())
	return compile(cfg, errs, opts)
}

// Compile compiles and checks a configuration already loaded (or built
// in Go with SetDefaults applied), e.g. one provider of a larger file
// pointed at a fake upstream.
func Compile(cfg *config.Config, opts Options) (*Config, config.Errors) {
	return compile(cfg, nil, opts)
}

func compile(cfg *config.Config, errs config.Errors, opts Options) (*Config, config.Errors) {
	if cfg == nil || errs.HasErrors() {
		return nil, errs
	}
	reg, berrs := provider.Build(cfg, provider.Options{Logger: opts.Logger, Now: opts.Now, Observer: opts.Observer})
	errs = append(errs, berrs...)
	if reg != nil && !berrs.HasErrors() {
		// What serve's app.New would refuse, every command refuses too.
		errs = append(errs, Check(cfg, reg)...)
	}
	errs.Sort()
	if errs.HasErrors() || reg == nil {
		if reg != nil {
			reg.Close()
		}
		return nil, errs
	}
	return &Config{Config: cfg, Registry: reg}, errs
}

func (o Options) loadOptions() config.LoadOptions {
	return config.LoadOptions{LookupEnv: o.LookupEnv, Builtins: o.Builtins, AllowSharedDomains: o.AllowSharedDomains}
}
