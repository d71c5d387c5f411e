package server

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"unicode"
)

// The browser-facing pages of the OAuth flow (protocol 1.5 R1, 3.2 steps
// 4-6): the consent interstitial, the API-key form and the error page shown
// when we must not redirect (bad client_id or redirect_uri, RFC 6749
// 4.1.2.1). They are plain HTML forms: no JavaScript and no third-party
// assets (TH-03), one inline <style> allowed by its hash, every value
// escaped by html/template (TH-10).

// templateFS holds the page templates and their stylesheet. It is a
// package-level variable only because //go:embed works on nothing else; it
// is read-only, like the lazily parsed set built from it below.
//
//go:embed templates
var templateFS embed.FS

// pageStyle reads the stylesheet once and hashes it. The same bytes go
// into the <style> element and, as 'sha256-…', into the CSP style-src, so
// the hash cannot drift from the CSS it allows.
var pageStyle = sync.OnceValues(func() (style, error) {
	css, err := templateFS.ReadFile("templates/style.css")
	if err != nil {
		return style{}, fmt.Errorf("read page stylesheet: %w", err)
	}
	sum := sha256.Sum256(css)
	return style{
		// template.CSS marks trusted CSS: this is our embedded file, never input.
		css:  template.CSS(css),
		hash: "sha256-" + base64.StdEncoding.EncodeToString(sum[:]),
	}, nil
})

// loadPages parses the templates on first use rather than in init() (STYLE
// rule 3). Render functions return its error, and a test proves it is nil.
var loadPages = sync.OnceValues(parsePages)

// style is the embedded stylesheet and its CSP hash source.
type style struct {
	css  template.CSS
	hash string
}

// pageStyleHash is the CSP hash of the page stylesheet, without quotes.
// It is empty if the stylesheet could not be read; the CSP then allows no
// styles at all, which degrades looks, not safety.
func pageStyleHash() string {
	st, err := pageStyle()
	if err != nil {
		return ""
	}
	return st.hash
}

// pageSet is the parsed template for each page. Each page is its own set
// because all of them define "title" and "content" for the shared layout.
type pageSet struct {
	consent, apiKey, failure, home *template.Template
}

func parsePages() (*pageSet, error) {
	st, err := pageStyle()
	if err != nil {
		return nil, err
	}
	funcs := template.FuncMap{"pageStyle": func() template.CSS { return st.css }}
	parse := func(page string) (*template.Template, error) {
		t, err := template.New(page).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page)
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", page, err)
		}
		return t, nil
	}
	var ps pageSet
	if ps.consent, err = parse("consent.html"); err != nil {
		return nil, err
	}
	if ps.apiKey, err = parse("apikey.html"); err != nil {
		return nil, err
	}
	if ps.failure, err = parse("error.html"); err != nil {
		return nil, err
	}
	if ps.home, err = parse("home.html"); err != nil {
		return nil, err
	}
	return &ps, nil
}

// consentPage is the data of the consent interstitial (protocol 3.2 step
// 4): it names the service, the upstream account and, when known, the
// Notion workspace, and offers Allow and Cancel.
type consentPage struct {
	ServiceName, IconURL string   // provider display name and optional https icon
	AccountName          string   // upstream account that will be connected, e.g. "octocat"
	WorkspaceHint        string   // may be empty
	Shares               []string // what will be shared, e.g. "Titles, states and authors of GitHub issues you can see"
	CSRFToken            string   // hidden field "csrf"
	ActionURL            string   // form POST target (same origin), buttons name="decision" value="allow"/"cancel"
}

// apiKeyPage is the data of the form for providers whose users paste an
// API key instead of running an upstream OAuth flow. The key arrives as
// form field "api_key", or as one field per entry of Fields; the buttons
// are name="decision" value="allow" / "cancel". A non-empty Error
// re-renders the form with that message.
type apiKeyPage struct {
	ServiceName, IconURL, HelpText, HelpURL, CSRFToken, ActionURL, Error string
	// Fields are the inputs; empty means the one "api_key" input.
	Fields []apiKeyField
}

// apiKeyField is one input of the API-key form.
type apiKeyField struct {
	Input, ID, Label, Type, Value string
	// Last carries the help text under it.
	Last bool
}

// errorPage is a terminal error shown instead of redirecting, for example
// for an unknown client_id or a redirect_uri that fails validation (RFC
// 6749 4.1.2.1; TH-01, TH-02). Status outside 400-599 is served as 500.
type errorPage struct {
	Title, Message string
	Status         int
}

