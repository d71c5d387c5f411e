package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Key documents one configuration key. Keys is the one table of
// unfurld's settings: SetDefaults takes the defaults from it, the
// configuration reference, docs/configuration.md, is generated from it (Reference), and
// so is the JSON Schema editors use (Schema). A test checks that it names
// every yaml key of Config and nothing else.
type Key struct {
	// Path is the dotted key; the items of a list are written []
	// ("providers[].upstream.timeout").
	Path string
	// Default is the value an unset key gets, as YAML text ("5s",
	// "2MiB", "[a, b]"); "" when the key has none of its own.
	Default string
	// When, if set, says when Default applies ("in development mode");
	// SetDefaults applies such a default in code, reading its value here.
	When string
	// KeepZero means an explicit zero is a value, not "unset": the
	// default applies only when the key is absent ("cache_ttl: 0s"
	// disables the cache).
	KeepZero bool
	// DefaultDoc describes for people a default computed from other
	// keys, or what happens without the key ("host of `base_url`",
	// "required"). The reference prints it instead of Default.
	DefaultDoc string
	// Enum lists the allowed values of a key with a closed set.
	Enum []string
	// Doc says what the key does: one line of Markdown.
	Doc string
}

// sections are the sections Notion renders attributes in; the provider
// build checks which kinds each takes.
func sections() []string {
	return []string{"title", "identifier", "primary", "secondary", "body", "background", "entity", "avatar", "embed"}
}

