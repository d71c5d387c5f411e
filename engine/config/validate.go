package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// securityDoc53 is the part of the repository's security notes that
// explains why production mode refuses unsafe settings (TH-53).
const securityDoc53 = "docs/security.md#th-53-dangerous-configuration"

// minSecretLength is the shortest client secret accepted in production
// mode (TH-19, TH-20).
const minSecretLength = 32

// checker collects the structural problems of a decoded, defaulted
// configuration. It only reads the Config: no network, no files, no
// globals (STYLE.md §2, "Validation has no side effects").
type checker struct {
	pos     Positions
	sources map[string]SecretSource
	errs    Errors
	// bad holds paths already reported by the loader (a missing variable,
	// a value of the wrong type); checking their zero value would only
	// repeat the problem.
	bad map[string]bool
	// prod and dev are both false when server.mode is invalid, so that
	// only the mode itself is reported.
	prod, dev bool
}

// validate checks c after SetDefaults. Providers at the indexes in skip
// failed to include and are not checked; nothing is reported at the paths
// in bad.
func (c *Config) validate(skip map[int]bool, bad map[string]bool, sharedDomains bool) Errors {
	v := &checker{
		pos:     c.Positions,
		sources: c.Sources,
		bad:     bad,
		prod:    c.Server.Mode == ModeProduction,
		dev:     c.Server.Mode == ModeDevelopment,
	}
	v.server(&c.Server)
	v.notion(&c.Notion)
	v.storage(&c.Storage)
	v.secretSources(c.Sources)
	v.canaryInterval(c.Canary.Interval, "canary.interval")
	paths := providerPaths(c.Providers)
	first := map[string]string{}
	for i := range c.Providers {
		if skip[i] {
			continue
		}
		p := &c.Providers[i]
		v.unique(first, p.Name, paths[i]+".name", "provider name")
		v.provider(p, paths[i])
	}
	if !sharedDomains {
		v.domains(c.Providers, paths, skip)
	}
	return v.errs
}

// integrationDoc is where the repository explains why each provider is
// its own Notion integration with its own domain (protocol 1.3).
const integrationDoc = "docs/protocol.md#13-one-integration-per-upstream-domain"

// domains refuses two providers whose Notion domains overlap (equal, or
// one a subdomain of the other), unless both set notion.shared_domain:
// Notion takes one root domain per integration (protocol 1.3, 9.1), and
// which of two integrations on one domain unfurls a link is not
// documented.
func (v *checker) domains(ps []Provider, paths []string, skip map[int]bool) {
	// A provider whose name is invalid or taken is reported already, and
	// is usually a copy of another: its domain would only repeat that.
	ok := make([]bool, len(ps))
	names := map[string]bool{}
	for i := range ps {
		ok[i] = !skip[i] && ps[i].Notion.Domain != "" && isProviderName(ps[i].Name) && !names[ps[i].Name]
		names[ps[i].Name] = true
	}
	for j := range ps {
		if !ok[j] {
			continue
		}
		for i := range j {
			if !ok[i] || !DomainsOverlap(ps[i].Notion.Domain, ps[j].Notion.Domain) {
				continue
			}
			if ps[i].Notion.SharedDomain && ps[j].Notion.SharedDomain {
				continue
			}
			at := v.pos.Of(paths[i] + ".notion.domain")
			where := "on line " + strconv.Itoa(at.Line)
			if here := v.pos.Of(paths[j] + ".notion.domain"); at.File != here.File {
				where = "at " + at.String()
			}
			what := fmt.Sprintf("domain %q", ps[j].Notion.Domain)
			if _, set := v.pos[paths[j]+".notion.domain"]; !set {
				what += " (the host of the first sample)"
			}
			claim := "is also the domain of"
			if !strings.EqualFold(strings.TrimPrefix(ps[i].Notion.Domain, "www."), strings.TrimPrefix(ps[j].Notion.Domain, "www.")) {
				claim = fmt.Sprintf("overlaps %q, the domain of", ps[i].Notion.Domain)
			}
			v.fail(paths[j]+".notion.domain", "%s %s provider %q (%s); Notion takes one domain per integration, so keep one provider, or set notion.shared_domain: true on both if you mean two integrations on one domain (see %s)",
				what, claim, ps[i].Name, where, integrationDoc)
			break
		}
	}
}

