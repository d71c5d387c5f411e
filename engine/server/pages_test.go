package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// evil is reflected into every text field of every page (TH-10).
const (
	evil        = `<script>alert(1)</script>"'&`
	evilEscaped = `&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;&amp;`
)

var (
	styleRe = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
	attrRe  = regexp.MustCompile(`\b(src|href|action)="([^"]*)"`)
	urlRe   = regexp.MustCompile(`(?i)(https?:)?//[^\s"'<>]+`)
	imgRe   = regexp.MustCompile(`<img src="([^"]*)"`)
	linkRe  = regexp.MustCompile(`<a href="([^"]*)" target="_blank" rel="noopener noreferrer">`)
)

func TestPageTemplatesParse(t *testing.T) {
	t.Parallel()
	_, err := loadPages()
	require.NoError(t, err)
	require.NotEmpty(t, pageStyleHash())
}

// TestPageStyleHashMatchesRenderedStyle proves the CSP hash is of the bytes
// that actually end up inside <style>: if the template escaped or trimmed
// the CSS, the browser would block it.
func TestPageStyleHashMatchesRenderedStyle(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	require.NoError(t, renderError(rec, errorPage{Status: http.StatusBadRequest}))
	m := styleRe.FindStringSubmatch(rec.Body.String())
	require.Len(t, m, 2, "one <style> element")
	sum := sha256.Sum256([]byte(m[1]))
	want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	assert.Contains(t, rec.Header().Get("Content-Security-Policy"), want)
	assert.Equal(t, 1, strings.Count(rec.Body.String(), "<style"), "exactly one style element")
	assert.NotContains(t, rec.Body.String(), "style=\"", "no style attributes: the hash does not cover them")
}

// pageCase is one rendered page and what must hold for it.
type pageCase struct {
	name       string
	render     func(w http.ResponseWriter) error
	formAction []string // origins expected in form-action after 'self'
	status     int
	contains   []string
	absent     []string
	// evilCount is how many times evilEscaped must appear.
	evilCount int
	// buttons: whether the page is a form with csrf and the two decision buttons.
	form      bool
	actionURL string
	csrf      string
	iconURL   string // the only https URL allowed in an <img src>
	helpURL   string // the only https URL allowed in an <a href>
}

