package config

// This file is the schema of unfurld's YAML file. Every field carries the
// comment a user reads in the configuration reference (docs/configuration.md): what it does, its
// default and an example. Structs stay plain (no custom unmarshalers on
// structs) so that the loader can check unknown keys against the yaml tags
// and report each problem with its file:line:col (see load.go).

import "path/filepath"

// Config is a whole unfurld configuration file after includes are resolved
// and ${ENV} references are expanded.
type Config struct {
	// Server holds the HTTP listener settings.
	Server Server `yaml:"server"`
	// Storage holds the embedded database settings.
	Storage Storage `yaml:"storage"`
	// Notion holds the settings for calls to Notion's API that every
	// provider shares.
	Notion Notion `yaml:"notion"`
	// Canary schedules canary runs in serve (unfurld canary runs them by
	// hand). Default off.
	Canary Canary `yaml:"canary"`
	// Providers lists the upstream services this deployment unfurls. An
	// entry is either a whole provider or `include: PATH` (a file holding
	// one provider; `builtin:NAME` names a ready-made provider shipped in
	// the binary, for example `builtin:github`).
	Providers []Provider `yaml:"providers"`

	// File is the path the configuration was loaded from.
	File string `yaml:"-"`
	// Positions maps dotted paths ("providers.github.patterns.issue.regex")
	// to where they stand in the YAML files, for error messages.
	Positions Positions `yaml:"-"`
	// Sources maps dotted paths to where their value came from: every
	// non-empty secret ("server.secret_keys": the file itself, an
	// environment variable or a _file), and every value an environment
	// variable fed, secret or not and empty or not, so that a message
	// names the variable actually read.
	Sources map[string]SecretSource `yaml:"-"`
}

// Modes for Server.Mode.
const (
	// ModeDevelopment generates missing secrets beside the data file (with
	// a loud warning) and allows plain-http upstreams.
	ModeDevelopment = "development"
	// ModeProduction refuses to start when a secret is missing or written
	// in the file, or a setting is unsafe (security.md TH-53).
	ModeProduction = "production"
)