// Keys returns the table of every configuration key, in file order.
func Keys() []Key {
	return []Key{
		{Path: "server", Doc: "the HTTP listener"},
		{Path: "server.listen", Default: ":8080", Doc: "TCP address to listen on, `host:port` or `:port`"},
		{Path: "server.public_url", Default: "http://localhost:8080", When: "in development mode", DefaultDoc: "`http://localhost:8080` in development; required (https) in production", Doc: "the externally reachable base URL; every absolute URL unfurld emits is built from it, never from the request's Host header"},
		{Path: "server.mode", Default: ModeProduction, Enum: []string{ModeDevelopment, ModeProduction}, Doc: "`development` generates missing secrets beside the data file and allows plain-http upstreams; `production` refuses to start instead"},
		{Path: "server.read_header_timeout", Default: "5s", Doc: "slowloris guard"},
		{Path: "server.read_timeout", Default: "10s", Doc: "whole-request read bound"},
		{Path: "server.write_timeout", Default: "30s", Doc: "response write bound"},
		{Path: "server.idle_timeout", Default: "120s", Doc: "idle keep-alive connections"},
		{Path: "server.shutdown_timeout", Default: "15s", Doc: "how long in-flight requests may finish after SIGTERM"},
		{Path: "server.max_header_bytes", Default: "16KiB", Doc: "header cap (431 above it)"},
		{Path: "server.unfurl_body_limit", Default: "64KiB", Doc: "body cap of the unfurl route (413 above it)"},
		{Path: "server.unfurl_timeout", Default: "8s", Doc: "whole budget for one unfurl; past it Notion gets a \"try later\" error operation"},
		{Path: "server.unfurl_error_status", Default: "200", Doc: "HTTP status carrying error operations (Notion reads bodies of 200s for sure)"},
		{Path: "server.trusted_proxies", DefaultDoc: "none", Doc: "IP ranges (`127.0.0.1/32`, `10.0.0.0/8`, or one address) of your reverse proxies; only from them is `X-Forwarded-For` believed, for rate limits and logs (see docs/operations.md#behind-a-proxy)"},
		{Path: "server.max_connections", Default: "1024", Doc: "open client connections at once; more wait until one closes, so idle connections cannot use up the process's file descriptors"},
		{Path: "server.max_concurrent_upstream", Default: "256", Doc: "upstream requests in flight across providers; beyond it unfurls get a fast 503 error operation"},
		{Path: "server.secret_keys", DefaultDoc: "generated in development; required in production", Doc: "sealing keys for stored credentials: `id:base64key[,id:base64key...]`, 32-byte keys, the first seals and all open (rotation). Usually `${UNFURLD_SECRET_KEYS}`"},
		{Path: "server.admin_token", DefaultDoc: "generated in development", Doc: "guards the `/admin/` routes (status, reload, connection deletion), `/metrics` (below) and the lab in production; 32+ characters; empty turns the admin routes off"},
		{Path: "server.lab", Doc: "the lab page (`/lab`), where an operator pastes a URL and sees the preview"},
		{Path: "server.lab.enabled", Default: "false", Doc: "serves the lab page `/lab` in production mode, where every run needs `admin_token` (required then); in development mode the page is always on, without a token"},
		{Path: "server.admin_listen", DefaultDoc: "none", Doc: "a second address, e.g. `127.0.0.1:9091`, that serves `/metrics`, the `/admin/…` routes and `/healthz` instead of `listen`, so Prometheus scrapes a port the internet does not reach; must differ from `listen`. The `/admin/…` routes still need the admin token there: they name links and connections, and can disconnect one"},
		{Path: "server.admin_url", DefaultDoc: "none", Doc: "where `unfurld status` reaches the running server's admin API while the server holds the store, e.g. `http://127.0.0.1:8080` (or the `admin_listen` port) or `https://unfurl.example.com`; plain http only to loopback (`--server` wins)"},
		{Path: "server.metrics", Doc: "the Prometheus metrics at `/metrics`"},
		{Path: "server.metrics.enabled", Default: "true", Doc: "serve `GET /metrics`"},
		{Path: "server.metrics.require_token", Default: "true", Doc: "ask for `admin_token` as a bearer on `/metrics`; `false` is refused in production unless `admin_listen` is set (it would publish every provider's traffic)"},
		{Path: "server.log", Doc: "the process logger"},
		{Path: "server.log.level", Default: "info", Enum: []string{"debug", "info", "warn", "error"}, Doc: "`debug`, `info`, `warn`, `error`"},
		{Path: "server.log.format", Default: "text", Enum: []string{"text", "json"}, Doc: "`text` or `json`"},

		{Path: "storage", Doc: "the embedded database"},
		{Path: "storage.driver", Default: StorageBolt, Enum: []string{StorageBolt, StoragePostgres}, Doc: "`bolt`: one file on local disk, nothing to set up. `postgres`: a PostgreSQL database (see docs/operations.md#moving-to-postgresql)"},
		{Path: "storage.dsn", DefaultDoc: "—", Doc: "with `driver: postgres`, required: the connection string, e.g. `${DATABASE_URL}` = `postgres://unfurld:PASSWORD@db:5432/unfurld?sslmode=verify-full`. A secret (it may hold the password): give it with `${NAME}` or `dsn_file: /run/secrets/dsn`; production mode refuses one written in the file. A `dsn` beside `driver: bolt` is an error, not ignored. The pool holds up to 4 connections (or one per CPU if more); add `pool_max_conns=N` to the DSN to change it. One more connection per process listens for the other replicas' changes (see docs/operations.md#several-replicas)"},
		{Path: "storage.path", Default: "./data/unfurld.db", Doc: "the bbolt file; its directory also holds `dev-secrets.json` in development mode"},
		{Path: "storage.lock_timeout", Default: "2s", Doc: "a second unfurld on the same file gives up after this with \"database is locked by another process\""},

		{Path: "notion", Doc: "calls to Notion's API, shared by every provider"},
		{Path: "notion.api_base_url", Default: defaultNotionAPIBaseURL, Doc: "Notion's API; point it at a local fake in tests (plain http in development mode only)"},
		{Path: "notion.token_version", Default: defaultTokenVersion, Doc: "`Notion-Version` for `/v1/oauth/token`"},
		{Path: "notion.object_version", Default: defaultObjectVersion, Doc: "`Notion-Version` for `/v1/external/object`"},
		{Path: "notion.timeout", Default: "10s", Doc: "per call to Notion"},
		{Path: "notion.redirect_uris", Default: "[https://notion.so/externalIntegrationAuthCallback, notion.so/externalIntegrationAuthCallback, https://www.notion.so/externalintegrationauthcallback, https://notion.so/externalintegrationauthcallback, https://www.notion.so/externalIntegrationAuthCallback]", DefaultDoc: "Notion's documented spellings", Doc: "exact-match allowlist for the authorize URL's `redirect_uri`"},

		{Path: "canary", Doc: "the canaries `serve` runs on a schedule (see Canaries)"},
		{Path: "canary.interval", Default: "0s", DefaultDoc: "`0s` (off)", Doc: "how often `serve` runs every provider's [canaries](authoring.md#canaries); at least `5m`"},
		{Path: "canary.baseline", Doc: "the file `unfurld canary --record` wrote, relative to the YAML file; scheduled runs and `unfurld canary` compare with it. A server with canaries scheduled refuses to start when it cannot be read"},

		{Path: "providers[]", Doc: "the upstream services this deployment unfurls: a whole provider, or `include: PATH` (a file holding one provider, relative to the including file) or `include: builtin:NAME` (see Built-in providers)"},
		{Path: "providers[].include", Doc: "load this provider from another file: a path relative to the including file, or `builtin:NAME`; an include entry holds no other key"},
		{Path: "providers[].name", DefaultDoc: "required", Doc: "route name: lower-case letters, digits, `-`; unique"},
		{Path: "providers[].display_name", DefaultDoc: "`name`", Doc: "shown to people"},
		{Path: "providers[].icon_url", Doc: "https image for the consent page"},
		{Path: "providers[].dev", Default: defaultDev, Doc: "text of the required `dev` attribute: who is behind the preview"},
		{Path: "providers[].notion", Doc: "the provider's two credential pairs"},
		{Path: "providers[].notion.client_id", DefaultDoc: "`name`", Doc: "the OAuth Client ID you invent and type into Notion"},
		{Path: "providers[].notion.client_secret", DefaultDoc: "generated in development", Doc: "the OAuth Client Secret you type into Notion; 32+ characters in production"},
		{Path: "providers[].notion.integration_client_id", Doc: "the Notion integration's own OAuth client id, from its settings page"},
		{Path: "providers[].notion.integration_client_secret", Doc: "the Notion integration's own OAuth client secret (must differ from `client_secret`)"},
		{Path: "providers[].notion.scopes", Doc: "free-form scopes string typed into Notion"},
		{Path: "providers[].notion.domain", DefaultDoc: "host of the first sample", Doc: "the Unfurl URL Domain; two providers whose domains overlap (equal, or one a subdomain of the other) are refused"},
		{Path: "providers[].notion.subdomains", Default: "false", Doc: "also serve links on any subdomain of `notion.domain` (a host per customer, as `acme.pagerduty.com`); the patterns still decide what matches"},
		{Path: "providers[].notion.shared_domain", Default: "false", Doc: "set on every provider of a domain to run several integrations on it (Jira and Confluence on one site do). Notion takes one domain per integration and does not document which of two on one domain answers a link, so their patterns must be disjoint: a sample that a pattern of the other provider also matches is refused"},
		{Path: "providers[].notion.access_token_ttl", Default: "0s", Doc: "`0s`: the tokens we issue to Notion never expire (Notion's default); otherwise they expire and come with a rotating refresh token"},
		{Path: "providers[].notion.refresh_grace", Default: "30s", Doc: "a rotated refresh token presented again within this window gets the same new pair (a retry); after it, the whole grant is revoked (replay)"},
		{Path: "providers[].upstream", Doc: "how to call the service's API"},
		{Path: "providers[].upstream.base_url", DefaultDoc: "required", Doc: "API origin; relative request URLs resolve against it (its path is kept: `https://gitlab.com/api/v4`)"},
		{Path: "providers[].upstream.allowed_hosts", DefaultDoc: "host of `base_url`", Doc: "every host requests and redirects may reach; credentials go nowhere else"},
		{Path: "providers[].upstream.embed_hosts", Doc: "extra hosts allowed in URL attributes (images, embeds); others are dropped"},
		{Path: "providers[].upstream.headers", Doc: "headers sent on every request"},
		{Path: "providers[].upstream.timeout", Default: "5s", Doc: "per request"},
		{Path: "providers[].upstream.cache_ttl", Default: "30s", KeepZero: true, Doc: "keeps responses and results per (credential, URI); `0s` disables"},
		{Path: "providers[].upstream.max_body_bytes", Default: "2MiB", Doc: "cap on the decompressed response"},
		{Path: "providers[].upstream.allow_private_networks", Default: "false", Doc: "lets requests reach loopback/private addresses, for local fakes; refused in production"},
		{Path: "providers[].upstream.auth", Doc: "how requests are authenticated"},
		{Path: "providers[].upstream.auth.type", Default: AuthNone, Enum: []string{AuthNone, AuthOAuth2, AuthAPIKey}, Doc: "`none`: a public API, optionally with one service-wide token (every Notion user shares it); `oauth2`: each user signs in at the upstream; `api_key`: each user pastes a key"},
		{Path: "providers[].upstream.auth.header", Default: defaultAuthHeader, Doc: "header carrying the credential"},
		{Path: "providers[].upstream.auth.prefix", Default: defaultAuthPrefix, Doc: "text before the credential, joined with a space; `none` for a bare one (other shapes: `upstream.auth.value`)"},
		{Path: "providers[].upstream.auth.token", Doc: "service-wide credential, e.g. `${GITHUB_TOKEN:-}`; empty means anonymous"},
		{Path: "providers[].upstream.auth.oauth2", Doc: "per-user sign-in, for type `oauth2`"},
		{Path: "providers[].upstream.auth.oauth2.authorize_url", DefaultDoc: "required for `oauth2`", Doc: "the upstream's authorization endpoint"},
		{Path: "providers[].upstream.auth.oauth2.token_url", DefaultDoc: "required for `oauth2`", Doc: "the upstream's token endpoint; its host is allowed automatically"},
		{Path: "providers[].upstream.auth.oauth2.client_id", DefaultDoc: "required for `oauth2`", Doc: "the upstream OAuth app, registered with the callback `<public_url>/providers/<name>/callback`"},
		{Path: "providers[].upstream.auth.oauth2.client_secret", DefaultDoc: "required for `oauth2`", Doc: "the upstream OAuth app's secret"},
		{Path: "providers[].upstream.auth.oauth2.scopes", Doc: "requested scopes"},
		{Path: "providers[].upstream.auth.oauth2.extra_params", Doc: "extra authorize parameters (not `state`, `redirect_uri` or PKCE ones)"},
		{Path: "providers[].upstream.auth.oauth2.disable_pkce", Default: "false", Doc: "PKCE S256 is on unless an upstream rejects it"},
		{Path: "providers[].upstream.auth.oauth2.client_auth", Default: ClientAuthHeader, Enum: []string{ClientAuthHeader, ClientAuthParams}, Doc: "how the client secret reaches the token URL: `header` (HTTP Basic) or `params` (form body); never guessed, so a code is never sent twice"},
		{Path: "providers[].upstream.auth.oauth2.revocation", Doc: "revokes the user's grant at the upstream when their connection is deleted, after the local erase; best effort (one retry, failures logged at warn)"},
		{Path: "providers[].upstream.auth.oauth2.revocation.url", DefaultDoc: "none: nothing is revoked", Doc: "the revocation endpoint, absolute; `{client_id}` in it stands for `oauth2.client_id`; its host is allowed automatically"},
		{Path: "providers[].upstream.auth.oauth2.revocation.style", Default: RevocationRFC7009, When: "with a url", Enum: []string{RevocationRFC7009, RevocationGitHubGrant}, Doc: "`rfc7009` POSTs `token` and `token_type_hint` with the client authenticated as at the token URL (GitLab's `/oauth/revoke`); `github_grant` is GitHub's \"delete an app authorization\" (`DELETE https://api.github.com/applications/{client_id}/grant`, used by `builtin:github-oauth`)"},
		{Path: "providers[].upstream.auth.api_key", Doc: "the key form, for type `api_key`"},
		{Path: "providers[].upstream.auth.api_key.help_text", Doc: "shown on the key form: which key to paste"},
		{Path: "providers[].upstream.auth.api_key.help_url", Doc: "shown on the key form: where keys are made"},
		{Path: "providers[].upstream.auth.api_key.fields[]", DefaultDoc: "one secret field, the key", Doc: "several values the form asks for, together the credential (sealed as one): `[{name: email, label: E-mail, type: email}, {name: token, label: API token}]`. Several fields need `value`"},
		{Path: "providers[].upstream.auth.api_key.fields[].name", DefaultDoc: "required", Doc: "how `upstream.auth.value` reads the field (`credential.<name>`): an identifier, unique in the form"},
		{Path: "providers[].upstream.auth.api_key.fields[].label", DefaultDoc: "`name`", Doc: "shown on the form"},
		{Path: "providers[].upstream.auth.api_key.fields[].type", Default: FieldSecret, Enum: []string{FieldSecret, FieldText, FieldEmail}, Doc: "`secret` (hidden as typed), `text` or `email` (shown, and kept in the form when the key is refused); every field is sealed at rest"},
		{Path: "providers[].upstream.auth.identity", Doc: "the request that tells whose credential it is"},
		{Path: "providers[].upstream.auth.identity.url", DefaultDoc: "required for `oauth2`, `api_key`", Doc: "template of the identity request (GitHub: `/user`); with type `none` it is optional and names the shared account"},
		{Path: "providers[].upstream.auth.identity.method", Default: defaultMethod, Doc: "its HTTP method (GraphQL: `POST`)"},
		{Path: "providers[].upstream.auth.identity.body", Doc: "its JSON body written as YAML (GraphQL: a query)"},
		{Path: "providers[].upstream.auth.identity.key", DefaultDoc: "required with `url`", Doc: "expression over the response, named `identity`, giving a stable account id, never a secret (`'\"github:\" + string(identity.id)'`)"},
		{Path: "providers[].upstream.auth.identity.name", DefaultDoc: "required with `url`", Doc: "expression giving display text (`identity.login`)"},
		{Path: "providers[].upstream.auth.value", DefaultDoc: "`<prefix> <credential>`", Doc: "an [expression](expressions.md#expressions) giving the whole header value, over `credential.<field>` (or `credential.token` for a single key or token), `secrets.<name>` and the helpers, e.g. `'\"Basic \" + base64(credential.email + \":\" + credential.token)'`. A key stored before `fields` were added is still sent as `<prefix> <key>`. A failing expression sends nothing and its error never quotes the credential"},
		{Path: "providers[].upstream.auth.secrets", Doc: "operator secrets only `value` reads, as `secrets.<name>`: `{app_key: \"${TRELLO_APP_KEY}\"}` (or `app_key_file: /run/secrets/…`); never logged, refused as literals in production"},
		{Path: "providers[].canary", Doc: "this provider's canaries"},
		{Path: "providers[].canary.interval", DefaultDoc: "top-level `canary.interval`", Doc: "this provider's canary schedule; `0s` turns it off"},
		{Path: "providers[].canary.credential", Doc: "upstream credential canaries run with (usually `${NAME}`); required for `oauth2` and `api_key` providers to run theirs"},
		{Path: "providers[].canary.credential_fields", Doc: "instead of `credential`, for a key form of several fields: one value per field name, e.g. `{email: ops@example.com, token: \"${JIRA_CANARY_TOKEN}\"}`"},
		{Path: "providers[].errors", Doc: "messages of error operations (see [Routes](notion-setup.md#routes))"},
		{Path: "providers[].errors.not_found", Default: defaultNotFoundMessage, Doc: "upstream 404, or no pattern matches"},
		{Path: "providers[].errors.reconnect", Default: defaultReconnectMessage, Doc: "upstream 401/403"},
		{Path: "providers[].errors.try_later", Default: defaultTryLaterMessage, Doc: "429, 5xx, timeouts and overload"},
		{Path: "providers[].errors.statuses", Doc: "what an upstream status means for unfurls when the API uses it unlike HTTP: `{401: not_found}` (Trello answers 401 for a card the user cannot see); `not_found`, `reconnect` or `try_later`. The identity request's 401 still means a refused key"},
		{Path: "providers[].max_text_length", Default: "2000", Doc: "every text attribute is cut to this many characters"},
		{Path: "providers[].patterns[]", DefaultDoc: "at least one", Doc: "URL rules, tried in order (below)"},

		{Path: "providers[].patterns[].name", DefaultDoc: "required", Doc: "rule name, unique in the provider"},
		{Path: "providers[].patterns[].regex", DefaultDoc: "required", Doc: "Notion's syntax: `(?<group>...)` named groups (Go-only spellings such as `(?P<group>...)` or `(?i)` are refused), anchored with `^` and `$` (a warning otherwise)"},
		{Path: "providers[].patterns[].samples", DefaultDoc: "at least one", Doc: "URLs that must match this pattern and no other"},
		{Path: "providers[].patterns[].negative_samples", Doc: "URLs that must not match"},
		{Path: "providers[].patterns[].requests[]", Doc: "the upstream calls, made in order; later ones read earlier responses by name"},
		{Path: "providers[].patterns[].requests[].name", DefaultDoc: "required", Doc: "an identifier naming the response in expressions, paths and later templates; unique in the pattern"},
		{Path: "providers[].patterns[].requests[].method", Default: defaultMethod, Doc: "HTTP method"},
		{Path: "providers[].patterns[].requests[].url", DefaultDoc: "required", Doc: "template: a path relative to `base_url` (`/repos/{owner}/{repo}/issues/{number}`) or an absolute URL on an allowed host; `{group}` a captured group, `{name.path}` a value from an earlier response"},
		{Path: "providers[].patterns[].requests[].headers", Doc: "extra request headers; values are templates"},
		{Path: "providers[].patterns[].requests[].body", Doc: "JSON body written as YAML; strings are templates"},
		{Path: "providers[].patterns[].requests[].optional", Default: "false", Doc: "a failure leaves an empty response instead of failing the unfurl; a null or absent value in its templates, like `{ticket.owner_id}` of an unassigned ticket, skips it: its attributes are missing and `preview --trace` says why"},
		{Path: "providers[].patterns[].attributes[]", DefaultDoc: "a title", Doc: "what Notion shows (below)"},
		{Path: "providers[].patterns[].placeholder[]", DefaultDoc: "a title of the provider and rule name, plus `dev`", Doc: "the Unfurl Regex Attributes Notion shows while it waits"},
		{Path: "providers[].patterns[].placeholder[].id", DefaultDoc: "required", Doc: "attribute id"},
		{Path: "providers[].patterns[].placeholder[].name", DefaultDoc: "`id`", Doc: "label"},
		{Path: "providers[].patterns[].placeholder[].kind", Enum: kinds()[:5], Doc: "`title`, `plain_text`, `enum`, `date`, `datetime`"},
		{Path: "providers[].patterns[].placeholder[].section", DefaultDoc: "by kind, as for attributes", Enum: sections(), Doc: "where Notion shows it"},
		{Path: "providers[].patterns[].placeholder[].value", Doc: "literal text with `$<group>` placeholders"},

		{Path: "providers[].patterns[].attributes[].id", DefaultDoc: "required", Doc: "attribute id, unique in the pattern; `title` is required, `dev` is added unless declared"},
		{Path: "providers[].patterns[].attributes[].name", DefaultDoc: "`id`", Doc: "label"},
		{Path: "providers[].patterns[].attributes[].kind", DefaultDoc: "required", Enum: kinds(), Doc: "`title`, `plain_text`, `enum`, `date`, `datetime`, `color`, `image`, `video`, `audio`, `html`, `pdf`, `relation`"},
		{Path: "providers[].patterns[].attributes[].section", DefaultDoc: "by kind", Enum: sections(), Doc: "where Notion shows it: `title`, `identifier`, `primary`, `secondary`, `body`, `background`, `entity`, `avatar`, `embed`. Default by kind: title→`title`, plain_text→`secondary`, enum/date/datetime/relation→`primary`, color→`background`, image→`avatar`, other embeds→`embed`. A pair outside Notion's table is a warning"},
		{Path: "providers[].patterns[].attributes[].path", Doc: "gjson path into the response named by `from`; exactly one of `path`, `expr`, `value`"},
		{Path: "providers[].patterns[].attributes[].from", DefaultDoc: "the first request", Doc: "the response `path` reads"},
		{Path: "providers[].patterns[].attributes[].expr", Doc: "an expression (see docs/expressions.md#expressions)"},
		{Path: "providers[].patterns[].attributes[].value", Doc: "literal text with `$<group>` placeholders"},
		{Path: "providers[].patterns[].attributes[].color", Doc: "enum only: an expression giving `#rrggbb`"},
		{Path: "providers[].patterns[].attributes[].colors", Doc: "enum only: value → `#rrggbb`"},
		{Path: "providers[].patterns[].attributes[].max_length", DefaultDoc: "`max_text_length`", Doc: "characters, below `max_text_length`"},

		{Path: "providers[].live", Doc: "keeps unfurled links current in Notion (see Live previews)"},
		{Path: "providers[].live.enabled", Default: "true", Doc: "`false`: previews of this provider change only when pasted again (no polling, no webhook route)"},
		{Path: "providers[].live.poll_interval", Default: "10m", KeepZero: true, Doc: "how often each subscribed link is fetched again; `0s` turns polling off (webhooks only); at least `30s`"},
		{Path: "providers[].live.max_requests_per_hour", Default: "3600", Doc: "the polling budget across all connections of the provider; on PostgreSQL it holds for all replicas together"},
		{Path: "providers[].live.expire_after", DefaultDoc: "never", Doc: "stop tracking links nobody has unfurled for this long, e.g. `2160h` (90 days); Notion unfurls a link again when a page showing it is opened, which tracks it again. At least `48h` (see Live previews, Expiry)"},
		{Path: "providers[].live.webhook", Doc: "the upstream's signed change notifications"},
		{Path: "providers[].live.webhook.secret", DefaultDoc: "empty", Doc: "the shared webhook secret, always from the environment (`${GITHUB_WEBHOOK_SECRET:-}`); empty turns the webhook route off. 16+ characters in production"},
		{Path: "providers[].live.webhook.header", DefaultDoc: "required with a secret", Doc: "the request header carrying the signature, e.g. `X-Hub-Signature-256`"},
		{Path: "providers[].live.webhook.algorithm", Default: WebhookHMACSHA256, When: "with a secret", Enum: []string{WebhookHMACSHA256, WebhookHMACSHA1, WebhookToken}, Doc: "`hmac-sha256` or `hmac-sha1` over the raw body; `token`: the header holds the secret itself (GitLab)"},
		{Path: "providers[].live.webhook.prefix", DefaultDoc: "empty", Doc: "text before the signature, e.g. `sha256=`"},
		{Path: "providers[].live.webhook.encoding", Default: "hex", When: "with a secret", Enum: []string{"hex", "base64"}, Doc: "`hex` or `base64`"},
		{Path: "providers[].live.webhook.uris", DefaultDoc: "required with a secret", Doc: "an expression over the event body, named `event`, giving the affected link or links: a string, a list (nil and `\"\"` skipped) or nil; at most 10,000 distinct links (an event naming more is refused with 400, nothing queued). Compiled at load like every expression, even while the secret is empty"},
		{Path: "providers[].live.webhook.max_body_bytes", Default: "1MiB", When: "with a secret", Doc: "larger events get `413`"},
	}
}