func pageCases() []pageCase {
	const csrf = "tok-3q2b_Zf9"
	return []pageCase{
		{
			name: "consent",
			render: func(w http.ResponseWriter) error {
				return renderConsent(w, consentPage{
					ServiceName: evil, IconURL: "https://icons.example.com/gh.png",
					AccountName: evil, WorkspaceHint: evil,
					Shares:    []string{evil, "Titles of issues"},
					CSRFToken: csrf, ActionURL: "/providers/github/consent",
				}, []string{"https://github.com/login/oauth/authorize?client_id=x", "https://www.notion.so"})
			},
			formAction: []string{"https://github.com", "https://www.notion.so"},
			status:     http.StatusOK,
			// title, h1 (name), lede (name), dt (name), account, workspace, share
			evilCount: 7,
			contains: []string{
				`<img src="https://icons.example.com/gh.png" alt=""`,
				`<li>Titles of issues</li>`,
				`Notion will be able to see`,
				`<dt>Notion workspace</dt>`,
			},
			absent:    []string{`class="monogram"`},
			form:      true,
			actionURL: "/providers/github/consent",
			csrf:      csrf,
			iconURL:   "https://icons.example.com/gh.png",
		},
		{
			name: "consent javascript icon falls back to monogram",
			render: func(w http.ResponseWriter) error {
				return renderConsent(w, consentPage{
					ServiceName: "gitHub", IconURL: "javascript:alert(1)", AccountName: "octocat",
					CSRFToken: csrf, ActionURL: "/c",
				}, nil)
			},
			status:    http.StatusOK,
			contains:  []string{`<span class="monogram" aria-hidden="true">G</span>`, `<dd>octocat</dd>`},
			absent:    []string{"javascript:", "ZgotmplZ", "<img", "Notion workspace", "Notion will be able to see", "<ul"},
			form:      true,
			actionURL: "/c",
			csrf:      csrf,
		},
		{
			name: "consent http icon is not rendered",
			render: func(w http.ResponseWriter) error {
				return renderConsent(w, consentPage{
					ServiceName: "Linear", IconURL: "http://icons.example.com/l.png", AccountName: "a",
					CSRFToken: csrf, ActionURL: "/c",
				}, nil)
			},
			status:    http.StatusOK,
			contains:  []string{`<span class="monogram" aria-hidden="true">L</span>`},
			absent:    []string{"icons.example.com", "<img"},
			form:      true,
			actionURL: "/c",
			csrf:      csrf,
		},
		{
			name: "api key",
			render: func(w http.ResponseWriter) error {
				return renderAPIKey(w, apiKeyPage{
					ServiceName: evil, IconURL: "https://icons.example.com/k.svg",
					HelpText: evil, HelpURL: "https://example.com/settings/keys",
					CSRFToken: csrf, ActionURL: "/providers/k/key",
				}, []string{"https://www.notion.so"})
			},
			formAction: []string{"https://www.notion.so"},
			status:     http.StatusOK,
			evilCount:  5, // title, h1, lede twice, help text
			contains: []string{
				`<label for="api-key">API key</label>`,
				`name="api_key" type="password" required`,
				`aria-describedby="api-key-help"`,
				`value="cancel" formnovalidate>`,
			},
			absent:    []string{`role="alert"`, `aria-invalid="true"`},
			form:      true,
			actionURL: "/providers/k/key",
			csrf:      csrf,
			iconURL:   "https://icons.example.com/k.svg",
			helpURL:   "https://example.com/settings/keys",
		},
		{
			// Two fields (upstream.auth.api_key.fields): the e-mail is
			// shown and kept after a refusal, escaped like everything
			// else; the token is a password input and never refilled.
			name: "api key with fields",
			render: func(w http.ResponseWriter) error {
				return renderAPIKey(w, apiKeyPage{
					ServiceName: "Jira", CSRFToken: csrf, ActionURL: "/providers/jira/api-key", Error: "Jira did not accept this key.",
					Fields: []apiKeyField{
						{Input: "field_email", ID: "field-email", Label: evil, Type: "email", Value: evil},
						{Input: "field_token", ID: "field-token", Label: "API token", Type: "password"},
					},
				}, nil)
			},
			status:    http.StatusBadRequest,
			evilCount: 2, // label and kept value
			contains: []string{
				`name="field_email" type="email" required autofocus autocomplete="email"`,
				`<label for="field-token">API token</label>`,
				`name="field_token" type="password" required autocomplete="off"`,
				`aria-invalid="true"`,
			},
			absent:    []string{`name="api_key"`},
			form:      true,
			actionURL: "/providers/jira/api-key",
			csrf:      csrf,
		},
		{
			name: "api key with error",
			render: func(w http.ResponseWriter) error {
				return renderAPIKey(w, apiKeyPage{
					ServiceName: "Acme", HelpURL: "javascript:alert(1)", Error: evil,
					CSRFToken: csrf, ActionURL: "/k",
				}, nil)
			},
			status:    http.StatusBadRequest,
			evilCount: 1,
			contains: []string{
				`<div class="alert" role="alert" id="api-key-error">` + evilEscaped + `</div>`,
				`aria-describedby="api-key-help api-key-error" aria-invalid="true"`,
				`<span class="monogram" aria-hidden="true">A</span>`,
			},
			absent:    []string{"javascript:", "ZgotmplZ", "<a "},
			form:      true,
			actionURL: "/k",
			csrf:      csrf,
		},
		{
			name: "error page",
			render: func(w http.ResponseWriter) error {
				return renderError(w, errorPage{Title: evil, Message: evil, Status: http.StatusBadRequest})
			},
			status:    http.StatusBadRequest,
			evilCount: 3, // title, h1, message
			contains:  []string{"Error 400."},
			absent:    []string{"<form", "<button", "<input"},
		},
		{
			name: "error page with a non-error status serves 500 and defaults",
			render: func(w http.ResponseWriter) error {
				return renderError(w, errorPage{Status: http.StatusOK})
			},
			status:   http.StatusInternalServerError,
			contains: []string{"<h1>Internal Server Error</h1>", "Something went wrong", "Error 500."},
			absent:   []string{"<form"},
		},
	}
}

