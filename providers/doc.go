// Package providers ships unfurld's ready-made provider definitions: one
// YAML file per upstream service (github.yaml, gitlab.yaml, linear.yaml),
// embedded in the binary and loaded with `include: builtin:NAME`.
//
// Providers are data (STYLE.md rule 3): each file uses exactly the schema of
// engine/config, the same a user writes for their own providers. Every
// provider has fixture cases under testdata/<name>/<case>/ (a request.json
// holding the URI Notion sends, canned upstream bodies under upstream/ keyed
// by request path, and the expected answer in want.golden.json) that the
// fixture runner in engine/fixture replays against a loopback fake.
//
// Nothing in engine/ imports this package; cmd/unfurld passes FS to the
// config loader as LoadOptions.Builtins.
package providers
