package server_test

import (
	"bytes"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/server"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// labConfig has one provider whose attributes cover every kind and
// section the preview draws (protocol 6.2, 6.4, 6.6).
const labConfig = `
server:
  mode: development
  unfurl_timeout: 5s
providers:
  - name: kinds
    display_name: Kinds
    dev: Acme Inc
    upstream:
      base_url: UPSTREAM
      allow_private_networks: true
      embed_hosts: [media.example.com]
      auth: {token: "service-token-0123456789"}
    patterns:
      - name: item
        regex: '^https://kinds\.example\.com/items/(?<id>\d{1,10})$'
        samples: [https://kinds.example.com/items/1]
        requests:
          - {name: item, url: '/items/{id}'}
        attributes:
          - {id: title, kind: title, path: title}
          - {id: state, kind: enum, path: state, colors: {open: "#1a7f37", closed: "#8250df"}}
          - {id: due, kind: date, section: primary, path: due}
          - {id: updated, kind: datetime, section: secondary, path: updated_at}
          - {id: author, kind: plain_text, section: secondary, path: author.name}
          - {id: body, kind: plain_text, section: body, path: body}
          - {id: tint, kind: color, section: entity, path: color}
          - {id: avatar, kind: image, section: avatar, path: author.avatar}
          - {id: key, kind: plain_text, section: identifier, expr: '"KND-" + groups.id'}
          - {id: shot, kind: image, section: embed, path: screenshot}
          - {id: shade, kind: color, section: background, expr: '"#cb912f"'}
`

// labItemJSON is the upstream's item 1.
const labItemJSON = `{"title":"Fix the flux capacitor","state":"open","due":"2026-12-24","updated_at":"2026-11-20T10:11:12Z",
"author":{"name":"Doc Brown","avatar":"https://media.example.com/u/1.png"},"body":"It needs 1.21 gigawatts.\nSecond line.",
"color":"#2f80ed","screenshot":"https://media.example.com/shot.png","labels":[{"name":"bug"},{"name":"p1"}]}`

// hostileJSON is an upstream answer built to break out of the page
// (TH-10): every string the preview, trace, JSON and answers show.
const hostileJSON = `{"title":"<script>alert(1)</script>","state":"\"><img src=x onerror=alert(2)>","due":"2026-12-24",
"updated_at":"2026-11-20T10:11:12Z","author":{"name":"</textarea><script>alert(3)</script>","avatar":"javascript:alert(4)"},
"body":"<iframe src=//evil.example>","color":"#2f80ed","screenshot":"https://media.example.com/x.png?<script>"}`

const labAdminToken = "lab-admin-token-0123456789abcdef0123"

// labEnv is a server with the lab provider and its fake upstream.
type labEnv struct {
	srv  *server.Server
	up   *upstreamtest.Server
	logs *lockedBuffer
}

func newLabEnv(t *testing.T, mutate func(*config.Server)) *labEnv {
	t.Helper()
	up := upstreamtest.New(t)
	up.Set("/items/1", upstreamtest.Response{Body: labItemJSON})
	up.Set("/items/666", upstreamtest.Response{Body: hostileJSON})
	cfg, errs := config.Parse("lab.yaml", []byte(strings.ReplaceAll(labConfig, "UPSTREAM", up.URL())), config.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.False(t, errs.HasErrors(), "%v", errs)
	if mutate != nil {
		mutate(&cfg.Server)
	}
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	comp, berrs := compiled.Compile(cfg, compiled.Options{Logger: logger})
	require.NotNil(t, comp, "%v", berrs)
	reg := comp.Registry
	t.Cleanup(reg.Close)
	srv := server.New(server.Config{Settings: cfg.Server, Store: newMemoryStore(), Registry: reg, Logger: logger,
		Now: func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }})
	return &labEnv{srv: srv, up: up, logs: logs}
}

// production turns the lab on in production mode with an admin token.
func production(s *config.Server) {
	s.Mode = config.ModeProduction
	s.Lab.Enabled = true
	s.AdminToken = labAdminToken
}

// lockedBuffer collects log output from concurrent handlers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var csrfFieldRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// labSession is a browser's visit: the cookie and CSRF token from GET
// /lab.
type labSession struct {
	cookie *http.Cookie
	csrf   string
}

func (e *labEnv) serve(req *http.Request) *httptest.ResponseRecorder {
	if req.Host == "example.com" { // httptest's default
		req.Host = "localhost:8080"
	}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	return rec
}

func (e *labEnv) open(t *testing.T) (*httptest.ResponseRecorder, labSession) {
	t.Helper()
	rec := e.serve(httptest.NewRequest(http.MethodGet, "/lab", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	cookies := rec.Result().Cookies()
	require.Len(t, cookies, 1)
	m := csrfFieldRe.FindStringSubmatch(rec.Body.String())
	require.Len(t, m, 2, "the form carries a csrf field")
	return rec, labSession{cookie: cookies[0], csrf: m[1]}
}

// post sends the form as a browser on the page would: same-origin, and
// Origin null because the page sets no-referrer.
func (e *labEnv) post(s labSession, shared url.Values, edit func(*http.Request)) *httptest.ResponseRecorder {
	form := url.Values{}
	for k, vs := range shared {
		form[k] = append([]string(nil), vs...)
	}
	if s.csrf != "" && !form.Has("csrf") {
		form.Set("csrf", s.csrf)
	}
	req := httptest.NewRequest(http.MethodPost, "/lab", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", "null")
	if s.cookie != nil {
		req.AddCookie(s.cookie)
	}
	if edit != nil {
		edit(req)
	}
	return e.serve(req)
}

// TestLabAccess is the handler matrix: who gets the page and who may run
// it (TH-04 for the CSRF cases).
func TestLabAccess(t *testing.T) {
	t.Parallel()
	run := url.Values{"url": {"https://kinds.example.com/items/1"}}
	with := func(v url.Values, k, val string) url.Values {
		out := url.Values{}
		for key, vs := range v {
			out[key] = append([]string(nil), vs...)
		}
		out.Set(k, val)
		return out
	}
	tests := []struct {
		name   string
		mutate func(*config.Server)
		// noPage: GET /lab is a 404, and so is the POST.
		noPage bool
		form   url.Values
		// session: "" for the GET's, "none" for no cookie and token,
		// "other" for the cookie of another visit.
		session string
		edit    func(*http.Request)
		want    int
		wantIn  string
	}{
		{name: "development runs without a token", form: run, want: http.StatusOK, wantIn: "Fix the flux capacitor"},
		{name: "production without enabled is 404", mutate: func(s *config.Server) { production(s); s.Lab.Enabled = false }, noPage: true},
		{name: "production enabled without admin token configured is 404", mutate: func(s *config.Server) { production(s); s.AdminToken = "" }, noPage: true},
		{name: "production without token is 401", mutate: production, form: run, want: http.StatusUnauthorized, wantIn: "Enter the admin token"},
		{name: "production with wrong token is 403", mutate: production, form: with(run, "admin_token", "wrong-token"), want: http.StatusForbidden, wantIn: "admin token is wrong"},
		{name: "production with token runs", mutate: production, form: with(run, "admin_token", labAdminToken), want: http.StatusOK, wantIn: "Fix the flux capacitor"},
		{name: "production with bearer header runs", mutate: production, form: run,
			edit: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+labAdminToken) }, want: http.StatusOK, wantIn: "Fix the flux capacitor"},
		{name: "production token in the query does not count", mutate: production, form: run,
			edit: func(r *http.Request) { r.URL.RawQuery = "admin_token=" + labAdminToken }, want: http.StatusUnauthorized},
		{name: "csrf missing is 403 (TH-04)", form: with(run, "csrf", ""), want: http.StatusForbidden, wantIn: "expired or was not sent from this page"},
		{name: "csrf wrong is 403 (TH-04)", form: with(run, "csrf", "AAAA"), want: http.StatusForbidden},
		{name: "no cookie is 403 (TH-04)", form: run, session: "none", want: http.StatusForbidden},
		{name: "another visit's cookie is 403 (TH-04)", form: run, session: "other", want: http.StatusForbidden},
		{name: "csrf checked before the token (TH-04)", mutate: production, form: with(with(run, "admin_token", labAdminToken), "csrf", "AAAA"), want: http.StatusForbidden},
		{name: "cross-site post is 403 (TH-04)", form: run,
			edit: func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }, want: http.StatusForbidden},
		{name: "foreign origin is 403 (TH-04)", form: run,
			edit: func(r *http.Request) { r.Header.Del("Sec-Fetch-Site"); r.Header.Set("Origin", "https://evil.example") }, want: http.StatusForbidden},
		{name: "development refuses a rebound host name", form: run,
			edit: func(r *http.Request) { r.Host = "attacker.example:8080" }, want: http.StatusForbidden, wantIn: "answers only on localhost"},
		{name: "development serves a loopback address", form: run,
			edit: func(r *http.Request) { r.Host = "[::1]:8080" }, want: http.StatusOK, wantIn: "Fix the flux capacitor"},
		{name: "development serves the public URL's host", mutate: func(s *config.Server) { s.PublicURL = "http://devbox.internal:8080" }, form: run,
			edit: func(r *http.Request) { r.Host = "devbox.internal:8080" }, want: http.StatusOK, wantIn: "Fix the flux capacitor"},
		{name: "production does not judge the host", mutate: production, form: with(run, "admin_token", labAdminToken),
			edit: func(r *http.Request) { r.Host = "unfurl.example.com" }, want: http.StatusOK, wantIn: "Fix the flux capacitor"},
		{name: "no url is 400", form: url.Values{}, want: http.StatusBadRequest, wantIn: "Paste a URL"},
		{name: "no provider matches", form: url.Values{"url": {"https://elsewhere.example.com/1"}}, want: http.StatusOK, wantIn: "No provider matches this URL"},
		{name: "unknown provider", form: with(run, "provider", "nope"), want: http.StatusOK, wantIn: "There is no provider named"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newLabEnv(t, tc.mutate)
			if tc.noPage {
				assert.Equal(t, http.StatusNotFound, e.serve(httptest.NewRequest(http.MethodGet, "/lab", nil)).Code)
				assert.Equal(t, http.StatusNotFound, e.post(labSession{}, url.Values{}, nil).Code)
				assert.Empty(t, e.up.Requests())
				return
			}
			_, s := e.open(t)
			switch tc.session {
			case "none":
				s = labSession{}
				tc.form = with(tc.form, "csrf", "")
			case "other":
				_, other := e.open(t)
				s.cookie = other.cookie
			}
			rec := e.post(s, tc.form, tc.edit)
			assert.Equal(t, tc.want, rec.Code, rec.Body.String())
			if tc.wantIn != "" {
				assert.Contains(t, rec.Body.String(), tc.wantIn)
			}
			if tc.want != http.StatusOK || tc.wantIn == "" || !strings.Contains(tc.wantIn, "flux") {
				assert.Empty(t, e.up.Requests(), "a refused run calls no upstream")
			}
			assertLabHeaders(t, rec.Header())
		})
	}
}