// isRecord reports whether t is a mapping of keys in the file: a struct
// that does not decode itself (CIDR is a struct that reads a scalar).
func isRecord(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]())
}

// referenceBlock is one table of the configuration reference (docs/configuration.md).
type referenceBlock struct {
	// prefix selects the keys; base is cut from their paths for display.
	prefix, base string
	// exclude are prefixes documented in tables of their own.
	exclude []string
}

// referenceBlocks are the tables of docs/configuration.md by name.
func referenceBlocks() map[string]referenceBlock {
	return map[string]referenceBlock{
		"server":                              {prefix: "server.", base: "server."},
		"storage":                             {prefix: "storage.", base: "storage."},
		"notion":                              {prefix: "notion.", base: "notion."},
		"canary":                              {prefix: "canary.", base: "canary."},
		"providers[]":                         {prefix: "providers[].", base: "providers[].", exclude: []string{"providers[].live.", "providers[].patterns[]."}},
		"providers[].live":                    {prefix: "providers[].live.", base: "providers[]."},
		"providers[].patterns[]":              {prefix: "providers[].patterns[].", base: "providers[].patterns[].", exclude: []string{"providers[].patterns[].attributes[]."}},
		"providers[].patterns[].attributes[]": {prefix: "providers[].patterns[].attributes[].", base: "providers[].patterns[].attributes[]."},
	}
}

