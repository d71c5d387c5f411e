package provider

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors Match returns.
var (
	// ErrNoMatch means no pattern of the provider matches the URI.
	ErrNoMatch = errors.New("no pattern matches this link")
	// ErrBadURI means the URI was refused before matching (TH-28).
	ErrBadURI = errors.New("link refused")
)

// Match is a URI matched to a pattern.
type Match struct {
	// URI is the URI exactly as received.
	URI string
	// Pattern is the rule that matched.
	Pattern *Pattern
	// Groups are the named groups' texts; a group that did not take part
	// is "" (protocol 9.2).
	Groups map[string]string
}

// Match checks uri and finds the first pattern that matches it. We match
// on our side whatever Notion matched (TH-28): Notion's engine is not
// RE2, and the URI arrives from the internet.
func (p *Provider) Match(uri string) (*Match, error) {
	if err := checkURI(uri, p.serves); err != nil {
		return nil, err
	}
	for _, pat := range p.Patterns {
		idx := pat.Regex.FindStringSubmatchIndex(uri)
		if idx == nil {
			continue
		}
		groups := make(map[string]string, len(pat.Groups))
		for i, name := range pat.Regex.SubexpNames() {
			if name == "" {
				continue
			}
			if idx[2*i] >= 0 {
				groups[name] = uri[idx[2*i]:idx[2*i+1]]
			} else {
				groups[name] = ""
			}
		}
		return &Match{URI: uri, Pattern: pat, Groups: groups}, nil
	}
	return nil, ErrNoMatch
}

// serves reports whether a pasted URI may name host (TH-28): one of the
// sample hosts or the domain, or with notion.subdomains a subdomain of
// the domain. checkURI has already made sure host is lower-case ASCII
// without a trailing dot, so the suffix test cannot be fooled by a
// look-alike: "evilpagerduty.com" does not end in ".pagerduty.com".
func (p *Provider) serves(host string) bool {
	if p.uriHosts[host] {
		return true
	}
	return p.uriDomain != "" && strings.HasSuffix(host, "."+p.uriDomain)
}

// checkURI refuses URIs that are not plain ASCII http(s) URLs on a host
// served says yes to (all hosts when served is nil), per TH-28: no userinfo, no port
// other than the default, no trailing dot, no IDN or full-width look-alikes
// (refused rather than normalised, since IDNA mapping would turn
// full-width "ｇｉｔｈｕｂ.com" into github.com), no control characters or
// whitespace, and at most maxURILength bytes.
func checkURI(uri string, served func(host string) bool) error {
	if uri == "" {
		return fmt.Errorf("%w: empty uri", ErrBadURI)
	}
	if len(uri) > maxURILength {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadURI, maxURILength)
	}
	if !utf8.ValidString(uri) {
		return fmt.Errorf("%w: not valid UTF-8", ErrBadURI)
	}
	for _, r := range uri {
		if r > unicode.MaxASCII {
			return fmt.Errorf("%w: non-ASCII characters (percent-encode them)", ErrBadURI)
		}
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%w: control characters or spaces", ErrBadURI)
		}
	}
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("%w: not a URL", ErrBadURI)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		// Notion's own example is http:// (protocol 5.1), so both pass
		// here; the operator's regex decides which it accepts.
		return fmt.Errorf("%w: scheme must be http or https", ErrBadURI)
	}
	if u.User != nil {
		return fmt.Errorf("%w: user info in the URL", ErrBadURI)
	}
	if u.Port() != "" {
		return fmt.Errorf("%w: explicit port", ErrBadURI)
	}
	host := u.Hostname()
	if host == "" || strings.HasSuffix(host, ".") || host != strings.ToLower(host) {
		return fmt.Errorf("%w: host must be a lower-case name without a trailing dot", ErrBadURI)
	}
	if served != nil && !served(host) {
		return fmt.Errorf("%w: host %s is not served by this provider", ErrBadURI, host)
	}
	return nil
}