// DomainsOverlap reports whether a and b are the same domain or one is a
// subdomain of the other, ignoring case, a leading www. and a trailing
// dot: two Notion integrations with such domains claim the same links.
func DomainsOverlap(a, b string) bool {
	norm := func(d string) string {
		return strings.TrimPrefix(strings.TrimSuffix(strings.ToLower(d), "."), "www.")
	}
	a, b = norm(a), norm(b)
	return a == b || strings.HasSuffix(a, "."+b) || strings.HasSuffix(b, "."+a)
}

// storage checks the driver and that the DSN goes with postgres: a DSN
// left beside driver bolt would otherwise be ignored in silence, and the
// data written to a file the operator thinks is in PostgreSQL.
func (v *checker) storage(s *Storage) {
	switch s.Driver {
	case StorageBolt:
		if !s.DSN.IsZero() {
			v.fail("storage.dsn", "only used with driver postgres; set storage.driver: postgres, or remove the dsn")
		}
	case StoragePostgres:
		if s.DSN.IsZero() {
			v.fail("storage.driver", "driver postgres needs storage.dsn, e.g. dsn: ${DATABASE_URL}")
		}
	default:
		v.fail("storage.driver", "want %s or %s, got %q", StorageBolt, StoragePostgres, s.Driver)
	}
}

func (v *checker) fail(path, format string, args ...any) {
	if v.bad[path] {
		return
	}
	v.errs.Add(v.pos.Of(path), path, format, args...)
}

func (v *checker) warn(path, format string, args ...any) {
	if v.bad[path] {
		return
	}
	v.errs.Warn(v.pos.Of(path), path, format, args...)
}

// unique reports name at path when an earlier item of the same list (kept
// in first: name → path of its name key) already uses it.
func (v *checker) unique(first map[string]string, name, path, what string) {
	if name == "" {
		return
	}
	prev, dup := first[name]
	if !dup {
		first[name] = path
		return
	}
	at, here := v.pos.Of(prev), v.pos.Of(path)
	where := "on line " + strconv.Itoa(at.Line)
	if at.File != here.File {
		where = "at " + at.String()
	}
	v.fail(path, "duplicate %s %q (first defined %s)", what, name, where)
}