// TestLabTokenGuessingIsLimited: wrong admin tokens from one address are
// cut off with 429 before they cost more runs.
func TestLabTokenGuessingIsLimited(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t, production)
	_, s := e.open(t)
	form := url.Values{"url": {"https://kinds.example.com/items/1"}, "admin_token": {"guess"}}
	for range 10 {
		require.Equal(t, http.StatusForbidden, e.post(s, form, nil).Code)
	}
	rec := e.post(s, form, nil)
	assert.Equal(t, http.StatusTooManyRequests, rec.Code)
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
	form.Set("admin_token", labAdminToken)
	assert.Equal(t, http.StatusTooManyRequests, e.post(s, form, nil).Code, "blocked even with the right token until the window ends")
}

// assertLabHeaders checks the consent page's security headers (TH-03,
// TH-05, TH-10): the lab sends the same, with a CSP that loads nothing
// from anywhere and runs no script.
func assertLabHeaders(t *testing.T, h http.Header) {
	t.Helper()
	assert.Equal(t, "text/html; charset=utf-8", h.Get("Content-Type"))
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"))
	assert.Equal(t, "no-referrer", h.Get("Referrer-Policy"))
	assert.Equal(t, "no-store", h.Get("Cache-Control"))
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", `img-src data:;`, "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'", "style-src 'sha256-"} {
		assert.Contains(t, csp, d)
	}
	assert.NotContains(t, csp, "https:", "no other origin may be loaded")
	assert.NotContains(t, csp, "script-src")
	assert.NotContains(t, csp, "unsafe")
}

