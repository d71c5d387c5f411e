// Package providers ships unfurld's ready-made provider definitions: one
// YAML file per upstream service, with its variants (Names lists them;
// `unfurld providers` and docs/providers.md describe each), embedded in
// the binary and loaded with `include: builtin:NAME`.
//
// Sign-in: github uses one service-wide token (auth none), so it starts
// with nothing exported; its oauth variant, github-oauth (declared in
// github.yaml, not a file of its own), and zendesk sign each user in
// (oauth2, need an OAuth app); the others take each user's own API key
// (api_key). jira, confluence and zendesk serve one customer host each,
// named by a required variable (JIRA_SITE, CONFLUENCE_SITE,
// ZENDESK_SUBDOMAIN). Every per-user provider declares an identity
// request, so a connection knows its upstream account (protocol 4.2).
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