func (v *checker) server(s *Server) {
	if !v.prod && !v.dev {
		v.fail("server.mode", "want %s or %s, got %q", ModeDevelopment, ModeProduction, s.Mode)
	}
	switch {
	case s.PublicURL == "" && v.prod:
		v.fail("server.public_url", "required in production mode: the https URL Notion and browsers reach this server at")
	case s.PublicURL != "":
		if u := v.absURL("server.public_url", s.PublicURL, "https://unfurl.example.com"); u != nil {
			if u.RawQuery != "" || u.Fragment != "" {
				v.fail("server.public_url", "want a base URL without query or fragment")
			}
			if u.Scheme == "http" && v.prod {
				v.fail("server.public_url", "plain http is refused in production mode; use https (see %s)", securityDoc53)
			}
		}
	}
	v.listen(s.Listen)
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(s.Log.Level)) {
		v.fail("server.log.level", "want debug, info, warn or error, got %q", s.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, strings.ToLower(s.Log.Format)) {
		v.fail("server.log.format", "want text or json, got %q", s.Log.Format)
	}
	if s.UnfurlErrorStatus < 200 || s.UnfurlErrorStatus > 599 {
		v.fail("server.unfurl_error_status", "want an HTTP status from 200 to 599, got %d", s.UnfurlErrorStatus)
	}
	for i, p := range s.TrustedProxies {
		if p.Prefix().Bits() == 0 {
			v.fail("server.trusted_proxies["+strconv.Itoa(i)+"]", "%s trusts every address, so any client could choose the address it is limited by; list only your proxies", p.Prefix())
		}
	}
	if s.MaxConnections < 0 {
		v.fail("server.max_connections", "must not be negative")
	}
	if s.MaxConcurrentUpstream < 0 {
		v.fail("server.max_concurrent_upstream", "must not be negative")
	}
	if s.SecretKeys.IsZero() && v.prod {
		v.fail("server.secret_keys", "required in production mode: keys that seal stored credentials%s", v.setHint("server.secret_keys", "${UNFURLD_SECRET_KEYS}"))
	}
	v.adminToken(s.AdminToken)
	if s.Lab.Enabled && v.prod && s.AdminToken.IsZero() {
		// The lab calls upstreams with the service credential for whoever
		// submits its form; without a token it would be open to anyone.
		v.fail("server.lab.enabled", "needs server.admin_token in production mode: every run of the lab is guarded by it")
	}
	if s.AdminURL != "" {
		if _, err := CheckAdminURL(s.AdminURL); err != nil {
			v.fail("server.admin_url", "%s", err.Error())
		}
	}
	v.admin(s)
}

// admin checks server.admin_listen and server.metrics: a second listener
// on the main one's address could never start, and metrics without a
// token on the public listener would tell anyone the traffic of every
// provider.
func (v *checker) admin(s *Server) {
	if s.AdminListen != "" {
		v.address("server.admin_listen", s.AdminListen)
		if s.AdminListen == s.Listen {
			v.fail("server.admin_listen", "must differ from server.listen (%s)", s.Listen)
		}
	}
	if !s.Metrics.IsEnabled() {
		return
	}
	switch {
	case !s.Metrics.TokenRequired() && s.AdminListen == "" && v.prod:
		v.fail("server.metrics.require_token", "false would publish metrics on server.listen to anyone; set server.admin_listen to a private address, or leave require_token on")
	case !s.Metrics.TokenRequired() && s.AdminListen == "" && v.dev:
		v.warn("server.metrics.require_token", "false publishes metrics on server.listen to anyone; acceptable for local development only")
	}
}

func (v *checker) notion(n *Notion) {
	// Notion tokens and our integration secret travel on every call
	// (TH-53): http is for a local fake Notion in development mode only.
	if u := v.absURL("notion.api_base_url", n.APIBaseURL, "https://api.notion.com"); u != nil && u.Scheme == "http" && v.prod {
		v.fail("notion.api_base_url", "plain http is refused in production mode; use https (see %s)", securityDoc53)
	}
	for i, r := range n.RedirectURIs {
		if strings.TrimSpace(r) == "" {
			v.fail("notion.redirect_uris["+strconv.Itoa(i)+"]", "empty redirect URI")
		}
	}
}

// listen checks the shape of server.listen, which serve would otherwise
// only find wrong when it listens. Named ports (":http") are left to the
// resolver.
func (v *checker) listen(addr string) { v.address("server.listen", addr) }

// address checks a host:port at path.
func (v *checker) address(path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.fail(path, "want host:port or :port, e.g. :8080, got %q", addr)
		return
	}
	if n, err := strconv.Atoi(port); err == nil && (n < 0 || n > 65535) {
		v.fail(path, "port %d is out of range 0-65535", n)
	}
}

// plainHTTP reports an http:// URL at path: refused in production mode
// (TH-53), a warning in development mode. An invalid mode is reported
// on its own.
func (v *checker) plainHTTP(path string) {
	switch {
	case v.prod:
		v.fail(path, "plain http is refused in production mode; use https (see %s)", securityDoc53)
	case v.dev:
		v.warn(path, "plain http is allowed in development mode only")
	}
}