// TestRenderPages covers TH-03 (no-referrer, no-store, no third-party
// assets), TH-04 (csrf field), TH-05 (frame-ancestors, X-Frame-Options),
// TH-10 (escaping, nosniff, charset) and TH-55 (form-action origins).
func TestRenderPages(t *testing.T) {
	t.Parallel()
	for _, tc := range pageCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			require.NoError(t, tc.render(rec))
			res := rec.Result()
			require.Equal(t, tc.status, res.StatusCode)

			wantCSP := "default-src 'none'; style-src '" + pageStyleHash() + "'; img-src https: data:; " +
				"frame-ancestors 'none'; base-uri 'none'; form-action " + strings.Join(append([]string{"'self'"}, tc.formAction...), " ")
			wantHeaders := map[string]string{
				"Content-Type":            "text/html; charset=utf-8",
				"X-Content-Type-Options":  "nosniff",
				"X-Frame-Options":         "DENY",
				"Referrer-Policy":         "no-referrer",
				"Cache-Control":           "no-store",
				"Pragma":                  "no-cache",
				"Content-Security-Policy": wantCSP,
			}
			for k, v := range wantHeaders {
				assert.Equal(t, []string{v}, res.Header.Values(k), "header %s", k)
			}
			assert.Contains(t, wantCSP, "frame-ancestors 'none'")
			assert.NotContains(t, res.Header.Get("Content-Security-Policy"), "script-src")

			body := rec.Body.String()
			assert.True(t, strings.HasPrefix(body, "<!doctype html>\n<html lang=\"en\">"), "doctype and lang")
			assert.Contains(t, body, `<meta charset="utf-8">`)
			assert.NotContains(t, strings.ToLower(body), "<script", "no JavaScript at all")
			assert.NotContains(t, body, "alert(1)</script>", "raw reflected value (TH-10)")
			assert.NotContains(t, body, `"'&`, "raw quotes and ampersand")
			assert.Equal(t, tc.evilCount, strings.Count(body, evilEscaped), "escaped reflected values")
			assert.Contains(t, body, "unfurld</footer>")
			for _, s := range tc.contains {
				assert.Contains(t, body, s)
			}
			for _, s := range tc.absent {
				assert.NotContains(t, body, s)
			}

			if tc.form {
				assert.Equal(t, 1, strings.Count(body, "<form"))
				assert.Contains(t, body, `<form method="post" action="`+tc.actionURL+`">`)
				assert.Contains(t, body, `<input type="hidden" name="csrf" value="`+tc.csrf+`">`)
				assert.Equal(t, 2, strings.Count(body, `type="submit"`), "two submit buttons")
				assert.Equal(t, 1, strings.Count(body, `type="submit" name="decision" value="allow"`))
				assert.Equal(t, 1, strings.Count(body, `type="submit" name="decision" value="cancel"`))
				// Allow comes first: it is the default button for Enter in the key field.
				assert.Less(t, strings.Index(body, `value="allow"`), strings.Index(body, `value="cancel"`))
			}

			// Every URL-bearing attribute is same-origin, a data: URL, or the
			// one icon/help URL the page was given (TH-03).
			for _, m := range attrRe.FindAllStringSubmatch(body, -1) {
				v := m[2]
				switch {
				case v == "data:,", strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//"):
				case m[1] == "src" && v == tc.iconURL && v != "":
				case m[1] == "href" && v == tc.helpURL && v != "":
				default:
					assert.Failf(t, "unexpected URL attribute", "%s=%q", m[1], v)
				}
			}
			var allowed []string
			if tc.iconURL != "" {
				require.Equal(t, []string{tc.iconURL}, submatches(imgRe, body), "icon only in <img>")
				allowed = append(allowed, tc.iconURL)
			}
			if tc.helpURL != "" {
				require.Equal(t, []string{tc.helpURL}, submatches(linkRe, body), "help only in <a rel=noopener noreferrer>")
				allowed = append(allowed, tc.helpURL)
			}
			for _, u := range urlRe.FindAllString(body, -1) {
				assert.Contains(t, allowed, u, "external URL in page")
			}
		})
	}
}

