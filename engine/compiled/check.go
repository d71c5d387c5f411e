package compiled

import (
	"fmt"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/connect"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/sealing"
)

// Check runs on a loaded configuration and its compiled registry every
// check app.New makes before it touches a store: it parses the sealing keys,
// builds the Notion client and each oauth2 provider's upstream sign-in.
// Load runs it, so a configuration `validate` accepts is one serve
// starts with and a reload applies (TH-53:
// refuse at validation, not at the first request or the first restart).
//
// Like config validation it has no side effects: nothing is written,
// dialled or generated. An empty server.secret_keys is not checked here:
// production mode has refused it already, and development mode generates
// it on start (config.FillDevSecrets).
func Check(cfg *config.Config, reg *provider.Registry) config.Errors {
	_, errs := Prepare(cfg, reg, notion.ClientOptions{}, time.Now)
	return errs
}

// Prepared is what app.New builds from the configuration alone.
type Prepared struct {
	// Keyring is nil when server.secret_keys is empty.
	Keyring *sealing.Keyring
	// Notion is the client for Notion's API.
	Notion *notion.Client
}

// Prepare builds the parts of an app that depend only on the
// configuration, and reports at the configuration keys what refuses to
// build. app.New and Check both run it, so they cannot disagree.
func Prepare(cfg *config.Config, reg *provider.Registry, nopts notion.ClientOptions, now func() time.Time) (Prepared, config.Errors) {
	var out Prepared
	var errs config.Errors
	fail := func(path string, err error) {
		errs.Add(cfg.Positions.Of(path), path, "%v%s", err, sourceHint(cfg, path))
	}
	if !cfg.Server.SecretKeys.IsZero() {
		// The keyring's errors name keys by id or position, never by
		// their bytes (TH-42).
		kr, err := sealing.ParseKeyring(cfg.Server.SecretKeys.Reveal())
		if err != nil {
			fail("server.secret_keys", err)
		}
		out.Keyring = kr
	}
	nopts.BaseURL = cfg.Notion.APIBaseURL
	nopts.TokenVersion = cfg.Notion.TokenVersion
	nopts.ObjectVersion = cfg.Notion.ObjectVersion
	nopts.Timeout = cfg.Notion.Timeout.D()
	nc, err := notion.NewClient(nopts)
	if err != nil {
		fail("notion.api_base_url", err)
	}
	out.Notion = nc
	for _, p := range reg.All() {
		if p.AuthType() != config.AuthOAuth2 {
			continue
		}
		if _, err := connect.NewUpstream(p, cfg.Server.PublicURL, now); err != nil {
			fail("providers."+p.Name+".upstream.auth.oauth2", err)
		}
	}
	errs.Sort()
	return out, errs
}

// sourceHint names where the secret at path came from when that is not
// the position the message already starts with: the variable or the file
// to fix.
func sourceHint(cfg *config.Config, path string) string {
	src, ok := cfg.Sources[path]
	if !ok || src.Kind == config.SourceLiteral {
		return ""
	}
	return fmt.Sprintf(" (the value is %s)", src.Describe())
}
