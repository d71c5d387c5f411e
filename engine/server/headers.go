package server

import (
	"net/http"
	"net/url"
	"strings"
)

// securePageHeaders sets the headers every HTML page we serve carries
// (TH-03, TH-05, TH-10, TH-55):
//
//   - Content-Type with an explicit charset plus nosniff, so a browser never
//     guesses a type and runs reflected text as something else (TH-10);
//   - X-Frame-Options DENY and CSP frame-ancestors 'none' against
//     clickjacking of the consent and API-key forms (TH-05);
//   - Referrer-Policy no-referrer and Cache-Control/Pragma no-store, so
//     Notion's code and state never leave in a Referer and pages holding a
//     CSRF token are not kept in caches or history snapshots (TH-03);
//   - a CSP with no script source at all, only our one inline <style>
//     (by hash) and https/data images (the provider icon).
//
// formAction lists where a form POST on the page may end up. Chrome and
// Safari apply form-action to every redirect that follows the POST, so
// 'self' alone would block our 303 to the upstream authorize URL or to
// Notion's redirect_uri (TH-55). Each entry may be an origin or a full URL;
// only its origin is used. Entries that are not plain http(s) origins are
// dropped rather than risk splicing a new directive into the header.
func securePageHeaders(h http.Header, formAction []string) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Security-Policy", contentSecurityPolicy(formAction))
}

// contentSecurityPolicy builds the CSP value for securePageHeaders. The
// style hash is of the exact text inside our <style> element; see
// pageStyleHash.
func contentSecurityPolicy(formAction []string) string {
	var b strings.Builder
	b.WriteString("default-src 'none'; style-src '")
	b.WriteString(pageStyleHash())
	b.WriteString("'; img-src https: data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	seen := map[string]bool{}
	for _, raw := range formAction {
		o, ok := cspOrigin(raw)
		if !ok || seen[o] {
			continue
		}
		seen[o] = true
		b.WriteByte(' ')
		b.WriteString(o)
	}
	return b.String()
}

// cspOrigin reduces raw to a CSP host-source "scheme://host[:port]". It
// refuses anything a CSP parser could read as more than one source
// (spaces, semicolons, commas, quotes, control bytes), wildcards, userinfo
// and schemes other than http and https. http is allowed because tests
// and local development run upstreams on loopback.
func cspOrigin(raw string) (string, bool) {
	if raw == "" || strings.ContainsAny(raw, " \t\r\n;,'\"*\\") {
		return "", false
	}
	for _, r := range raw {
		if r < 0x21 || r > 0x7e {
			return "", false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Host == "" || u.Opaque != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", false
	}
	host := strings.ToLower(u.Host)
	// url.Parse keeps a bare trailing colon ("host:"); CSP would reject it.
	host = strings.TrimSuffix(host, ":")
	if u.Hostname() == "" {
		return "", false
	}
	return scheme + "://" + host, true
}