func submatches(re *regexp.Regexp, s string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestRenderRefusesUnsafeForms: a form that could post off-site or without
// a CSRF token is a caller bug; nothing is written, so the error handler
// still owns the response (TH-04).
func TestRenderRefusesUnsafeForms(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, action, csrf string }{
		{"absolute URL", "https://evil.example/steal", "t"},
		{"network-path reference", "//evil.example/steal", "t"},
		{"backslash network path", `/\evil.example`, "t"},
		{"javascript", "javascript:alert(1)", "t"},
		{"relative path", "consent", "t"},
		{"empty action", "", "t"},
		{"no csrf token", "/c", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for name, render := range map[string]func(http.ResponseWriter) error{
				"consent": func(w http.ResponseWriter) error {
					return renderConsent(w, consentPage{ServiceName: "S", CSRFToken: tc.csrf, ActionURL: tc.action}, nil)
				},
				"api key": func(w http.ResponseWriter) error {
					return renderAPIKey(w, apiKeyPage{ServiceName: "S", CSRFToken: tc.csrf, ActionURL: tc.action}, nil)
				},
			} {
				rec := httptest.NewRecorder()
				require.Error(t, render(rec), name)
				assert.Empty(t, rec.Header(), name)
				assert.Zero(t, rec.Body.Len(), name)
				assert.False(t, rec.Flushed, name)
			}
		})
	}
}

func TestMonogram(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"GitHub", "G"},
		{"  linear", "L"},
		{"ärger", "Ä"},
		{"42 Labs", "4"},
		{"<&>", "?"},
		{"", "?"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, monogram(tc.in))
		})
	}
}

func TestHTTPSURL(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"https://a.example/i.png", "https://a.example/i.png"},
		{"HTTPS://a.example/i.png", "https://a.example/i.png"},
		{"http://a.example/i.png", ""},
		{"javascript:alert(1)", ""},
		{"data:image/png;base64,AAAA", ""},
		{"//a.example/i.png", ""},
		{"/i.png", ""},
		{"https://user:pw@a.example/i.png", ""},
		{"https:///i.png", ""},
		{"https://a.example/i .png", ""},
		{"https://a.example/\ni.png", ""},
		{"", ""},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, httpsURL(tc.in))
		})
	}
}

// --- headless Chromium ---

// chromiumPath finds Chromium. The pages are tested in a real browser
// (issue 3 item 3), so a missing browser fails the test everywhere, with
// the command that installs it; .ci/run installs it in CI.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not on PATH: the pages are tested in headless Chromium (issue 3 item 3); install it with: apt-get install -y chromium")
	return ""
}

// chromiumRun is what one headless Chromium run left behind.
type chromiumRun struct {
	img    image.Image
	stderr string
}

// screenshot loads url in headless Chromium and returns the decoded PNG
// and Chromium's stderr, where console messages (CSP violations among
// them) are logged. extra flags are appended before the URL.
func screenshot(t *testing.T, chromium, url string, extra ...string) chromiumRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	file := filepath.Join(dir, "shot.png")
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
		"--window-size=1000,800", "--hide-scrollbars",
		// Tests never leave loopback: every other host fails to resolve.
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--enable-logging=stderr", "--v=0",
		"--screenshot=" + file,
	}, extra...)
	args = append(args, url)
	cmd := exec.CommandContext(ctx, chromium, args...)
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	// Chromium's helper processes may hold the pipes open after a kill.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	require.NoError(t, err, "chromium: %s", stderr.String())
	f, err := os.Open(file)
	require.NoError(t, err, "no screenshot written; chromium said: %s", stderr.String())
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	if dst := os.Getenv("UNFURLD_SCREENSHOT_DIR"); dst != "" {
		// For looking at the pages by eye while working on the templates.
		name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + ".png"
		raw, err := os.ReadFile(file)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, name), raw, 0o644))
	}
	return chromiumRun{img: img, stderr: stderr.String()}
}

// colorStats counts distinct colors and reports whether a color within
// tol of want (per channel) occurs in at least minPixels pixels.
func colorStats(img image.Image, want color.RGBA, tol, minPixels int) (distinct int, found bool) {
	seen := map[color.RGBA]bool{}
	hits := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			c := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}
			seen[c] = true
			if near(c.R, want.R, tol) && near(c.G, want.G, tol) && near(c.B, want.B, tol) {
				hits++
			}
		}
	}
	return len(seen), hits >= minPixels
}

func near(a, b uint8, tol int) bool {
	d := int(a) - int(b)
	return d >= -tol && d <= tol
}