// TestLabShowsTheRun: the preview, the trace and the exact JSON of one
// run, the credential used once and never shown or logged.
func TestLabShowsTheRun(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t, nil)
	_, s := e.open(t)
	const cred = "pasted-credential-9f8e7d6c5b4a"
	rec := e.post(s, url.Values{"url": {"https://kinds.example.com/items/1"}, "credential": {cred}}, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	body := rec.Body.String()

	last, ok := e.up.LastRequest()
	require.True(t, ok)
	assert.Equal(t, "Bearer "+cred, last.Header.Get("Authorization"), "the pasted credential is used for the run")
	assert.NotContains(t, body, cred, "the credential is not echoed")
	assert.NotContains(t, e.logs.String(), cred, "the credential is not logged (TH-49)")

	for _, want := range []string{
		`id="mention"`, `id="card"`,
		`data-kind="title">Fix the flux capacitor</span>`,
		`class="a pill c-green" data-kind="enum" title="state (#1a7f37)">open</span>`,
		`data-kind="date" datetime="2026-12-24"`, `>Dec 24, 2026</time>`,
		`data-kind="datetime" datetime="2026-11-20T10:11:12.000Z"`, `>Nov 20, 2026 10:11 AM UTC</time>`,
		`class="entity swatch c-blue" data-kind="entity" title="#2f80ed"`,
		`<span class="ident" data-kind="identifier">KND-1</span>`,
		`data-kind="avatar"`, `title="https://media.example.com/u/1.png"`,
		`<article class="card bg-yellow" id="card">`,
		`<div class="embed" data-kind="image">`, `href="https://media.example.com/shot.png"`,
		"It needs 1.21 gigawatts.\nSecond line.",
		// the trace
		"<dt>Pattern</dt><dd>item</dd>", "<dt>Group id</dt><dd><code>1</code></dd>",
		"<td><code>GET " + e.up.URL() + "/items/1</code></td><td>200</td>",
		"<td>updated</td><td><code>&#34;2026-11-20T10:11:12.000Z&#34;</code></td>",
		"<td>dev</td>", "Acme Inc",
		// the JSON, exactly as the unfurl route sends it, indented
		`&#34;path&#34;: [`, `&#34;section&#34;: &#34;embed&#34;`,
		// the upstream answer the playground reads
		"<summary><code>item</code>: GET " + e.up.URL() + "/items/1 → 200</summary>",
	} {
		assert.Contains(t, body, want)
	}
	assert.NotContains(t, body, "<img", "upstream images are placeholders: the page loads nothing from other origins")
	assert.NotContains(t, body, "style=\"", "no style attributes: the CSP hash does not cover them")
	assert.NotContains(t, body, "<script", "the page runs no script")
}

