package upstream

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	// maxValueLen caps one placeholder value in a URL (TH-29).
	maxValueLen = 1024
	// maxDecodes is how many rounds of percent-decoding a value survives
	// the dot-segment and control-character checks, so that a double
	// encoded "%252e%252e" is refused as well as "%2e%2e" (TH-29).
	maxDecodes = 4
)

// Template is a parsed `{placeholder}` template. A placeholder is `{name}`
// or `{name.gjson.path}` where name is [A-Za-z_][A-Za-z0-9_]* and the path
// is any run of characters except braces and whitespace. Any other brace
// is literal, so GraphQL text like "{ issue(id: $id) { title } }" passes
// through; note that "{viewer{login}}" does hold the placeholder {login}.
type Template struct {
	raw   string
	parts []part
	phs   []Placeholder

	isURL    bool
	absolute bool
	// scheme and host of an absolute URL template.
	scheme, host string
}

// part is a literal run (ph < 0) or the index of a placeholder.
type part struct {
	lit string
	ph  int
}

// Placeholder is one `{name}` or `{name.path}` in a template.
type Placeholder struct {
	// Name is the captured group or earlier request name.
	Name string
	// Path is the gjson path after the first dot, or "" for `{name}`.
	Path string
	// InQuery is true for a URL template placeholder after the first '?',
	// whose value is query-escaped rather than path-escaped.
	InQuery bool
}

// String gives the placeholder as written, e.g. "{issue.user.login}".
func (p Placeholder) String() string {
	if p.Path == "" {
		return "{" + p.Name + "}"
	}
	return "{" + p.Name + "." + p.Path + "}"
}

// Lookup resolves a placeholder's value. It returns an error wrapping
// ErrMissingValue when the value is null or absent, which Expand and
// ExpandURL keep wrapped so callers can tell "nothing there" (skip an
// optional request) from a value that is unsafe (ErrBadValue).
type Lookup func(name, path string) (string, error)

// ParseTemplate parses a template for header values and body strings.
func ParseTemplate(s string) (*Template, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("template is not valid UTF-8")
	}
	t := &Template{raw: s}
	t.parts, t.phs = parse(s)
	for i := range t.phs {
		t.phs[i].InQuery = false
	}
	return t, nil
}

// ParseURLTemplate parses a request URL template. It must be a path
// starting with a single "/" (appended to the base URL's path) or an
// absolute http(s) URL whose scheme, host and port hold no placeholder
// (TH-30). Literal spaces, control characters, stray braces, fragments and
// dot segments are refused here, at load.
func ParseURLTemplate(s string) (*Template, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("url template is not valid UTF-8")
	}
	t := &Template{raw: s, isURL: true}
	t.parts, t.phs = parse(s)
	for _, p := range t.parts {
		if p.ph >= 0 {
			continue
		}
		switch {
		case strings.ContainsAny(p.lit, "{}"):
			return nil, errors.New("url template has a stray brace; a placeholder is {name} or {name.path}")
		case strings.IndexFunc(p.lit, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
			return nil, errors.New("url template cannot hold spaces or control characters")
		case strings.Contains(p.lit, "#"):
			return nil, errors.New("url template cannot have a fragment (#)")
		}
	}

	switch {
	case strings.HasPrefix(s, "//"):
		return nil, errors.New("want a path starting with a single / or an absolute http(s) URL")
	case strings.HasPrefix(s, "/"):
	default:
		if err := t.parseOrigin(); err != nil {
			return nil, err
		}
	}

	// A sample expansion finds literal dot segments ("/a/../b") now rather
	// than on every request.
	sample := t.sample()
	if i := strings.IndexByte(sample, '?'); i >= 0 {
		sample = sample[:i]
	}
	if hasDotSegment(sample) {
		return nil, errors.New("url template has a dot segment (. or ..) in its path")
	}
	return t, nil
}