// consentView adds what the template derives from consentPage.
type consentView struct {
	consentPage
	Icon, Monogram string
}

// apiKeyView adds what the template derives from apiKeyPage.
type apiKeyView struct {
	apiKeyPage
	Icon, Monogram, HelpLink string
}

// renderConsent writes the consent page with status 200. formAction lists
// the origins the Allow/Cancel POST may redirect to (TH-55).
func renderConsent(w http.ResponseWriter, p consentPage, formAction []string) error {
	ps, err := loadPages()
	if err != nil {
		return err
	}
	if err := checkForm(p.ActionURL, p.CSRFToken); err != nil {
		return fmt.Errorf("render consent page: %w", err)
	}
	v := consentView{consentPage: p, Icon: httpsURL(p.IconURL), Monogram: monogram(p.ServiceName)}
	return writePage(w, ps.consent, http.StatusOK, v, formAction)
}

// renderAPIKey writes the API-key form: 200 on first display, 400 when it
// is shown again with an Error (the submitted key was refused).
func renderAPIKey(w http.ResponseWriter, p apiKeyPage, formAction []string) error {
	ps, err := loadPages()
	if err != nil {
		return err
	}
	if err := checkForm(p.ActionURL, p.CSRFToken); err != nil {
		return fmt.Errorf("render api key page: %w", err)
	}
	status := http.StatusOK
	if p.Error != "" {
		status = http.StatusBadRequest
	}
	if len(p.Fields) == 0 {
		p.Fields = []apiKeyField{{Input: "api_key", ID: "api-key", Label: "API key", Type: "password"}}
	}
	p.Fields = slices.Clone(p.Fields)
	p.Fields[len(p.Fields)-1].Last = true
	v := apiKeyView{
		apiKeyPage: p,
		Icon:       httpsURL(p.IconURL),
		Monogram:   monogram(p.ServiceName),
		HelpLink:   httpsURL(p.HelpURL),
	}
	return writePage(w, ps.apiKey, status, v, formAction)
}

// renderError writes an error page. It has no form, so form-action is
// 'self' only.
func renderError(w http.ResponseWriter, p errorPage) error {
	ps, err := loadPages()
	if err != nil {
		return err
	}
	if p.Status < 400 || p.Status > 599 {
		// An error page answered with 2xx/3xx would look like success to
		// anything that checks the status.
		p.Status = http.StatusInternalServerError
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Message == "" {
		p.Message = "Something went wrong while connecting your account."
	}
	return writePage(w, ps.failure, p.Status, p, nil)
}

// writePage renders into a buffer first, so a template error leaves the
// response untouched for the error handler instead of sending half a page
// with a 200.
func writePage(w http.ResponseWriter, t *template.Template, status int, data any, formAction []string) error {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		return fmt.Errorf("render page %s: %w", t.Name(), err)
	}
	securePageHeaders(w.Header(), formAction)
	w.WriteHeader(status)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write page %s: %w", t.Name(), err)
	}
	return nil
}

var (
	errActionURL = errors.New("form action must be a same-origin absolute path")
	errNoCSRF    = errors.New("form needs a csrf token")
)

// checkForm refuses to render a form that could post off-site or without
// a CSRF token: both are caller bugs, and failing closed keeps them from
// becoming TH-04 holes.
func checkForm(action, csrf string) error {
	if csrf == "" {
		return errNoCSRF
	}
	// "//host" and "/\host" are network-path references in browsers.
	if !strings.HasPrefix(action, "/") || strings.HasPrefix(action, "//") || strings.HasPrefix(action, `/\`) {
		return fmt.Errorf("%w: %q", errActionURL, action)
	}
	return nil
}

// httpsURL returns s if it is an absolute https URL with a host and no
// userinfo, else "". Icons and help links are operator config, but a
// javascript: or http: URL must still never reach an attribute (TH-10);
// html/template would only neuter it to #ZgotmplZ, and we would rather
// show the monogram.
func httpsURL(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Opaque != "" {
		return ""
	}
	return u.String()
}

// monogram is the first letter or digit of name, upper-cased, for the
// neutral icon shown when a provider has no usable icon.
func monogram(name string) string {
	for _, r := range name {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return string(unicode.ToUpper(r))
		}
	}
	return "?"
}