// TestLabMissingAttributeTrace: an attribute whose value is missing
// shows why, naming the field the response lacks and the fields it has,
// and a failed upstream shows as Notion's error operation.
func TestLabMissingAttributeTrace(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t, nil)
	e.up.Set("/items/2", upstreamtest.Response{Body: `{"title":"Only a title"}`})
	e.up.Set("/items/3", upstreamtest.Response{Status: http.StatusInternalServerError, Body: `{"secret":"upstream detail"}`})
	_, s := e.open(t)
	rec := e.post(s, url.Values{"url": {"https://kinds.example.com/items/2"}}, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), `<tr class="missing"><td>state</td><td>missing: value is empty: item has no field &#34;state&#34;; its fields: &#34;title&#34;</td></tr>`)

	rec = e.post(s, url.Values{"url": {"https://kinds.example.com/items/3"}}, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	assert.Contains(t, body, `id="error-op"`)
	assert.Contains(t, body, "<td>500</td>")
	assert.NotContains(t, body, "upstream detail", "error bodies are never kept (TH-36)")
	assert.NotContains(t, body, `id="card"`)
}

// TestLabEscapesHostileUpstream (TH-10): strings from the upstream reach
// the preview, the trace, the JSON and the answers, always escaped; a
// javascript: image is refused by the provider and never becomes a link.
func TestLabEscapesHostileUpstream(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t, nil)
	_, s := e.open(t)
	rec := e.post(s, url.Values{
		"url":    {"https://kinds.example.com/items/666"},
		"source": {`item.author.name + "\"><script>alert(5)</script>"`},
	}, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	body := rec.Body.String()
	// Every hostile string is on the page, as text: never as a tag, an
	// attribute or a URL.
	for _, bad := range []string{"<script", "<img", "<iframe", `"><img src=x onerror=alert(2)>`, `href="javascript:`, `title="javascript:`, "</textarea><"} {
		assert.NotContains(t, body, bad)
	}
	assert.Contains(t, body, "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;</span>", "the enum is shown, escaped")
	assert.Contains(t, body, `&#34;avatar&#34;: &#34;javascript:alert(4)&#34;`, "the answer is shown, escaped")
	assert.Contains(t, body, `<tr class="missing"><td>avatar</td>`, "the provider refused the javascript: image")
	assert.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;", "the title is shown, escaped")
	assert.Contains(t, html.UnescapeString(body), `"</textarea><script>alert(3)</script>\"><script>alert(5)</script>"`, "the playground's result, escaped")
	assertLabHeaders(t, rec.Header())
}

