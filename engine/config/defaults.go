package config

import (
	"net/url"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Default values that code outside the table refers to too; every
// other default is written in the table (Keys) only.
const (
	defaultNotionAPIBaseURL = "https://api.notion.com"
	defaultTokenVersion     = "2022-06-28" // protocol 4.3
	defaultObjectVersion    = "2021-08-16" // protocol 7.1
	defaultDev              = "unfurld"
	defaultAuthHeader       = "Authorization"
	defaultAuthPrefix       = "Bearer"
	defaultMethod           = "GET"
	defaultNotFoundMessage  = "Not found"
	defaultReconnectMessage = "Reconnect your account to see this preview"
	defaultTryLaterMessage  = "The service is unavailable, try again later"
)

// SetDefaults fills every unset field with its default. The values live
// in one table (Keys, STYLE.md 2); SetDefaults applies the table's
// unconditional defaults to every key, then in code the defaults that
// depend on other keys (a display name from the name, allowed hosts from
// the base URL, a section from the kind) or apply only sometimes (a
// public URL in development mode), reading any value from the table.
// Load calls it after decoding and before validation.
//
// A zero value means "unset", except for keys marked KeepZero
// (upstream.cache_ttl, live.poll_interval), where 0 turns the feature
// off: they get their default only when the key is absent from
// c.Positions (or when c.Positions is nil, as for a Config built in Go).
// An empty `cache_ttl:` is present, so it disables the cache too.
// Request methods are upper-cased.
func (c *Config) SetDefaults() {
	for i := range c.Providers {
		for j := range c.Providers[i].Patterns {
			for k := range c.Providers[i].Patterns[j].Requests {
				r := &c.Providers[i].Patterns[j].Requests[k]
				r.Method = strings.ToUpper(strings.TrimSpace(r.Method))
			}
		}
	}
	root := reflect.ValueOf(c).Elem()
	for _, k := range Keys() {
		if k.Default != "" && k.When == "" {
			c.applyKey(root, strings.Split(k.Path, "."), "", k)
		}
	}
	if c.Server.Mode == ModeDevelopment {
		fillDefault(&c.Server.PublicURL, "server.public_url")
	}
	paths := providerPaths(c.Providers)
	for i := range c.Providers {
		c.Providers[i].setDefaults()
		// A provider's canary.interval inherits the top-level one unless
		// the key is there ("0s" turns this provider's canaries off).
		if _, set := c.Positions[paths[i]+".canary.interval"]; !set && c.Providers[i].Canary.Interval == 0 {
			c.Providers[i].Canary.Interval = c.Canary.Interval
		}
	}
}

// applyKey applies k's default under v, a struct reached by the path
// pos, for the rest of k's path segs; each list item is visited, with
// the Positions path the loader gives it (itemPaths).
func (c *Config) applyKey(v reflect.Value, segs []string, pos string, k Key) {
	if len(segs) == 0 {
		if k.KeepZero && c.Positions != nil {
			if _, set := c.Positions[pos]; set {
				return
			}
		}
		_ = setDefault(v, k.Default) // every default decodes: TestKeysDefaultsDecode
		return
	}
	name, list := strings.CutSuffix(segs[0], "[]")
	f := fieldByKey(v, name)
	if !f.IsValid() {
		return // TestKeysMatchConfig keeps the table and the types in step
	}
	path := joinPath(pos, name)
	if !list {
		c.applyKey(f, segs[1:], path, k)
		return
	}
	names := make([]string, f.Len())
	for i := range names {
		names[i] = itemName(f.Index(i))
	}
	for i, ip := range itemPaths(path, names) {
		c.applyKey(f.Index(i), segs[1:], ip, k)
	}
}

// fieldByKey returns the field of struct v whose yaml key is key.
func fieldByKey(v reflect.Value, key string) reflect.Value {
	if v.Kind() != reflect.Struct {
		return reflect.Value{}
	}
	for _, f := range structFields(v.Type()) {
		if f.key == key {
			return v.Field(f.index)
		}
	}
	return reflect.Value{}
}

// itemName is the name a list item is known by in paths: its name, or
// its id.
func itemName(v reflect.Value) string {
	for _, key := range []string{"name", "id"} {
		if f := fieldByKey(v, key); f.IsValid() && f.Kind() == reflect.String {
			return f.String()
		}
	}
	return ""
}

// setDefault sets v, when it is zero, from def written as YAML. A nil
// pointer stays nil: it reads as its default (Live.IsEnabled).
func setDefault(v reflect.Value, def string) error {
	if !v.IsZero() || v.Kind() == reflect.Pointer {
		return nil
	}
	if v.Kind() == reflect.String {
		// Verbatim: "2022-06-28" is a version string, not a date.
		v.SetString(def)
		return nil
	}
	return yaml.Unmarshal([]byte(def), v.Addr().Interface())
}

// fillDefault sets *field, when zero, to the table's default of path.
func fillDefault[T any](field *T, path string) {
	for _, k := range Keys() {
		if k.Path == path {
			_ = setDefault(reflect.ValueOf(field).Elem(), k.Default)
			return
		}
	}
}

// setDefaults applies the defaults that depend on other keys.
func (p *Provider) setDefaults() {
	setString(&p.DisplayName, p.Name)
	setString(&p.Notion.ClientID, p.Name)
	if p.Notion.Domain == "" && len(p.Patterns) > 0 && len(p.Patterns[0].Samples) > 0 {
		// Notion verifies the root domain (protocol 9.1), so a leading
		// www. is dropped.
		if u, err := url.Parse(p.Patterns[0].Samples[0]); err == nil {
			p.Notion.Domain = strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
		}
	}
	u := &p.Upstream
	if len(u.AllowedHosts) == 0 {
		if b, err := url.Parse(u.BaseURL); err == nil && b.Host != "" {
			u.AllowedHosts = []string{strings.ToLower(b.Host)}
		}
	}
	if u.Auth.Type == AuthOAuth2 {
		// The token endpoint is called with the user's credentials, so
		// its host must pass the same allowlist as API calls.
		if t, err := url.Parse(u.Auth.OAuth2.TokenURL); err == nil && t.Host != "" && !slices.Contains(u.AllowedHosts, strings.ToLower(t.Host)) {
			u.AllowedHosts = append(u.AllowedHosts, strings.ToLower(t.Host))
		}
		// So is the revocation endpoint, which receives the user's token.
		if r := &u.Auth.OAuth2.Revocation; r.URL != "" {
			fillDefault(&r.Style, "providers[].upstream.auth.oauth2.revocation.style")
			if t, err := url.Parse(r.URL); err == nil && t.Host != "" && !slices.Contains(u.AllowedHosts, strings.ToLower(t.Host)) {
				u.AllowedHosts = append(u.AllowedHosts, strings.ToLower(t.Host))
			}
		}
	}
	if w := &p.Live.Webhook; w.Secret.Reveal() != "" {
		fillDefault(&w.Algorithm, "providers[].live.webhook.algorithm")
		fillDefault(&w.Encoding, "providers[].live.webhook.encoding")
		fillDefault(&w.MaxBodyBytes, "providers[].live.webhook.max_body_bytes")
	}
	for i := range u.Auth.APIKey.Fields {
		f := &u.Auth.APIKey.Fields[i]
		setString(&f.Label, f.Name)
	}
	for i := range p.Patterns {
		pt := &p.Patterns[i]
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