// absURL checks that s is an absolute http(s) URL with a host and no
// credentials, and returns it parsed, or nil after reporting at path.
func (v *checker) absURL(path, s, example string) *url.URL {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.fail(path, "want an absolute http(s) URL like %s, got %q", example, s)
		return nil
	}
	if u.User != nil {
		v.fail(path, "credentials do not belong in the URL; use upstream.auth")
		return nil
	}
	return u
}

func (v *checker) provider(p *Provider, path string) {
	switch {
	case p.Name == "":
		v.fail(path+".name", "required: the provider's name in routes, e.g. github")
	case !isProviderName(p.Name):
		v.fail(path+".name", "%q is not a valid name: use 1 to 63 lower-case letters, digits and '-', starting with a letter or digit", p.Name)
	}
	if p.IconURL != "" {
		v.absURL(path+".icon_url", p.IconURL, "https://example.com/icon.png")
	}
	if p.MaxTextLength < 0 {
		v.fail(path+".max_text_length", "must not be negative")
	}
	v.credentials(&p.Notion, path+".notion")
	v.upstream(&p.Upstream, path+".upstream")
	v.errorStatuses(p.Errors.Statuses, path+".errors.statuses")
	v.live(&p.Live, path+".live")
	v.canaryInterval(p.Canary.Interval, path+".canary.interval")
	v.canaryCredential(p, path+".canary")

	if len(p.Patterns) == 0 {
		v.fail(path+".patterns", "at least one pattern is required")
	}
	names := make([]string, len(p.Patterns))
	for i := range p.Patterns {
		names[i] = p.Patterns[i].Name
	}
	first := map[string]string{}
	for i, pp := range itemPaths(path+".patterns", names) {
		pt := &p.Patterns[i]
		if pt.Name == "" {
			v.fail(pp+".name", "required: the rule name shown in Notion")
		}
		v.unique(first, pt.Name, pp+".name", "pattern name")
		v.pattern(pt, pp)
	}
}

// secretSources refuses, in production mode, every secret written in the
// file itself (TH-53): config files get committed, baked into images and
// pasted into tickets. The environment and mounted secret files do not.
func (v *checker) secretSources(sources map[string]SecretSource) {
	if !v.prod {
		return
	}
	for path, src := range sources {
		if src.Kind != SourceLiteral {
			continue
		}
		key := path[strings.LastIndexByte(path, '.')+1:]
		v.fail(path, "a secret written in the configuration file is refused in production mode; read it from the environment with ${NAME}, or from a file with %s_file: /run/secrets/NAME (see %s)", key, securityDoc53)
	}
}

// setHint says how to give the empty value at path: the environment
// variable the file reads, when it reads one that is empty, or else an
// example reference.
func (v *checker) setHint(path, example string) string {
	if src, ok := v.sources[path]; ok && src.Kind == SourceEnv {
		return "; the environment variable " + src.Env + " it reads is empty"
	}
	key := path[strings.LastIndexByte(path, '.')+1:]
	return "; set it from the environment, e.g. " + example + ", or from a file with " + key + "_file"
}

// adminToken checks server.admin_token: optional, but a guessable one
// would expose every link users unfurled.
func (v *checker) adminToken(t Secret) {
	if tok := t.Reveal(); tok != "" && len(tok) < minSecretLength {
		v.fail("server.admin_token", "too short: want at least %d characters", minSecretLength)
	}
}

