package providers

import (
	"embed"
	"io/fs"
	"sort"

	"github.com/unfurld/unfurld/engine/config"
)

// files holds the built-in provider definitions. It is a package-level
// variable only because //go:embed can fill nothing else; it is never
// written, and callers reach it through FS and Names.
//
//go:embed *.yaml
var files embed.FS

// FS returns the built-in providers as "<name>.yaml" files at the root, the
// layout config.LoadOptions.Builtins expects.
func FS() fs.FS { return files }

// Names returns what `include: builtin:NAME` accepts, sorted: each file's
// name without ".yaml" and, for a file declaring variants, NAME-VARIANT for
// each (github-oauth is github's oauth variant). Each is also the
// provider's name key.
func Names() []string {
	var names []string
	for _, b := range config.ListBuiltins(files) {
		names = append(names, b.Includes()...)
	}
	sort.Strings(names)
	return names
}

// PlaceholderEnv returns stand-in values for the environment variables
// that a built-in provider cannot load without (those referenced as
// ${NAME}, with no default): the upstream OAuth apps of github-oauth and
// zendesk, Trello's app key, and the customer's own host of jira,
// confluence and zendesk.
// The hosts stand in with the names the vendors' documentation uses
// (your-domain.atlassian.net, example.zendesk.com), so fixture URIs read
// like the vendors' examples. It is for offline runs that never reach an
// upstream's sign-in, such as the fixture cases of `unfurld test` and this
// package's tests; a real deployment sets the variables itself. Each call
// returns a new map.
func PlaceholderEnv() map[string]string {
	return map[string]string{
		"GITHUB_CLIENT_ID":      "placeholder-github-client-id",
		"GITHUB_CLIENT_SECRET":  "placeholder-github-client-secret",
		"JIRA_SITE":             "your-domain",
		"CONFLUENCE_SITE":       "your-domain",
		"ZENDESK_SUBDOMAIN":     "example",
		"ZENDESK_CLIENT_ID":     "placeholder-zendesk-client-id",
		"ZENDESK_CLIENT_SECRET": "placeholder-zendesk-client-secret",
		"TRELLO_APP_KEY":        "placeholder-trello-app-key",
	}
}