// parseOrigin checks that an absolute template's scheme and authority are
// literal and allowed, and records them.
func (t *Template) parseOrigin() error {
	prefix := ""
	if len(t.parts) > 0 && t.parts[0].ph < 0 {
		prefix = t.parts[0].lit
	}
	firstPH := ""
	if len(t.phs) > 0 {
		firstPH = t.phs[0].String()
	}
	idx := strings.Index(prefix, "://")
	if idx < 0 {
		if firstPH != "" && strings.Contains(t.raw, "://") {
			return fmt.Errorf("placeholder %s in the scheme is not allowed", firstPH)
		}
		return errors.New("want an absolute http(s) URL or a path starting with /")
	}
	origin := prefix
	if end := strings.IndexAny(prefix[idx+3:], "/?"); end >= 0 {
		origin = prefix[:idx+3+end]
	} else if firstPH != "" {
		// The first placeholder comes before the authority ends.
		return fmt.Errorf("placeholder %s in the host is not allowed", firstPH)
	}
	u, err := url.Parse(origin)
	if err != nil {
		return fmt.Errorf("url template: %w", unwrapURLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url template scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("url template has no host")
	}
	if u.User != nil {
		return errors.New("url template must not carry user info")
	}
	t.absolute, t.scheme, t.host = true, u.Scheme, u.Host
	return nil
}

// parse splits s into literal runs and placeholders. InQuery is set for
// placeholders after the first literal '?'.
func parse(s string) ([]part, []Placeholder) {
	var (
		parts   []part
		phs     []Placeholder
		lit     strings.Builder
		inQuery bool
	)
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, part{lit: lit.String(), ph: -1})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		if s[i] == '{' {
			if name, path, n, ok := scanPlaceholder(s[i:]); ok {
				flush()
				parts = append(parts, part{ph: len(phs)})
				phs = append(phs, Placeholder{Name: name, Path: path, InQuery: inQuery})
				i += n
				continue
			}
		}
		if s[i] == '?' {
			inQuery = true
		}
		lit.WriteByte(s[i])
		i++
	}
	flush()
	return parts, phs
}

// scanPlaceholder reads `{name}` or `{name.path}` at the start of s and
// returns its length; ok is false when s does not start with one.
func scanPlaceholder(s string) (name, path string, n int, ok bool) {
	j := 1
	if j >= len(s) || !isNameStart(s[j]) {
		return "", "", 0, false
	}
	for j < len(s) && (isNameStart(s[j]) || (s[j] >= '0' && s[j] <= '9')) {
		j++
	}
	name = s[1:j]
	if j < len(s) && s[j] == '}' {
		return name, "", j + 1, true
	}
	if j >= len(s) || s[j] != '.' {
		return "", "", 0, false
	}
	k := j + 1
	for k < len(s) {
		r, size := utf8.DecodeRuneInString(s[k:])
		if r == '{' || r == '}' || unicode.IsSpace(r) {
			break
		}
		k += size
	}
	if k == j+1 || k >= len(s) || s[k] != '}' {
		return "", "", 0, false
	}
	return name, s[j+1 : k], k + 1, true
}

func isNameStart(b byte) bool {
	return b == '_' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
}

// String returns the template as written.
func (t *Template) String() string { return t.raw }

// Placeholders returns the template's placeholders in order of appearance.
func (t *Template) Placeholders() []Placeholder {
	return append([]Placeholder(nil), t.phs...)
}

// Literal reports whether the template has no placeholders.
func (t *Template) Literal() bool { return len(t.phs) == 0 }

// sample expands every placeholder to "x", for load-time checks.
func (t *Template) sample() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.ph < 0 {
			b.WriteString(p.lit)
		} else {
			b.WriteString("x")
		}
	}
	return b.String()
}