// Server configures the HTTP listener that Notion and browsers call.
type Server struct {
	// Listen is the TCP address to listen on. Default ":8080".
	Listen string `yaml:"listen"`
	// PublicURL is the externally reachable base URL of this deployment,
	// e.g. "https://unfurl.example.com". Every absolute URL unfurld prints
	// or emits is built from it, never from the request's Host header
	// (TH-13). Default "http://localhost:8080" in development mode;
	// required in production mode.
	PublicURL string `yaml:"public_url"`
	// Mode is "development" or "production". Default "production".
	// Development mode generates missing secrets and keeps them beside the
	// data file; production mode refuses to start instead.
	Mode string `yaml:"mode"`
	// ReadHeaderTimeout bounds how long a client may take to send request
	// headers (slowloris, TH-47). Default 5s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request. Default 10s.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a response. Default 30s.
	WriteTimeout Duration `yaml:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections. Default 120s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// ShutdownTimeout is how long in-flight requests may finish after
	// SIGTERM. Default 15s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// MaxHeaderBytes caps request headers. Default 16KiB.
	MaxHeaderBytes ByteSize `yaml:"max_header_bytes"`
	// UnfurlBodyLimit caps the body of unfurl and deletion callbacks.
	// Default 64KiB.
	UnfurlBodyLimit ByteSize `yaml:"unfurl_body_limit"`
	// UnfurlTimeout is the whole budget for answering one unfurl call,
	// upstream requests included; when it runs out Notion gets a "try
	// later" error operation instead of a hung request (protocol 10 #31).
	// Default 8s.
	UnfurlTimeout Duration `yaml:"unfurl_timeout"`
	// UnfurlErrorStatus is the HTTP status that carries an error
	// operation. Default 200, so Notion reads the body whether or not it
	// reads bodies of non-2xx replies (protocol 5.4, 10 #10).
	UnfurlErrorStatus int `yaml:"unfurl_error_status"`
	// TrustedProxies lists the reverse proxies (IP ranges, e.g.
	// ["127.0.0.1/32", "10.0.0.0/8"]) whose X-Forwarded-For header names
	// the client. Rate limits count per client address, so behind a
	// proxy every client would otherwise share the proxy's. A request
	// from any other peer is judged by its own address and its
	// X-Forwarded-For is ignored. Default: none, which is right when
	// unfurld faces the internet directly.
	TrustedProxies []CIDR `yaml:"trusted_proxies"`
	// MaxConnections caps simultaneously open client connections; more
	// wait in the kernel's accept queue until one closes. Each connection
	// costs a file descriptor and some memory, so idle connections held
	// open on purpose must not exhaust the process's descriptor limit
	// (often 1024 soft, raised in containers). Default 1024: far above
	// what Notion and browsers need, since keep-alive connections are
	// reused.
	MaxConnections int `yaml:"max_connections"`
	// MaxConcurrentUpstream caps upstream requests in flight across all
	// providers; unfurls beyond it get a fast "try later" (TH-38).
	// Default 256.
	MaxConcurrentUpstream int `yaml:"max_concurrent_upstream"`
	// SecretKeys seal stored credentials with AES-256-GCM: "id:base64key"
	// entries separated by commas, the first sealing and all opening, so
	// keys can rotate (TH-41, TH-42). Usually "${UNFURLD_SECRET_KEYS}".
	// Generated beside the data file in development mode; required in
	// production mode.
	SecretKeys Secret `yaml:"secret_keys"`
	// AdminToken guards GET /admin/status (issue 4 item 5) and lets
	// `unfurld status` ask the running server. Empty turns the route off.
	// Generated beside the data file in development mode.
	AdminToken Secret `yaml:"admin_token"`
	// AdminURL is where `unfurld status` reaches the running server's
	// admin API while the server holds the store, e.g.
	// "http://127.0.0.1:8080" or "https://unfurl.example.com". The
	// command never guesses it from listen, and refuses plain http to a
	// host other than loopback, where the admin token would cross the
	// network in clear. Optional; `unfurld status --server URL` wins.
	AdminURL string `yaml:"admin_url"`
	// Lab configures the lab page (GET /lab), where an operator pastes a
	// URL and sees the preview, the trace and the JSON Notion would get.
	Lab Lab `yaml:"lab"`
	// AdminListen is a second TCP address, e.g. "127.0.0.1:9091", that
	// serves GET /metrics and GET /admin/status instead of listen, so
	// Prometheus scrapes a port the internet does not reach. Default
	// empty: both are served on listen.
	AdminListen string `yaml:"admin_listen"`
	// Metrics configures GET /metrics.
	Metrics Metrics `yaml:"metrics"`
	// Log configures logging.
	Log Log `yaml:"log"`
}

// Lab configures the lab page. In development mode the page is always on
// and needs no token; in production mode it is off unless enabled, and
// then every run needs server.admin_token, because each one calls the
// upstream.
type Lab struct {
	// Enabled serves /lab in production mode, behind the admin token.
	// Default false. Ignored in development mode, where the page is on.
	Enabled bool `yaml:"enabled"`
}

// Metrics configures the Prometheus endpoint, GET /metrics.
type Metrics struct {
	// Enabled serves GET /metrics in the Prometheus text format. Default
	// true.
	Enabled *bool `yaml:"enabled"`
	// RequireToken makes /metrics ask for server.admin_token as a bearer
	// ("Authorization: Bearer <token>"; Prometheus: authorization:
	// credentials_file). Default true. false is meant for a private
	// server.admin_listen, and production mode refuses it without one.
	RequireToken *bool `yaml:"require_token"`
}

// IsEnabled reports whether /metrics is served (default true).
func (m Metrics) IsEnabled() bool { return m.Enabled == nil || *m.Enabled }

// TokenRequired reports whether /metrics asks for the admin token
// (default true).
func (m Metrics) TokenRequired() bool { return m.RequireToken == nil || *m.RequireToken }

// Log configures the process logger.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// Drivers for Storage.Driver.
const (
	// StorageBolt keeps the state in one bbolt file (Storage.Path).
	StorageBolt = "bolt"
	// StoragePostgres keeps the state in PostgreSQL (Storage.DSN).
	StoragePostgres = "postgres"
)

// Storage configures where unfurld keeps its state.
type Storage struct {
	// Driver is the store: "bolt", one file on local disk that needs no
	// setup, or "postgres", a PostgreSQL database named by DSN. Default
	// "bolt".
	Driver string `yaml:"driver"`
	// DSN is the PostgreSQL connection string, required with driver
	// postgres and used by nothing else, e.g. ${DATABASE_URL} or
	// "postgres://unfurld:PASSWORD@db.internal:5432/unfurld?sslmode=verify-full".
	// It may hold a password, so it is a secret: give it through ${NAME}
	// or dsn_file (production mode refuses one written in the file).
	DSN Secret `yaml:"dsn"`
	// Path is the bbolt file (driver bolt). Its directory is created if
	// missing and also holds generated development secrets. Default
	// "./data/unfurld.db".
	Path string `yaml:"path"`
	// LockTimeout is how long to wait for the file lock before giving up;
	// a second instance on the same file exits with a clear message
	// (TH-43, F3). Default 2s.
	LockTimeout Duration `yaml:"lock_timeout"`
}

// Notion configures calls to Notion's public API.
type Notion struct {
	// APIBaseURL is Notion's API origin. Default "https://api.notion.com".
	// Tests and local fakes point it at a loopback server.
	APIBaseURL string `yaml:"api_base_url"`
	// TokenVersion is the Notion-Version header sent to /v1/oauth/token.
	// Default "2022-06-28" (protocol 4.3, 10 #19).
	TokenVersion string `yaml:"token_version"`
	// ObjectVersion is the Notion-Version header sent to
	// /v1/external/object. Default "2021-08-16" (protocol 7.1, 10 #20).
	ObjectVersion string `yaml:"object_version"`
	// Timeout bounds each call to Notion. Default 10s.
	Timeout Duration `yaml:"timeout"`
	// RedirectURIs is the exact-match allowlist of redirect_uri values
	// accepted on the authorize URL (protocol 3.4, TH-01). Default: the
	// spellings Notion's documentation uses.
	RedirectURIs []string `yaml:"redirect_uris"`
}

// Provider is one upstream service (one Notion integration, protocol
// 1.3) served under /providers/<name>/.
type Provider struct {
	// Include loads this provider from another file instead: a path
	// relative to the including file, or builtin:NAME. An include entry
	// holds no other key but `variant: NAME`, which lays one of the
	// variants the file declares over it (variant.go);
	// builtin:BASE-VARIANT is the same as builtin:BASE with that variant.
	Include string `yaml:"include"`
	// Name identifies the provider in routes (/providers/<name>/...),
	// logs and the store. Lower-case letters, digits and '-'; unique.
	Name string `yaml:"name"`
	// DisplayName is shown to people, e.g. "GitHub". Default: Name.
	DisplayName string `yaml:"display_name"`
	// IconURL is an https image shown on the consent page. Optional.
	IconURL string `yaml:"icon_url"`
	// Dev is the text of the required "dev" attribute: who is behind the
	// preview (protocol 6.3). Default "unfurld".
	Dev string `yaml:"dev"`
	// Notion holds this provider's two credential pairs (protocol 1.2).
	Notion ProviderNotion `yaml:"notion"`
	// Upstream describes how to call the service's API.
	Upstream Upstream `yaml:"upstream"`
	// Errors overrides the messages of error operations.
	Errors ErrorMessages `yaml:"errors"`
	// MaxTextLength truncates every text attribute built from upstream
	// data, in characters (TH-33). Default 2000. An attribute may set a
	// smaller max_length.
	MaxTextLength int `yaml:"max_text_length"`
	// Patterns are the URL rules of this provider, tried in order.
	Patterns []Pattern `yaml:"patterns"`
	// Live keeps unfurled links current in Notion (protocol 7).
	Live Live `yaml:"live"`
	// Canary tunes the canary runs of this provider's samples.
	Canary ProviderCanary `yaml:"canary"`
}

// Canary configures the canaries serve runs on a schedule: every
// pattern's samples are unfurled against the real upstream and compared
// with a recorded baseline (unfurld canary --record).
type Canary struct {
	// Interval is how often serve runs every provider's canaries, e.g.
	// "24h". Default 0: off. At least 5m. A provider's canary.interval
	// overrides it.
	Interval Duration `yaml:"interval"`
	// Baseline is the file `unfurld canary --record FILE` wrote, relative
	// to this file; scheduled runs and `unfurld canary` report what
	// changed against it. Empty: they report what maps now and count
	// errors.
	Baseline string `yaml:"baseline"`
}

// CanaryBaseline is canary.baseline resolved against the configuration
// file's directory, as _file paths and includes are; empty when unset.
func (c *Config) CanaryBaseline() string {
	p := c.Canary.Baseline
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}

// ProviderCanary is one provider's canary settings.
type ProviderCanary struct {
	// Interval overrides the top-level canary.interval for this provider;
	// "0s" turns its scheduled canaries off. Default: the top-level value.
	Interval Duration `yaml:"interval"`
	// Credential is the upstream credential canaries run with, usually
	// "${GITHUB_CANARY_TOKEN}" (credential_file works too). Needed for
	// oauth2 and api_key providers, whose canaries are skipped without
	// it; a provider with auth none uses its upstream.auth.token unless
	// this is set.
	Credential Secret `yaml:"credential"`
	// CredentialFields is the canary credential of a provider whose key
	// form has several fields (upstream.auth.api_key.fields), one value
	// per field name, e.g. {email: ops@example.com, token:
	// "${JIRA_CANARY_TOKEN}"}. Set instead of Credential.
	CredentialFields map[string]Secret `yaml:"credential_fields"`
}

// Live configures how changes upstream reach previews already in Notion:
// polling, webhooks, or both (protocol 7, issue 4).
type Live struct {
	// Enabled turns live updates on. Default true; false keeps no
	// subscriptions' refreshes running (previews then change only when
	// pasted again).
	Enabled *bool `yaml:"enabled"`
	// PollInterval is how often each subscribed link is fetched again.
	// Default 10m; 0s turns polling off (webhooks only).
	PollInterval Duration `yaml:"poll_interval"`
	// MaxRequestsPerHour caps the upstream requests polling may make for
	// this provider, across all connections. Default 3600.
	MaxRequestsPerHour int `yaml:"max_requests_per_hour"`
	// ExpireAfter stops tracking a link nobody has unfurled for this
	// long: its subscription is deleted, so it is neither polled nor
	// refreshed by webhooks until Notion unfurls it again (when a page
	// holding its preview is opened). Unset or 0s: never, the default.
	// At least 48h, since the last unfurl is recorded to the day; e.g.
	// 2160h for 90 days.
	ExpireAfter Duration `yaml:"expire_after"`
	// Webhook verifies and maps the upstream's change notifications.
	Webhook Webhook `yaml:"webhook"`
}

// IsEnabled reports whether live updates run for the provider.
func (l Live) IsEnabled() bool { return l.Enabled == nil || *l.Enabled }

// Webhook algorithms.
const (
	WebhookHMACSHA256 = "hmac-sha256"
	WebhookHMACSHA1   = "hmac-sha1"
	// WebhookToken compares the header with the secret itself, as
	// GitLab's X-Gitlab-Token does.
	WebhookToken = "token"
)

// Webhook is POST /providers/<name>/webhook: the upstream's signed change
// notifications.
type Webhook struct {
	// Secret is the shared webhook secret, e.g. ${GITHUB_WEBHOOK_SECRET}.
	// Empty disables the route.
	Secret Secret `yaml:"secret"`
	// Header carries the signature, e.g. X-Hub-Signature-256.
	Header string `yaml:"header"`
	// Algorithm is hmac-sha256 (default), hmac-sha1 or token.
	Algorithm string `yaml:"algorithm"`
	// Prefix precedes the signature in the header, e.g. "sha256=".
	Prefix string `yaml:"prefix"`
	// Encoding of the signature: hex (default) or base64.
	Encoding string `yaml:"encoding"`
	// URIs is an expression over the event body, named event, giving the
	// affected link or links, e.g. "[event.issue.html_url]". Links nobody
	// subscribed to are ignored.
	URIs string `yaml:"uris"`
	// MaxBodyBytes caps the event body. Default 1MiB.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
}

// ProviderNotion holds the two credential pairs of protocol 1.2.
type ProviderNotion struct {
	// ClientID is pair A: the OAuth client id you invent and type into
	// Notion's "External Authorization Setup". Notion sends it to us.
	// Default: the provider name.
	ClientID string `yaml:"client_id"`
	// ClientSecret is pair A's secret, typed into Notion's dashboard;
	// Notion presents it on our token URL. At least 32 characters. Empty
	// in development mode: generated and kept beside the data file.
	ClientSecret Secret `yaml:"client_secret"`
	// IntegrationClientID is pair B: the OAuth client id Notion shows on
	// the integration's settings page. We send it to Notion.
	IntegrationClientID string `yaml:"integration_client_id"`
	// IntegrationClientSecret is pair B's secret. Must differ from
	// ClientSecret (TH-15).
	IntegrationClientSecret Secret `yaml:"integration_client_secret"`
	// Scopes is the free-form string typed into Notion's "OAuth Scopes"
	// (protocol 3.1); passed through, never enforced. Optional.
	Scopes string `yaml:"scopes"`
	// Domain is the Unfurl URL Domain verified in Notion's dashboard, e.g.
	// "github.com". Default: the host of the first pattern's first sample.
	Domain string `yaml:"domain"`
	// Subdomains serves links on any subdomain of Domain, for services
	// that give every customer a host of their own
	// (acme.pagerduty.com). Default false: only the hosts of the samples
	// and Domain itself (with www.) are served. Either way the patterns
	// decide what matches; this only widens which hosts may be tried.
	Subdomains bool `yaml:"subdomains"`
	// SharedDomain acknowledges that another provider of this
	// configuration claims the same domain (or one of its subdomains) as
	// its own Notion integration, e.g. Jira and Confluence on one
	// Atlassian site. Notion takes one root domain per integration and
	// does not document how it chooses between two on one domain, so
	// that is refused unless every provider on the domain sets this.
	// Default false.
	SharedDomain bool `yaml:"shared_domain"`
	// AccessTokenTTL makes the access tokens we issue to Notion expire;
	// Notion then refreshes them with the refresh token we send alongside
	// (protocol 2.3). Default 0: long-lived tokens and no refresh token,
	// Notion's default.
	AccessTokenTTL Duration `yaml:"access_token_ttl"`
	// RefreshGrace is how long a rotated refresh token still answers with
	// the same successor, so a retried refresh is not locked out (TH-23,
	// protocol 10 #8). Default 30s.
	RefreshGrace Duration `yaml:"refresh_grace"`
}

// Upstream describes the service's API and how requests reach it.
type Upstream struct {
	// BaseURL is the API origin that relative request URLs resolve
	// against, e.g. "https://api.github.com". Required.
	BaseURL string `yaml:"base_url"`
	// AllowedHosts lists every host (host or host:port) that requests and
	// redirects may reach. Default: the host of BaseURL. Credentials are
	// only ever sent to these hosts (TH-27, TH-30).
	AllowedHosts []string `yaml:"allowed_hosts"`
	// EmbedHosts lists hosts allowed in URL-valued attributes (embeds);
	// other URLs are dropped (TH-31). Default: none besides AllowedHosts.
	EmbedHosts []string `yaml:"embed_hosts"`
	// Headers are sent on every request, e.g. Accept. Values may use
	// ${ENV}.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds each upstream request. Default 5s.
	Timeout Duration `yaml:"timeout"`
	// CacheTTL keeps upstream responses per (provider, credential, URI) so
	// that Notion's repeated calls cost one upstream request. 0 disables.
	// Default 30s.
	CacheTTL Duration `yaml:"cache_ttl"`
	// MaxBodyBytes caps a decompressed response body (TH-32). Default 2MiB.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
	// AllowPrivateNetworks lets requests reach loopback and private
	// addresses. Only for local fakes and tests; refused in production
	// mode (TH-30, TH-53).
	AllowPrivateNetworks bool `yaml:"allow_private_networks"`
	// Auth says how requests are authenticated.
	Auth Auth `yaml:"auth"`
}

// Auth types.
const (
	AuthNone   = "none"
	AuthOAuth2 = "oauth2"
	AuthAPIKey = "api_key"
)

// Auth says how upstream requests carry a credential.
type Auth struct {
	// Type is none (public API, optionally one service-wide token),
	// oauth2 or api_key (each user connects their own account). Default
	// none.
	Type string `yaml:"type"`
	// Header is the request header that carries the credential. Default
	// "Authorization".
	Header string `yaml:"header"`
	// Prefix goes before the credential in Header, separated by a space:
	// "Bearer" (the default), "token", or "none" to send the bare
	// credential (for headers like X-Api-Key). Any other shape of
	// header value is written with Value.
	Prefix string `yaml:"prefix"`
	// Token is a service-wide credential for type none, usually
	// "${GITHUB_TOKEN:-}". Empty means unauthenticated requests.
	Token Secret `yaml:"token"`
	// OAuth2 configures per-user sign-in for type oauth2.
	OAuth2 OAuth2 `yaml:"oauth2"`
	// APIKey configures the key form for type api_key.
	APIKey APIKey `yaml:"api_key"`
	// Identity asks the upstream whose credential it is, for
	// external_account (protocol 4.2). Required for oauth2 and api_key.
	Identity Identity `yaml:"identity"`
	// Value is an expression giving the whole value of Header, for APIs
	// that want the credential in another shape than "<prefix>
	// <credential>". It sees credential.<field> (the api_key fields, or
	// credential.token for a single key or token), secrets.<name> (the
	// operator secrets below) and the helpers, base64 among them. Example
	// for HTTP Basic:
	//   value: '"Basic " + base64(credential.email + ":" + credential.token)'
	// A key stored before api_key.fields were added is still sent as
	// "<prefix> <key>". Default: none, "<prefix> <credential>" is sent.
	Value string `yaml:"value"`
	// Secrets are operator-level secrets that only Value reads, as
	// secrets.<name>: an app key the upstream wants next to each user's
	// token, e.g. {app_key: "${TRELLO_APP_KEY}"}. They are never logged.
	Secrets map[string]Secret `yaml:"secrets"`
}

// OAuth2 is the upstream's OAuth 2 authorization-code flow, run with PKCE
// S256 (RFC 7636; TH-06). Register <public_url>/providers/<name>/callback
// as the redirect URI at the upstream.
type OAuth2 struct {
	// AuthorizeURL is the upstream's authorization endpoint, e.g.
	// "https://github.com/login/oauth/authorize".
	AuthorizeURL string `yaml:"authorize_url"`
	// TokenURL is the upstream's token endpoint, e.g.
	// "https://github.com/login/oauth/access_token". Its host is allowed
	// for outbound calls automatically.
	TokenURL string `yaml:"token_url"`
	// ClientID is the OAuth app's client id at the upstream.
	ClientID string `yaml:"client_id"`
	// ClientSecret is the OAuth app's client secret at the upstream.
	ClientSecret Secret `yaml:"client_secret"`
	// Scopes are requested at sign-in, e.g. [repo, read:user].
	Scopes []string `yaml:"scopes"`
	// ExtraParams are added to the authorize URL, e.g. {prompt: consent}.
	ExtraParams map[string]string `yaml:"extra_params"`
	// DisablePKCE turns PKCE off, for upstreams that reject it. Default
	// false.
	DisablePKCE bool `yaml:"disable_pkce"`
	// ClientAuth is how the client secret reaches the upstream's token
	// endpoint: "header" (HTTP Basic, the default, RFC 6749 2.3.1) or
	// "params" (client_id and client_secret in the form body, which some
	// upstreams such as GitHub also accept). Never auto-detected: a retry
	// in the other style would present the same code twice (TH-08).
	ClientAuth string `yaml:"client_auth"`
	// Revocation, when its url is set, revokes the user's grant at the
	// upstream when their connection is deleted (Notion's deleted-token
	// callback or `unfurld disconnect`), after the connection is erased
	// locally; best effort. Default: nothing is revoked.
	Revocation Revocation `yaml:"revocation"`
}

// Revocation is the upstream endpoint that revokes a user's grant.
type Revocation struct {
	// URL is the endpoint, absolute; its host is allowed for outbound
	// calls automatically. "{client_id}" in it stands for oauth2.client_id.
	// E.g. "https://gitlab.example/oauth/revoke", or for GitHub
	// "https://api.github.com/applications/{client_id}/grant".
	URL string `yaml:"url"`
	// Style is the request shape: "rfc7009" (the default: POST a form with
	// token and token_type_hint, client authenticated as at the token
	// endpoint, RFC 7009) or "github_grant" (GitHub's "delete an app
	// authorization": DELETE with HTTP Basic client_id:client_secret and
	// the JSON body {"access_token": ...}, which revokes every token of
	// the grant).
	Style string `yaml:"style"`
}

// Revocation styles.
const (
	RevocationRFC7009     = "rfc7009"
	RevocationGitHubGrant = "github_grant"
)

// Client authentication styles of OAuth2.ClientAuth.
const (
	ClientAuthHeader = "header"
	ClientAuthParams = "params"
)

// APIKey is the form where a user pastes an upstream API key.
type APIKey struct {
	// HelpText tells the user which key to paste, shown on the form.
	HelpText string `yaml:"help_text"`
	// HelpURL links to where keys are made, e.g.
	// "https://linear.app/settings/api".
	HelpURL string `yaml:"help_url"`
	// Fields make the form ask for several values, which together are the
	// credential, sealed as one; upstream.auth.value reads them as
	// credential.<name>. Example for Atlassian's e-mail and API token:
	//   fields: [{name: email, label: E-mail, type: email}, {name: token, label: API token}]
	// Default: one secret field, the API key.
	Fields []APIKeyField `yaml:"fields"`
}

// API-key field types.
const (
	FieldSecret = "secret"
	FieldText   = "text"
	FieldEmail  = "email"
)

// APIKeyField is one value the API-key form asks for.
type APIKeyField struct {
	// Name is how upstream.auth.value reads it (credential.<name>): an
	// identifier, unique in the form.
	Name string `yaml:"name"`
	// Label is shown on the form. Default: Name.
	Label string `yaml:"label"`
	// Type is secret (hidden as typed, the default), text or email
	// (shown, and kept in the form when the key is refused). Every field
	// is sealed at rest, whatever its type.
	Type string `yaml:"type"`
}

// Identity is a request made with the user's fresh credential to learn
// who they are upstream.
type Identity struct {
	// URL is a template relative to upstream.base_url (or absolute on an
	// allowed host), e.g. "/user".
	URL string `yaml:"url"`
	// Method is the HTTP method. Default GET.
	Method string `yaml:"method"`
	// Body is a JSON body written as YAML (GraphQL: a query).
	Body any `yaml:"body"`
	// Key is an expression over the response, named identity, giving a
	// stable account id that is never a secret, e.g. "string(identity.id)"
	// (TH-14).
	Key string `yaml:"key"`
	// Name is an expression giving display text, e.g. "identity.login".
	Name string `yaml:"name"`
}

// ErrorMessages overrides the text of the error operations sent to Notion
// (protocol 5.4). Upstream bodies are never echoed (TH-36).
type ErrorMessages struct {
	// NotFound is used when the upstream answers 404 or no pattern
	// matches. Default "Not found".
	NotFound string `yaml:"not_found"`
	// Reconnect is used on upstream 401/403. Default "Reconnect your
	// account to see this preview".
	Reconnect string `yaml:"reconnect"`
	// TryLater is used on 429, 5xx, timeouts and overload. Default
	// "The service is unavailable, try again later".
	TryLater string `yaml:"try_later"`
	// Statuses say what an upstream status code means for unfurls, when
	// the upstream's use of it differs from HTTP's: not_found, reconnect
	// or try_later. Trello answers 401 for a card on a board the user
	// cannot see: {401: not_found}. The identity request is not affected:
	// a 401 there still means the credential was refused. Default: 404
	// and 410 not found, 401 and 403 reconnect, 429 and 5xx try later.
	Statuses map[string]string `yaml:"statuses"`
}

// What an upstream status may mean (ErrorMessages.Statuses).
const (
	StatusNotFound  = "not_found"
	StatusReconnect = "reconnect"
	StatusTryLater  = "try_later"
)

// Pattern is one URL rule (protocol 9): a regex with named groups, the
// upstream requests it makes and the attributes it produces.
type Pattern struct {
	// Name is the rule name shown in Notion's dashboard. Unique within the
	// provider.
	Name string `yaml:"name"`
	// Regex uses Notion's syntax: named groups as (?<group>...). Anchor it
	// with ^ and $. RE2 cannot run lookaround or backreferences.
	Regex string `yaml:"regex"`
	// Samples are URLs that must match this pattern and no other pattern
	// of the provider. At least one is required (Notion requires them
	// too).
	Samples []string `yaml:"samples"`
	// NegativeSamples are URLs that must not match this pattern.
	NegativeSamples []string `yaml:"negative_samples"`
	// Requests are the upstream calls, made in order; later requests and
	// attributes can read earlier responses by name.
	Requests []Request `yaml:"requests"`
	// Attributes map the responses to Notion unfurl attributes. A title
	// attribute is required; dev is added from the provider's dev text
	// unless declared here.
	Attributes []Attribute `yaml:"attributes"`
	// Placeholder is the "Unfurl Regex Attributes" Notion shows while it
	// waits for us: literal text with $<group> placeholders (protocol 9.1).
	// Default: a title of the rule name and the dev attribute.
	Placeholder []PlaceholderAttribute `yaml:"placeholder"`
}

// Request is one upstream call.
type Request struct {
	// Name identifies the response in expressions, paths and later
	// templates. Unique within the pattern; a valid identifier.
	Name string `yaml:"name"`
	// Method is the HTTP method. Default GET.
	Method string `yaml:"method"`
	// URL is a template: a path relative to upstream.base_url
	// ("/repos/{owner}/{repo}/issues/{number}") or an absolute URL on an
	// allowed host. {group} inserts a captured group, {name.path} a value
	// from an earlier response (gjson path). Values are path-segment
	// escaped before '?' and query escaped after it, and can never stand
	// in the scheme, host or port (TH-29, TH-30).
	URL string `yaml:"url"`
	// Headers are extra request headers; values are templates.
	Headers map[string]string `yaml:"headers"`
	// Body is a JSON body written as YAML; every string in it is a
	// template whose values are JSON-escaped. Sent with Content-Type
	// application/json. Example for GraphQL:
	//   body: {query: "query($id: String!) { issue(id: $id) { title } }", variables: {id: "{id}"}}
	Body any `yaml:"body"`
	// Optional keeps going when this request fails; expressions then see
	// an empty response.
	Optional bool `yaml:"optional"`
}

// Attribute kinds. Inline kinds first, then embeds, then relation.
const (
	KindTitle     = "title"
	KindPlainText = "plain_text"
	KindEnum      = "enum"
	KindDate      = "date"
	KindDatetime  = "datetime"
	KindColor     = "color"
	KindImage     = "image"
	KindVideo     = "video"
	KindAudio     = "audio"
	KindHTML      = "html"
	KindPDF       = "pdf"
	KindRelation  = "relation"
)

// Attribute maps upstream data to one Notion unfurl attribute (protocol 6).
type Attribute struct {
	// ID is the attribute id; "title" and "dev" are reserved for those
	// attributes. Unique within the pattern.
	ID string `yaml:"id"`
	// Name is the label Notion shows. Default: ID.
	Name string `yaml:"name"`
	// Kind is one of title, plain_text, enum, date, datetime, color,
	// image, video, audio, html, pdf, relation.
	Kind string `yaml:"kind"`
	// Section is where Notion renders it (protocol 6.6). Default by kind:
	// title→title, plain_text→secondary, enum/date/datetime→primary,
	// color→background, image→avatar, video/audio/html/pdf→embed,
	// relation→primary.
	Section string `yaml:"section"`
	// Path reads the value with a gjson path from one response, e.g.
	// "user.login" or "labels.#.name". Exactly one of path, expr, value.
	Path string `yaml:"path"`
	// From names the response Path reads. Default: the first request.
	From string `yaml:"from"`
	// Expr computes the value with an expr-lang expression over the
	// responses (by request name, e.g. issue.user.login), the captured
	// groups (groups.number), the uri, and the helper functions.
	Expr string `yaml:"expr"`
	// Value is literal text, with $<group> placeholders.
	Value string `yaml:"value"`
	// Color is an expression giving an enum's color as "#rrggbb".
	Color string `yaml:"color"`
	// Colors maps enum values to "#rrggbb" colors; used when Color is
	// empty.
	Colors map[string]string `yaml:"colors"`
	// MaxLength truncates this attribute's text, in characters. Default:
	// the provider's max_text_length.
	MaxLength int `yaml:"max_length"`
}

// PlaceholderAttribute is one of the "Unfurl Regex Attributes" typed into
// Notion's dashboard (protocol 9.1).
type PlaceholderAttribute struct {
	// ID is the attribute id.
	ID string `yaml:"id"`
	// Name is the label. Default: ID.
	Name string `yaml:"name"`
	// Kind is title, plain_text, enum, date or datetime.
	Kind string `yaml:"kind"`
	// Section is as for attributes, with the same defaults.
	Section string `yaml:"section"`
	// Value is literal text with $<group> placeholders.
	Value string `yaml:"value"`
}
