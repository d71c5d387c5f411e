package config

import (
	"net/url"
	"slices"
	"strings"
	"time"
)

// defaultRedirectURIs are the redirect_uri spellings Notion's documentation
// uses (protocol 3.4). Matching stays exact (TH-01), so every spelling is
// listed.
func defaultRedirectURIs() []string {
	return []string{
		"https://notion.so/externalIntegrationAuthCallback",
		"notion.so/externalIntegrationAuthCallback",
		"https://www.notion.so/externalintegrationauthcallback",
		"https://notion.so/externalintegrationauthcallback",
		"https://www.notion.so/externalIntegrationAuthCallback",
	}
}

// Default values stated in the field comments of config.go.
const (
	defaultListen            = ":8080"
	defaultDevPublicURL      = "http://localhost:8080"
	defaultStoragePath       = "./data/unfurld.db"
	defaultNotionAPIBaseURL  = "https://api.notion.com"
	defaultTokenVersion      = "2022-06-28" // protocol 4.3
	defaultObjectVersion     = "2021-08-16" // protocol 7.1
	defaultDev               = "unfurld"
	defaultMaxTextLength     = 2000 // TH-33
	defaultMaxBodyBytes      = 2 << 20
	defaultAuthHeader        = "Authorization"
	defaultAuthPrefix        = "Bearer"
	defaultMethod            = "GET"
	defaultNotFoundMessage   = "Not found"
	defaultReconnectMessage  = "Reconnect your account to see this preview"
	defaultTryLaterMessage   = "The service is unavailable, try again later"
	defaultUnfurlErrorStatus = 200 // protocol 5.4
)

// SetDefaults fills every unset field with the default its comment in
// config.go states. It is the one place defaults live (STYLE.md §2); Load
// calls it after decoding and before validation.
//
// A zero value means "unset", except for upstream.cache_ttl, where 0
// disables the cache: it gets its default only when the key is absent from
// c.Positions (or when c.Positions is nil, as for a Config built in Go).
// An empty `cache_ttl:` is present, so it disables the cache too.
// Request methods are upper-cased.
func (c *Config) SetDefaults() {
	s := &c.Server
	setString(&s.Listen, defaultListen)
	setString(&s.Mode, ModeProduction)
	if s.Mode == ModeDevelopment {
		setString(&s.PublicURL, defaultDevPublicURL)
	}
	setDuration(&s.ReadHeaderTimeout, 5*time.Second)
	setDuration(&s.ReadTimeout, 10*time.Second)
	setDuration(&s.WriteTimeout, 30*time.Second)
	setDuration(&s.IdleTimeout, 120*time.Second)
	setDuration(&s.ShutdownTimeout, 15*time.Second)
	setSize(&s.MaxHeaderBytes, 16<<10)
	setSize(&s.UnfurlBodyLimit, 64<<10)
	setDuration(&s.UnfurlTimeout, 8*time.Second)
	setInt(&s.UnfurlErrorStatus, defaultUnfurlErrorStatus)
	setInt(&s.MaxConcurrentUpstream, 256)
	setInt(&s.MaxConnections, 1024)
	setString(&s.Log.Level, "info")
	setString(&s.Log.Format, "text")

	setString(&c.Storage.Driver, StorageBolt)
	setString(&c.Storage.Path, defaultStoragePath)
	setDuration(&c.Storage.LockTimeout, 2*time.Second) // TH-43

	n := &c.Notion
	setString(&n.APIBaseURL, defaultNotionAPIBaseURL)
	setString(&n.TokenVersion, defaultTokenVersion)
	setString(&n.ObjectVersion, defaultObjectVersion)
	setDuration(&n.Timeout, 10*time.Second)
	if len(n.RedirectURIs) == 0 {
		n.RedirectURIs = defaultRedirectURIs()
	}

	paths := providerPaths(c.Providers)
	for i := range c.Providers {
		c.Providers[i].setDefaults(paths[i], c.Positions)
		// A provider's canary.interval inherits the top-level one unless
		// the key is there ("0s" turns this provider's canaries off).
		if _, set := c.Positions[paths[i]+".canary.interval"]; !set && c.Providers[i].Canary.Interval == 0 {
			c.Providers[i].Canary.Interval = c.Canary.Interval
		}
	}
}

