package app

import (
	"fmt"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/connect"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/oauth"
	"github.com/unfurld/unfurld/engine/provider"
)

// Check runs on a loaded configuration and its compiled registry every
// check New makes before it touches a store: it parses the sealing keys,
// builds the Notion client and each oauth2 provider's upstream sign-in.
// cmd/unfurld runs it in the load step that `validate` and `serve` share,
// so a configuration validate accepts is one serve starts with (TH-53:
// refuse at validation, not at the first request or the first restart).
//
// Like config validation it has no side effects: nothing is written,
// dialled or generated. An empty server.secret_keys is not checked here:
// production mode has refused it already, and development mode generates
// it on start (config.FillDevSecrets).
func Check(cfg *config.Config, reg *provider.Registry) config.Errors {
	_, errs := prepare(cfg, reg, notion.ClientOptions{}, time.Now)
	return errs
}

// prepared is what New builds from the configuration alone.
type prepared struct {
	// keyring is nil when server.secret_keys is empty.
	keyring *oauth.Keyring
	notion  *notion.Client
}

// prepare builds the parts of an App that depend only on the
// configuration, and reports at the configuration keys what refuses to
// build. New and Check both run it, so they cannot disagree.
func prepare(cfg *config.Config, reg *provider.Registry, nopts notion.ClientOptions, now func() time.Time) (prepared, config.Errors) {
	var out prepared
	var errs config.Errors
	fail := func(path string, err error) {
		errs.Add(cfg.Positions.Of(path), path, "%v%s", err, sourceHint(cfg, path))
	}
	if !cfg.Server.SecretKeys.IsZero() {
		// The keyring's errors name keys by id or position, never by
		// their bytes (TH-42).
		kr, err := oauth.ParseKeyring(cfg.Server.SecretKeys.Reveal())
		if err != nil {
			fail("server.secret_keys", err)
		}
		out.keyring = kr
	}
	nopts.BaseURL = cfg.Notion.APIBaseURL
	nopts.TokenVersion = cfg.Notion.TokenVersion
	nopts.ObjectVersion = cfg.Notion.ObjectVersion
	nopts.Timeout = cfg.Notion.Timeout.D()
	nc, err := notion.NewClient(nopts)
	if err != nil {
		fail("notion.api_base_url", err)
	}
	out.notion = nc
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