// credentials checks the two credential pairs of protocol 1.2.
func (v *checker) credentials(n *ProviderNotion, path string) {
	secret := n.ClientSecret.Reveal()
	if v.prod {
		switch {
		case secret == "":
			v.fail(path+".client_secret", "required in production mode%s", v.setHint(path+".client_secret", "${GITHUB_NOTION_SECRET}"))
		case len(secret) < minSecretLength:
			v.fail(path+".client_secret", "too short: want at least %d characters", minSecretLength)
		}
	}
	if n.RefreshGrace < 0 || n.AccessTokenTTL < 0 {
		v.fail(path, "token durations must not be negative")
	}
	if secret != "" && secret == n.IntegrationClientSecret.Reveal() {
		v.fail(path+".integration_client_secret", "must differ from client_secret: one is the secret Notion presents to us, the other our secret at Notion")
	}
}

func (v *checker) upstream(u *Upstream, path string) {
	if u.BaseURL == "" {
		v.fail(path+".base_url", "required: the API origin, e.g. https://api.example.com")
	} else if b := v.absURL(path+".base_url", u.BaseURL, "https://api.example.com"); b != nil && b.Scheme == "http" {
		v.plainHTTP(path + ".base_url")
	}
	for i, h := range u.AllowedHosts {
		v.host(path+".allowed_hosts["+strconv.Itoa(i)+"]", h)
	}
	for i, h := range u.EmbedHosts {
		v.host(path+".embed_hosts["+strconv.Itoa(i)+"]", h)
	}
	if u.AllowPrivateNetworks && v.prod {
		v.fail(path+".allow_private_networks", "refused in production mode: it lets requests reach loopback and private addresses (see %s)", securityDoc53)
	}
	if !slices.Contains([]string{AuthNone, AuthOAuth2, AuthAPIKey}, u.Auth.Type) {
		v.fail(path+".auth.type", "want %s, %s or %s, got %q", AuthNone, AuthOAuth2, AuthAPIKey, u.Auth.Type)
	}
	v.auth(&u.Auth, path+".auth")
}

// auth checks the per-user sign-in settings.
func (v *checker) auth(a *Auth, path string) {
	if a.Type == AuthOAuth2 {
		o := &a.OAuth2
		if o.ClientAuth != "" && o.ClientAuth != ClientAuthHeader && o.ClientAuth != ClientAuthParams {
			v.fail(path+".oauth2.client_auth", "want %s or %s, got %q", ClientAuthHeader, ClientAuthParams, o.ClientAuth)
		}
		for _, f := range []struct{ key, val string }{{"authorize_url", o.AuthorizeURL}, {"token_url", o.TokenURL}} {
			if f.val == "" {
				v.fail(path+".oauth2."+f.key, "required for auth type oauth2")
				continue
			}
			if u := v.absURL(path+".oauth2."+f.key, f.val, "https://example.com/oauth/"+strings.TrimSuffix(f.key, "_url")); u != nil && u.Scheme == "http" {
				v.plainHTTP(path + ".oauth2." + f.key)
			}
		}
		v.revocation(&o.Revocation, path+".oauth2.revocation")
		if o.ClientID == "" {
			v.fail(path+".oauth2.client_id", "required for auth type oauth2: the OAuth app's client id at the upstream")
		}
		if o.ClientSecret.IsZero() {
			v.fail(path+".oauth2.client_secret", "required for auth type oauth2: the OAuth app's client secret at the upstream")
		}
	}
	v.apiKeyFields(a, path)
	if a.Value == "" && len(a.Secrets) > 0 {
		v.fail(path+".secrets", "only upstream.auth.value reads secrets; set value or remove secrets")
	}
	for _, name := range slices.Sorted(maps.Keys(a.Secrets)) {
		sp := path + ".secrets." + name
		switch {
		case v.bad[sp]:
		case !isIdentifier(name):
			v.fail(sp, "%q is not an identifier: use letters, digits and _, not starting with a digit", name)
		case a.Secrets[name].IsZero():
			v.fail(sp, "empty: set it, e.g. from the environment with ${NAME}")
		}
	}
	if a.Type == AuthOAuth2 || a.Type == AuthAPIKey {
		id := &a.Identity
		for _, f := range []struct{ key, val string }{{"url", id.URL}, {"key", id.Key}, {"name", id.Name}} {
			if f.val == "" {
				v.fail(path+".identity."+f.key, "required for auth type %s: the identity request tells whose account connected", a.Type)
			}
		}
	}
}