// TestLabEchoesFormEscaped (TH-10): what the operator typed comes back
// into the form escaped, never as markup.
func TestLabEchoesFormEscaped(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t, nil)
	_, s := e.open(t)
	rec := e.post(s, url.Values{"url": {`https://kinds.example.com/items/1"><script>alert(1)</script>`}, "source": {`</textarea><script>alert(2)</script>`}}, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.NotContains(t, rec.Body.String(), "<script")
	assert.Contains(t, rec.Body.String(), "&lt;/textarea&gt;&lt;script&gt;alert(2)&lt;/script&gt;</textarea>")
}

// TestLabPlayground: expressions and paths evaluated against the run's
// upstream JSON with the configuration's compiler, results and errors.
func TestLabPlayground(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, mode, from, src string
		want                  string
	}{
		{name: "expression", mode: "expr", src: `join(map(item.labels, .name), ", ") + " #" + groups.id`, want: `<pre class="out" id="playground-result">&#34;bug, p1 #1&#34;</pre>`},
		{name: "path", mode: "path", src: `labels.#.name`, want: "<pre class=\"out\" id=\"playground-result\">[\n  &#34;bug&#34;,\n  &#34;p1&#34;\n]</pre>"},
		{name: "path from", mode: "path", from: "item", src: `author.name`, want: `id="playground-result">&#34;Doc Brown&#34;</pre>`},
		{name: "missing is null", mode: "path", src: `nope`, want: `id="playground-result">null</pre>`},
		{name: "compile error with suggestion", mode: "expr", src: `itme.title`, want: `id="playground-error">expression:1:1: unknown name itme (did you mean item?)</pre>`},
		{name: "helper outside the allowlist", mode: "expr", src: `now()`, want: `id="playground-error">expression:1:1: `},
		{name: "runtime error", mode: "expr", src: `date(item.title)`, want: `id="playground-error">expression:1:1: `},
		{name: "unknown response", mode: "path", from: "issue", src: `title`, want: `no request named &#34;issue&#34; in this pattern`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newLabEnv(t, nil)
			_, s := e.open(t)
			rec := e.post(s, url.Values{"url": {"https://kinds.example.com/items/1"}, "mode": {tc.mode}, "from": {tc.from}, "source": {tc.src}}, nil)
			require.Equal(t, http.StatusOK, rec.Code)
			assert.Contains(t, rec.Body.String(), tc.want)
			assert.Len(t, e.up.Requests(), 1, "one run, one upstream call")
		})
	}
}