// Reference renders the docs/configuration.md table called name (a key such as
// "server" or "providers[].live") from Keys: one row per key that holds
// a value or a list, with its default and meaning. ok is false for an
// unknown name.
func Reference(name string) (table string, ok bool) {
	b, ok := referenceBlocks()[name]
	if !ok {
		return "", false
	}
	var sb strings.Builder
	sb.WriteString("| key | default | meaning |\n| --- | --- | --- |\n")
	for _, k := range Keys() {
		if !strings.HasPrefix(k.Path, b.prefix) || slices.ContainsFunc(b.exclude, func(x string) bool { return strings.HasPrefix(k.Path, x) }) {
			continue
		}
		if !strings.HasSuffix(k.Path, "[]") && isRecord(keyType(k.Path)) {
			continue // a mapping: its keys have rows of their own
		}
		def := k.DefaultDoc
		if def == "" && k.Default != "" {
			def = "`" + k.Default + "`"
		}
		fmt.Fprintf(&sb, "| `%s` | %s | %s |\n", strings.TrimPrefix(k.Path, b.base), def, k.Doc)
	}
	return sb.String(), true
}

// keyType is the Go type of the key at path (the item type for a list
// of records); nil for an unknown path.
func keyType(path string) reflect.Type {
	t := reflect.TypeFor[Config]()
	for seg := range strings.SplitSeq(path, ".") {
		name, list := strings.CutSuffix(seg, "[]")
		f := fieldByKey(reflect.New(t).Elem(), name)
		if !f.IsValid() {
			return nil
		}
		t = f.Type()
		if list {
			t = t.Elem()
		}
	}
	return t
}