// revocation checks the optional grant revocation endpoint.
func (v *checker) revocation(r *Revocation, path string) {
	if r.URL == "" {
		if r.Style != "" {
			v.fail(path+".url", "required when revocation.style is set: the upstream's revocation endpoint")
		}
		return
	}
	if r.Style != RevocationRFC7009 && r.Style != RevocationGitHubGrant {
		v.fail(path+".style", "want %s or %s, got %q", RevocationRFC7009, RevocationGitHubGrant, r.Style)
	}
	if u := v.absURL(path+".url", r.URL, "https://example.com/oauth/revoke"); u != nil && u.Scheme == "http" {
		if v.prod {
			v.fail(path+".url", "plain http is refused in production mode; use https")
		} else {
			v.warn(path+".url", "plain http is allowed in development mode only")
		}
	}
}

// apiKeyFields checks upstream.auth.api_key.fields: named, typed, and
// combined by upstream.auth.value when there are several.
func (v *checker) apiKeyFields(a *Auth, path string) {
	fields := a.APIKey.Fields
	if len(fields) == 0 {
		return
	}
	fp := path + ".api_key.fields"
	if a.Type != AuthAPIKey {
		v.fail(fp, "only auth type %s has a key form; remove fields or set type: %s", AuthAPIKey, AuthAPIKey)
		return
	}
	if len(fields) > 1 && a.Value == "" {
		v.fail(fp, "several fields need upstream.auth.value to say how they make the header, e.g. '\"Basic \" + base64(credential.email + \":\" + credential.token)'")
	}
	names := make([]string, len(fields))
	for i := range fields {
		names[i] = fields[i].Name
	}
	first := map[string]string{}
	for i, ip := range itemPaths(fp, names) {
		f := &fields[i]
		switch {
		case f.Name == "":
			v.fail(ip+".name", "required: how upstream.auth.value reads the field, e.g. token")
		case !isIdentifier(f.Name):
			v.fail(ip+".name", "%q is not an identifier: use letters, digits and _, not starting with a digit", f.Name)
		}
		v.unique(first, f.Name, ip+".name", "field name")
		if !slices.Contains([]string{FieldSecret, FieldText, FieldEmail}, f.Type) {
			v.fail(ip+".type", "want %s, %s or %s, got %q", FieldSecret, FieldText, FieldEmail, f.Type)
		}
	}
}

// errorStatuses checks errors.statuses: upstream status codes and what
// they mean for unfurls.
func (v *checker) errorStatuses(m map[string]string, path string) {
	for _, code := range slices.Sorted(maps.Keys(m)) {
		sp := path + "." + code
		if n, err := strconv.Atoi(code); err != nil || n < 400 || n > 599 || strconv.Itoa(n) != code {
			v.fail(sp, "want an HTTP error status from 400 to 599 as the key, got %q", code)
		}
		if w := m[code]; !slices.Contains([]string{StatusNotFound, StatusReconnect, StatusTryLater}, w) {
			v.fail(sp, "want %s, %s or %s, got %q", StatusNotFound, StatusReconnect, StatusTryLater, w)
		}
	}
}

// host checks one entry of a host allowlist: a bare host or host:port.
func (v *checker) host(path, h string) {
	if h == "" || strings.ContainsAny(h, "/?#@ \t") {
		v.fail(path, "want a host like api.example.com or host:port, got %q", h)
	}
}