var (
	pagePrimary = color.RGBA{0x25, 0x63, 0xeb, 255} // --primary, the Allow button
	pageBG      = color.RGBA{0xf4, 0xf5, 0xf7, 255} // --bg
	pageDanger  = color.RGBA{0xfe, 0xf2, 0xf2, 255} // --danger-bg, the error badge
)

// TestPagesInChromium renders each page in a real browser: the CSP must
// not block anything of ours (no console "Content Security Policy"
// messages; TH-05, TH-55), the page must actually be styled, and the icon
// request must carry no Referer (TH-03).
func TestPagesInChromium(t *testing.T) {
	chromium := chromiumPath(t)

	// The icon comes from a separate https origin, as a provider's would.
	var (
		iconMu      sync.Mutex
		iconReferer []string
	)
	icon := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iconMu.Lock()
		iconReferer = append(iconReferer, r.Header.Get("Referer"))
		iconMu.Unlock()
		w.Header().Set("Content-Type", "image/png")
		_ = png.Encode(w, solidImage(56, color.RGBA{0x24, 0x29, 0x2f, 255}))
	}))
	t.Cleanup(icon.Close)

	const csrf = "csrf-token-for-browser"
	cases := []struct {
		name   string
		render func(w http.ResponseWriter) error
		want   color.RGBA // a color that must fill a visible area
		icon   bool
	}{
		{
			name: "consent",
			render: func(w http.ResponseWriter) error {
				return renderConsent(w, consentPage{
					ServiceName: "GitHub", AccountName: "octocat", WorkspaceHint: "Acme Inc.",
					Shares: []string{
						"Titles, states and authors of GitHub issues you can see",
						"Pull request titles, reviewers and check status",
					},
					CSRFToken: csrf, ActionURL: "/consent",
				}, []string{"https://github.com", "https://www.notion.so"})
			},
			want: pagePrimary,
		},
		{
			name: "apikey",
			render: func(w http.ResponseWriter) error {
				return renderAPIKey(w, apiKeyPage{
					ServiceName: "Linear", IconURL: icon.URL + "/icon.png",
					HelpText:  "Create a personal API key in Linear under Settings, Security & access.",
					HelpURL:   "https://linear.app/settings/account/security",
					Error:     "Linear did not accept this key. Check that it was copied completely.",
					CSRFToken: csrf, ActionURL: "/key",
				}, []string{"https://www.notion.so"})
			},
			want: pagePrimary,
			icon: true,
		},
		{
			name: "home",
			render: func(w http.ResponseWriter) error {
				ps, err := loadPages()
				if err != nil {
					return err
				}
				return writePage(w, ps.home, http.StatusOK, homePage{DocsURL: DocsURL, Providers: []homeProvider{
					{DisplayName: "GitHub", Domain: "github.com"}, {DisplayName: "Hacker News", Domain: "news.ycombinator.com"},
				}}, nil)
			},
			want: pageBG,
		},
		{
			name: "error",
			render: func(w http.ResponseWriter) error {
				return renderError(w, errorPage{
					Title:   "This link can't be used",
					Message: "The address Notion sent is not one unfurld accepts, so it will not send you back there.",
					Status:  http.StatusBadRequest,
				})
			},
			want: pageDanger,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/" {
					http.NotFound(w, r)
					return
				}
				if err := tc.render(w); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
				}
			}))
			defer srv.Close()

			run := screenshot(t, chromium, srv.URL+"/", "--ignore-certificate-errors")
			assert.NotContains(t, run.stderr, "Content Security Policy", "CSP blocked part of our own page")
			assert.Equal(t, image.Rect(0, 0, 1000, 800), run.img.Bounds())
			distinct, found := colorStats(run.img, tc.want, 2, 200)
			assert.GreaterOrEqual(t, distinct, 16, "page looks blank")
			assert.True(t, found, "expected color %v not on screen", tc.want)
			_, bg := colorStats(run.img, pageBG, 1, 100_000)
			assert.True(t, bg, "page background not painted: styles did not apply")
			if tc.icon {
				iconMu.Lock()
				defer iconMu.Unlock()
				require.NotEmpty(t, iconReferer, "icon was not requested")
				for _, ref := range iconReferer {
					assert.Empty(t, ref, "icon request carried a Referer (TH-03)")
				}
			}
		})
	}

	// The negative control proves the console check can fail: the same
	// page with a wrong style hash must log a CSP violation.
	t.Run("wrong style hash is reported", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			rec := httptest.NewRecorder()
			if err := renderError(rec, errorPage{Status: http.StatusBadRequest}); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			csp := strings.Replace(rec.Header().Get("Content-Security-Policy"), pageStyleHash(),
				"sha256-"+base64.StdEncoding.EncodeToString(make([]byte, sha256.Size)), 1)
			w.Header().Set("Content-Security-Policy", csp)
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		}))
		defer srv.Close()
		run := screenshot(t, chromium, srv.URL+"/")
		assert.Contains(t, run.stderr, "Content Security Policy")
		_, bg := colorStats(run.img, pageBG, 1, 100_000)
		assert.False(t, bg, "a blocked stylesheet must leave the page unstyled")
	})
}