// ExpandURL builds a request URL. A relative template is appended to the
// path of base (upstream.base_url), so base "https://gitlab.com/api/v4" and
// "/projects/{id}" give "https://gitlab.com/api/v4/projects/..."; an
// absolute template ignores base. Values before '?' are escaped as one path
// segment ('/' becomes %2F), values after it are query-escaped. Empty path
// values, dot segments (also percent-encoded), control characters, invalid
// UTF-8 and values over 1024 bytes are refused with an error wrapping
// ErrBadValue (TH-29). The result always keeps the template's or base's
// scheme and host (TH-30).
func (t *Template) ExpandURL(base string, lookup Lookup) (string, error) {
	if !t.isURL {
		return "", errors.New("not a url template")
	}
	var b strings.Builder
	wantScheme, wantHost := t.scheme, t.host
	if !t.absolute {
		bu, err := parseBase(base)
		if err != nil {
			return "", err
		}
		wantScheme, wantHost = bu.Scheme, bu.Host
		b.WriteString(strings.TrimRight(base, "/"))
	}
	for _, p := range t.parts {
		if p.ph < 0 {
			b.WriteString(p.lit)
			continue
		}
		ph := t.phs[p.ph]
		v, err := lookup(ph.Name, ph.Path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", ph, err)
		}
		if err := checkURLValue(v, ph.InQuery); err != nil {
			return "", fmt.Errorf("%s: %w", ph, err)
		}
		if ph.InQuery {
			b.WriteString(url.QueryEscape(v))
		} else {
			b.WriteString(url.PathEscape(v))
		}
	}
	out := b.String()

	// Defence in depth: whatever the values were, the URL must still point
	// at the same origin and have no dot segment once decoded.
	u, err := url.Parse(out)
	if err != nil {
		return "", fmt.Errorf("expanded url: %w: %w", ErrBadValue, unwrapURLError(err))
	}
	if u.Scheme != wantScheme || u.Host != wantHost || u.User != nil || u.Fragment != "" {
		return "", fmt.Errorf("expanded url leaves %s: %w", wantHost, ErrBadValue)
	}
	if hasDotSegment(u.EscapedPath()) {
		return "", fmt.Errorf("expanded url has a dot segment: %w", ErrBadValue)
	}
	return out, nil
}

// parseBase checks upstream.base_url.
func parseBase(base string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Opaque != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("base url %q: want an absolute http(s) URL without query or fragment", base)
	}
	return u, nil
}

// checkURLValue applies the TH-29 rules to one value.
func checkURLValue(v string, inQuery bool) error {
	switch {
	case len(v) > maxValueLen:
		return fmt.Errorf("value longer than %d bytes: %w", maxValueLen, ErrBadValue)
	case !utf8.ValidString(v):
		return fmt.Errorf("value is not valid UTF-8: %w", ErrBadValue)
	case v == "" && !inQuery:
		return fmt.Errorf("empty value in the path: %w", ErrBadValue)
	}
	s := v
	for range maxDecodes {
		if strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return fmt.Errorf("value holds control characters: %w", ErrBadValue)
		}
		if !inQuery && isDotSegments(s) {
			return fmt.Errorf("value is or holds a . or .. segment: %w", ErrBadValue)
		}
		d, err := url.PathUnescape(s)
		if err != nil || d == s {
			break
		}
		s = d
	}
	return nil
}

// isDotSegments reports whether s, split at '/' or '\' (some servers treat
// both as separators), has a "." or ".." part.
func isDotSegments(s string) bool {
	// A loop over the separators rather than strings.FieldsFunc, which
	// allocates a slice for every value of every request (issue 2).
	for s != "" {
		seg := s
		if i := strings.IndexAny(s, `/\`); i >= 0 {
			seg, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// hasDotSegment reports whether an escaped path has a segment that is, or
// after up to maxDecodes rounds of percent-decoding holds, "." or "..".
func hasDotSegment(escapedPath string) bool {
	for seg := range strings.SplitSeq(escapedPath, "/") {
		s := seg
		for range maxDecodes {
			if isDotSegments(s) {
				return true
			}
			d, err := url.PathUnescape(s)
			if err != nil || d == s {
				break
			}
			s = d
		}
	}
	return false
}

// Expand fills a plain-text template (header value, body string). Values
// with CR, LF or NUL are refused with an error wrapping ErrBadValue, so a
// value cannot add a header line (header injection).
func (t *Template) Expand(lookup Lookup) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.ph < 0 {
			b.WriteString(p.lit)
			continue
		}
		ph := t.phs[p.ph]
		v, err := lookup(ph.Name, ph.Path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", ph, err)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return "", fmt.Errorf("%s: value holds a line break or NUL: %w", ph, ErrBadValue)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}