func (v *checker) pattern(pt *Pattern, path string) {
	if pt.Regex == "" {
		v.fail(path+".regex", "required: the URL regex, with named groups as (?<name>...)")
	}
	if len(pt.Samples) == 0 {
		v.fail(path+".samples", "at least one sample URL is required (Notion requires them too)")
	}

	names := make([]string, len(pt.Requests))
	for i := range pt.Requests {
		names[i] = pt.Requests[i].Name
	}
	first := map[string]string{}
	for i, rp := range itemPaths(path+".requests", names) {
		r := &pt.Requests[i]
		switch {
		case r.Name == "":
			v.fail(rp+".name", "required: the name expressions read the response by")
		case !isIdentifier(r.Name):
			v.fail(rp+".name", "%q is not an identifier: use letters, digits and _, not starting with a digit", r.Name)
		case r.Name == "groups" || r.Name == "uri":
			v.fail(rp+".name", "%q is reserved: expressions use it for the captured groups and the URI", r.Name)
		}
		v.unique(first, r.Name, rp+".name", "request name")
		if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}, strings.ToUpper(r.Method)) {
			v.fail(rp+".method", "want GET, POST, PUT, PATCH, DELETE or HEAD, got %q", r.Method)
		}
		if r.URL == "" {
			v.fail(rp+".url", "required: a path like /items/{id} or an absolute URL")
		}
	}

	names = make([]string, len(pt.Attributes))
	for i := range pt.Attributes {
		names[i] = pt.Attributes[i].ID
	}
	first = map[string]string{}
	for i, ap := range itemPaths(path+".attributes", names) {
		a := &pt.Attributes[i]
		if a.ID == "" {
			v.fail(ap+".id", "required: the attribute id, e.g. title")
		}
		v.unique(first, a.ID, ap+".id", "attribute id")
		v.attribute(a, ap)
	}
}

// kinds lists the attribute kinds in the order the docs give them.
func kinds() []string {
	return []string{
		KindTitle, KindPlainText, KindEnum, KindDate, KindDatetime, KindColor,
		KindImage, KindVideo, KindAudio, KindHTML, KindPDF, KindRelation,
	}
}

func (v *checker) attribute(a *Attribute, path string) {
	switch {
	case a.Kind == "":
		v.fail(path+".kind", "required: one of %s", strings.Join(kinds(), ", "))
	case !slices.Contains(kinds(), a.Kind):
		v.fail(path+".kind", "unknown kind %q; want one of %s", a.Kind, strings.Join(kinds(), ", "))
	}

	var set []string
	for _, s := range []struct{ key, val string }{{"path", a.Path}, {"expr", a.Expr}, {"value", a.Value}} {
		// A key whose value failed (a missing variable) counts as set,
		// so one problem is reported once.
		if s.val != "" || v.bad[path+"."+s.key] {
			set = append(set, s.key)
		}
	}
	switch len(set) {
	case 0:
		v.fail(path, "set one of path, expr or value")
	case 1:
	default:
		v.fail(path+"."+set[1], "%s cannot be used together; set only one of path, expr or value", joinAnd(set))
	}
	if a.From != "" && a.Path == "" {
		v.fail(path+".from", "from applies to path only")
	}
	if a.Kind != KindEnum {
		if a.Color != "" {
			v.fail(path+".color", "color applies to kind enum only")
		}
		if len(a.Colors) > 0 {
			v.fail(path+".colors", "colors applies to kind enum only")
		}
	}
	if a.MaxLength < 0 {
		v.fail(path+".max_length", "must not be negative")
	}
}