// TestFormActionRedirectInChromium submits the consent form in Chromium and
// follows our 303 to another origin, as the real flow does to the upstream
// authorize URL or Notion's redirect_uri. With that origin in formAction
// the redirect lands; without it Chromium blocks it, which is why
// form-action must list it (TH-55). The pages have no JavaScript, so the
// test adds a nonce'd script that clicks Allow; the rest of the CSP is ours.
func TestFormActionRedirectInChromium(t *testing.T) {
	chromium := chromiumPath(t)
	cases := []struct {
		name      string
		allowDest bool
		wantLand  bool
	}{
		{name: "destination origin listed: redirect lands", allowDest: true, wantLand: true},
		{name: "destination origin missing: Chromium blocks it", allowDest: false, wantLand: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu       sync.Mutex
				landings []string
			)
			dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/callback" {
					http.NotFound(w, r) // the browser's favicon request
					return
				}
				mu.Lock()
				landings = append(landings, r.URL.RawQuery)
				mu.Unlock()
				_, _ = w.Write([]byte("landed"))
			}))
			defer dest.Close()
			var formAction []string
			if tc.allowDest {
				formAction = []string{dest.URL + "/callback"}
			}

			var (
				postMu    sync.Mutex
				decisions []string
			)
			const nonce = "test-only-nonce"
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodPost && r.URL.Path == "/consent":
					_ = r.ParseForm()
					postMu.Lock()
					decisions = append(decisions, r.PostForm.Get("decision")+" "+r.PostForm.Get("csrf"))
					postMu.Unlock()
					http.Redirect(w, r, dest.URL+"/callback?code=c&state=s", http.StatusSeeOther)
				case r.Method == http.MethodGet && r.URL.Path == "/":
					rec := httptest.NewRecorder()
					if err := renderConsent(rec, consentPage{
						ServiceName: "GitHub", AccountName: "octocat", CSRFToken: "tok", ActionURL: "/consent",
					}, formAction); err != nil {
						http.Error(w, err.Error(), http.StatusInternalServerError)
						return
					}
					for k, v := range rec.Header() {
						w.Header()[k] = v
					}
					w.Header().Set("Content-Security-Policy", rec.Header().Get("Content-Security-Policy")+"; script-src 'nonce-"+nonce+"'")
					body := strings.Replace(rec.Body.String(), "</body>",
						`<script nonce="`+nonce+`">document.querySelector('button[value=allow]').click()</script></body>`, 1)
					w.WriteHeader(rec.Code)
					_, _ = w.Write([]byte(body))
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()

			// A blocked navigation leaves headless Chromium waiting for a
			// load that never comes; --timeout takes the screenshot anyway.
			run := screenshot(t, chromium, srv.URL+"/", "--timeout=5000")
			postMu.Lock()
			assert.Equal(t, []string{"allow tok"}, decisions, "the form POST reached us")
			postMu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			if tc.wantLand {
				assert.Equal(t, []string{"code=c&state=s"}, landings)
				assert.NotContains(t, run.stderr, "Content Security Policy")
			} else {
				assert.Empty(t, landings, "redirect should have been blocked")
				assert.Contains(t, run.stderr, "form-action")
			}
		})
	}
}

func solidImage(n int, c color.RGBA) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	for y := range n {
		for x := range n {
			img.SetRGBA(x, y, c)
		}
	}
	return img
}