func (p *Provider) setDefaults(path string, pos Positions) {
	setString(&p.DisplayName, p.Name)
	setString(&p.Dev, defaultDev)
	setString(&p.Notion.ClientID, p.Name)
	if p.Notion.Domain == "" && len(p.Patterns) > 0 && len(p.Patterns[0].Samples) > 0 {
		// Notion verifies the root domain (protocol 9.1), so a leading
		// www. is dropped.
		if u, err := url.Parse(p.Patterns[0].Samples[0]); err == nil {
			p.Notion.Domain = strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
		}
	}
	setInt(&p.MaxTextLength, defaultMaxTextLength)
	setString(&p.Errors.NotFound, defaultNotFoundMessage)
	setString(&p.Errors.Reconnect, defaultReconnectMessage)
	setString(&p.Errors.TryLater, defaultTryLaterMessage)

	u := &p.Upstream
	if len(u.AllowedHosts) == 0 {
		if b, err := url.Parse(u.BaseURL); err == nil && b.Host != "" {
			u.AllowedHosts = []string{strings.ToLower(b.Host)}
		}
	}
	setDuration(&u.Timeout, 5*time.Second)
	if _, set := pos[path+".upstream.cache_ttl"]; !set || pos == nil {
		setDuration(&u.CacheTTL, 30*time.Second)
	}
	setSize(&u.MaxBodyBytes, defaultMaxBodyBytes) // TH-32
	setDuration(&p.Notion.RefreshGrace, 30*time.Second)
	if u.Auth.Type == AuthOAuth2 {
		// The token endpoint is called with the user's credentials, so
		// its host must pass the same allowlist as API calls.
		if t, err := url.Parse(u.Auth.OAuth2.TokenURL); err == nil && t.Host != "" && !slices.Contains(u.AllowedHosts, strings.ToLower(t.Host)) {
			u.AllowedHosts = append(u.AllowedHosts, strings.ToLower(t.Host))
		}
		// So is the revocation endpoint, which receives the user's token.
		if r := &u.Auth.OAuth2.Revocation; r.URL != "" {
			setString(&r.Style, RevocationRFC7009)
			if t, err := url.Parse(r.URL); err == nil && t.Host != "" && !slices.Contains(u.AllowedHosts, strings.ToLower(t.Host)) {
				u.AllowedHosts = append(u.AllowedHosts, strings.ToLower(t.Host))
			}
		}
	}
	if _, set := pos[path+".live.poll_interval"]; !set || pos == nil {
		setDuration(&p.Live.PollInterval, 10*time.Minute)
	}
	setInt(&p.Live.MaxRequestsPerHour, 3600)
	if p.Live.Webhook.Secret.Reveal() != "" {
		setString(&p.Live.Webhook.Algorithm, WebhookHMACSHA256)
		setString(&p.Live.Webhook.Encoding, "hex")
		setSize(&p.Live.Webhook.MaxBodyBytes, 1<<20)
	}
	setString(&u.Auth.Type, AuthNone)
	setString(&u.Auth.Identity.Method, "GET")
	setString(&u.Auth.Header, defaultAuthHeader)
	setString(&u.Auth.Prefix, defaultAuthPrefix)
	for i := range u.Auth.APIKey.Fields {
		f := &u.Auth.APIKey.Fields[i]
		setString(&f.Type, FieldSecret)
		setString(&f.Label, f.Name)
	}

	for i := range p.Patterns {
		pt := &p.Patterns[i]
		for j := range pt.Requests {
			r := &pt.Requests[j]
			r.Method = strings.ToUpper(strings.TrimSpace(r.Method))
			setString(&r.Method, defaultMethod)
		}
		for j := range pt.Attributes {
			a := &pt.Attributes[j]
			setString(&a.Name, a.ID)
			setString(&a.Section, DefaultSection(a.Kind))
			if a.Path != "" && len(pt.Requests) > 0 {
				setString(&a.From, pt.Requests[0].Name)
			}
			setInt(&a.MaxLength, p.MaxTextLength)
		}
		for j := range pt.Placeholder {
			a := &pt.Placeholder[j]
			setString(&a.Name, a.ID)
			setString(&a.Section, DefaultSection(a.Kind))
		}
	}
}

// DefaultSection is the section (protocol 6.6) an attribute of kind goes
// to when it names none; "" for an unknown kind.
func DefaultSection(kind string) string {
	switch kind {
	case KindTitle:
		return "title"
	case KindPlainText:
		return "secondary"
	case KindEnum, KindDate, KindDatetime, KindRelation:
		return "primary"
	case KindColor:
		return "background"
	case KindImage:
		return "avatar"
	case KindVideo, KindAudio, KindHTML, KindPDF:
		return "embed"
	default:
		return ""
	}
}

// providerPaths are the Positions paths of the providers, by the rule of
// itemPaths.
func providerPaths(ps []Provider) []string {
	names := make([]string, len(ps))
	for i := range ps {
		names[i] = ps[i].Name
	}
	return itemPaths("providers", names)
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func setInt(v *int, def int) {
	if *v == 0 {
		*v = def
	}
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

func setSize(b *ByteSize, def int64) {
	if *b == 0 {
		*b = ByteSize(def)
	}
}