// joinAnd joins ["a", "b", "c"] as "a, b and c".
func joinAnd(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// isProviderName reports whether s matches ^[a-z0-9][a-z0-9-]{0,62}$, so
// it fits a URL path segment and a DNS label.
func isProviderName(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// isIdentifier reports whether s matches ^[A-Za-z_][A-Za-z0-9_]*$.
func isIdentifier(s string) bool { return isEnvName(s) }

// minCanaryInterval keeps scheduled canaries rare: each run calls the
// real upstream with a service credential.
const minCanaryInterval = 5 * time.Minute

// canaryInterval checks a canary.interval.
func (v *checker) canaryInterval(d Duration, path string) {
	if d < 0 {
		v.fail(path, "must not be negative; 0s turns scheduled canaries off")
	} else if d > 0 && d.D() < minCanaryInterval {
		v.fail(path, "at least 5m: every run calls the real upstream")
	}
}

// canaryCredential checks that a canary credential has the shape the
// provider's credentials have: one value, or exactly the key form's
// fields when it has several.
func (v *checker) canaryCredential(p *Provider, path string) {
	c, fields := &p.Canary, p.Upstream.Auth.APIKey.Fields
	switch {
	case len(c.CredentialFields) > 0 && !c.Credential.IsZero():
		v.fail(path+".credential_fields", "set credential or credential_fields, not both")
	case len(c.CredentialFields) > 0 && len(fields) == 0:
		v.fail(path+".credential_fields", "this provider's credential is one value: use canary.credential")
	case !c.Credential.IsZero() && len(fields) > 1:
		v.fail(path+".credential", "this provider's key form has several fields: use canary.credential_fields with %s", fieldNames(fields))
	case len(c.CredentialFields) > 0:
		for _, f := range fields {
			if _, ok := c.CredentialFields[f.Name]; !ok {
				v.fail(path+".credential_fields", "missing %q: the key form's fields are %s", f.Name, fieldNames(fields))
			}
		}
		for _, name := range slices.Sorted(maps.Keys(c.CredentialFields)) {
			if !slices.ContainsFunc(fields, func(f APIKeyField) bool { return f.Name == name }) {
				v.fail(path+".credential_fields."+name, "not a field of the key form (%s)", fieldNames(fields))
			}
		}
	}
}

func fieldNames(fields []APIKeyField) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// minExpireAfter is the shortest live.expire_after: a link's last unfurl
// is recorded about once a day (store.UnfurledGranularity), so a shorter
// setting could expire a link in use.
const minExpireAfter = 48 * time.Hour

// live checks the live-update settings (issue 4).
func (v *checker) live(l *Live, path string) {
	if l.PollInterval < 0 {
		v.fail(path+".poll_interval", "must not be negative; 0s turns polling off")
	} else if d := l.PollInterval.D(); d > 0 && d < 30*time.Second {
		v.fail(path+".poll_interval", "at least 30s: shorter intervals burn the upstream's rate limit for little gain")
	}
	if l.MaxRequestsPerHour < 0 {
		v.fail(path+".max_requests_per_hour", "must not be negative")
	}
	if l.ExpireAfter < 0 {
		v.fail(path+".expire_after", "must not be negative; 0s (the default) never expires a link")
	} else if d := l.ExpireAfter.D(); d > 0 && d < minExpireAfter {
		v.fail(path+".expire_after", "at least 48h: the last unfurl of a link is recorded to the day")
	}
	w := &l.Webhook
	if w.Secret.Reveal() == "" {
		return
	}
	if w.Header == "" {
		v.fail(path+".webhook.header", "required with a webhook secret: the request header carrying the signature, e.g. X-Hub-Signature-256")
	}
	if !slices.Contains([]string{WebhookHMACSHA256, WebhookHMACSHA1, WebhookToken}, w.Algorithm) {
		v.fail(path+".webhook.algorithm", "want %s, %s or %s, got %q", WebhookHMACSHA256, WebhookHMACSHA1, WebhookToken, w.Algorithm)
	}
	if w.Encoding != "hex" && w.Encoding != "base64" {
		v.fail(path+".webhook.encoding", "want hex or base64, got %q", w.Encoding)
	}
	if w.URIs == "" {
		v.fail(path+".webhook.uris", "required with a webhook secret: an expression over event giving the affected links, e.g. [event.issue.html_url]")
	}
	if v.prod && len(w.Secret.Reveal()) < 16 {
		v.fail(path+".webhook.secret", "too short: want at least 16 characters")
	}
}
