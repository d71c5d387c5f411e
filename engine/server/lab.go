package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
)

// The lab page (GET and POST /lab) is the operator's bench for writing a
// provider: paste a URL, optionally a credential, and see the preview as
// Notion would draw it, the trace of the run and the exact JSON Notion
// would receive, plus a playground that evaluates an expression or path
// against the upstream JSON of that run.
//
// Every run calls the upstream through the provider's own unfurl (its
// guarded client, allowlists and limits: TH-27, TH-30), so the page is a
// way to make upstream calls with the service credential. Hence:
//
//   - development mode serves it without a token;
//   - production mode serves it only with server.lab.enabled, and every
//     run needs server.admin_token in the form or an Authorization header,
//     never in the URL, where it would reach logs and histories (TH-49);
//   - runs are POSTs checked like the consent form (Sec-Fetch-Site and
//     Origin, TH-04) plus a CSRF token bound to a cookie of this page;
//   - a pasted credential is used for the one run and neither stored,
//     logged nor echoed back; the upstream JSON lives only for the render.

// labCookie holds the random session the lab's CSRF token is bound to.
const labCookie = "unfurld_lab"

// Wrong admin tokens per caller address (ipKey) before the lab answers
// 429 for the rest of the window; the token is long and random, so this
// only keeps guessing from costing upstream calls.
const (
	labFailsPerIP   = 10
	labFailsWindow  = time.Minute
	labFailsMaxKeys = 10000
)

// labMaxInput caps the URL and the playground source; the form body
// itself is capped by formBodyLimit.
const labMaxInput = 4096

// labHandler serves the lab page.
type labHandler struct {
	s *Server
	// needToken is true outside development mode.
	needToken bool
	// key signs CSRF tokens: HMAC(key, session cookie). It is random per
	// process, so a restart only makes open forms ask to be sent again.
	key   []byte
	fails *failLimiter
}

// newLabHandler returns the lab handler, or nil when the page is off:
// production mode without server.lab.enabled, or without an admin token
// to guard it (config validation refuses that; a Config built in Go
// fails closed here too).
func newLabHandler(s *Server) *labHandler {
	st := s.cfg.Settings
	dev := st.Mode == config.ModeDevelopment
	if !dev && (!st.Lab.Enabled || st.AdminToken.IsZero()) {
		return nil
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	return &labHandler{
		s: s, needToken: !dev, key: key,
		fails: newFailLimiter(labFailsPerIP, labFailsWindow, labFailsMaxKeys),
	}
}

// Register mounts /lab when the page is on; otherwise /lab is a 404.
func (h *labHandler) Register(e *echo.Echo) {
	if h == nil {
		return
	}
	e.GET("/lab", h.show)
	e.POST("/lab", h.run)
}

// registry is the provider registry this request sees.
func (h *labHandler) registry() *provider.Registry { return h.s.cfg.Registry }

// labForm is what the operator typed, echoed back into the form. The
// credential and the admin token are deliberately not part of it.
type labForm struct {
	URL, Provider, Mode, From, Source string
}

func (h *labHandler) show(c echo.Context) error {
	if !h.hostOK(c.Request().Host) {
		return h.render(c, http.StatusForbidden, labForm{Mode: provider.PlaygroundExpr}, msgLabHost, nil)
	}
	return h.render(c, http.StatusOK, labForm{Mode: provider.PlaygroundExpr}, "", nil)
}

// msgLabHost answers a development-mode request for another host name.
const msgLabHost = "In development mode the lab answers only on localhost, a loopback address or the host of server.public_url."

// hostOK guards development mode, where no token stands between the page
// and upstream calls with the service credential: a web page the
// developer visits could rebind its own DNS name to 127.0.0.1 and so
// become same-origin with the lab. Such a request still names the
// attacker's host, so only loopback names and the public URL's host are
// served. Production needs the admin token for every run, which a
// rebound page cannot know, and proxies there may rewrite Host.
func (h *labHandler) hostOK(host string) bool {
	if h.needToken {
		return true
	}
	name := host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		name = hn
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "localhost" {
		return true
	}
	if ip, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil && ip.IsLoopback() {
		return true
	}
	if u, err := url.Parse(h.s.cfg.Settings.PublicURL); err == nil && u.Hostname() != "" {
		return strings.EqualFold(u.Hostname(), name)
	}
	return false
}

func (h *labHandler) run(c echo.Context) error {
	if !h.hostOK(c.Request().Host) {
		return h.render(c, http.StatusForbidden, labForm{Mode: provider.PlaygroundExpr}, msgLabHost, nil)
	}
	// The consent form's checks, reused as they are: Sec-Fetch-Site and
	// Origin, a urlencoded body under formBodyLimit, no repeated fields.
	form, o := (&connectHandler{s: h.s}).readForm(c)
	if o != nil {
		return h.render(c, o.Page.Status, labForm{Mode: provider.PlaygroundExpr}, o.Page.Message, nil)
	}
	in := labForm{
		URL:      strings.TrimSpace(form.Get("url")),
		Provider: form.Get("provider"),
		Mode:     form.Get("mode"),
		From:     strings.TrimSpace(form.Get("from")),
		Source:   form.Get("source"),
	}
	if in.Mode != provider.PlaygroundPath {
		in.Mode = provider.PlaygroundExpr
	}
	if !h.csrfOK(c, form.Get("csrf")) {
		return h.render(c, http.StatusForbidden, in, "This form expired or was not sent from this page. Send it again.", nil)
	}
	if h.needToken {
		if status, msg := h.checkToken(c, form.Get("admin_token")); status != 0 {
			return h.render(c, status, in, msg, nil)
		}
	}
	if in.URL == "" {
		return h.render(c, http.StatusBadRequest, in, "Paste a URL to preview.", nil)
	}
	if len(in.URL) > labMaxInput || len(in.Source) > labMaxInput {
		return h.render(c, http.StatusBadRequest, in, "The URL or the expression is too long.", nil)
	}
	p, msg := h.provider(in)
	if p == nil {
		return h.render(c, http.StatusOK, in, msg, nil)
	}
	cred := provider.Credential{}
	if tok := form.Get("credential"); tok != "" {
		// Its own cache key, so no cached answer of another credential
		// is ever shown for it (NoCache skips the caches anyway).
		cred = provider.Credential{Key: "lab", Token: config.Secret(tok)}
	}
	ctx := c.Request().Context()
	if d := h.s.cfg.Settings.UnfurlTimeout.D(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	var answers []provider.Exchange
	r := p.Unfurl(ctx, in.URL, cred, provider.UnfurlOptions{
		Trace: true, NoCache: true,
		Record: func(x provider.Exchange) { answers = append(answers, x) },
	})
	return h.render(c, http.StatusOK, in, "", newLabRun(p, in, r, answers))
}

// provider picks the provider named in the form, or the first whose
// patterns match the URL.
func (h *labHandler) provider(in labForm) (*provider.Provider, string) {
	reg := h.registry()
	if in.Provider != "" {
		p, ok := reg.Get(in.Provider)
		if !ok {
			return nil, "There is no provider named " + strconv.Quote(in.Provider) + "."
		}
		return p, ""
	}
	p, _, err := reg.Match(in.URL)
	if err != nil {
		return nil, "No provider matches this URL: " + err.Error() + "."
	}
	return p, ""
}

// checkToken compares the admin token from the form or an Authorization
// header through fixed-length digests in constant time, as the admin
// route does. It returns 0 when the token is right, else the status and
// message: 401 for no token, 403 for a wrong one, 429 after too many
// wrong ones from one address.
func (h *labHandler) checkToken(c echo.Context, field string) (int, string) {
	tok := field
	if tok == "" {
		scheme, bearer, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			tok = bearer
		}
	}
	key, now := ipKey(c.RealIP()), h.s.cfg.Now()
	if wait := h.fails.blocked(key, now); wait > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		return http.StatusTooManyRequests, "Too many wrong admin tokens. Try again in a minute."
	}
	if tok == "" {
		return http.StatusUnauthorized, "Enter the admin token (server.admin_token) to run the lab."
	}
	got := sha256.Sum256([]byte(tok))
	want := sha256.Sum256([]byte(h.s.cfg.Settings.AdminToken.Reveal()))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		h.fails.fail(key, now)
		return http.StatusForbidden, "The admin token is wrong."
	}
	return 0, ""
}

// session returns the lab cookie's value, setting a new random one when
// the request has none or a malformed one.
func (h *labHandler) session(c echo.Context) string {
	if ck, err := c.Cookie(labCookie); err == nil && validSession(ck.Value) {
		return ck.Value
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	c.SetCookie(&http.Cookie{
		Name:     labCookie,
		Value:    v,
		Path:     h.s.basePath() + "/lab",
		HttpOnly: true,
		Secure:   strings.HasPrefix(h.s.cfg.Settings.PublicURL, "https://"),
		// Strict: the lab is only ever reached from itself.
		SameSite: http.SameSiteStrictMode,
	})
	// Later reads in this request see the new session.
	c.Request().AddCookie(&http.Cookie{Name: labCookie, Value: v})
	return v
}

func validSession(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == 32
}

// csrfToken is the form's token for session: HMAC-SHA256 under the
// process key, so a cookie an attacker plants (from a sibling subdomain)
// is useless without the token only our page shows.
func (h *labHandler) csrfToken(session string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfOK checks the form's token against the request's session cookie.
func (h *labHandler) csrfOK(c echo.Context, token string) bool {
	ck, err := c.Cookie(labCookie)
	if err != nil || !validSession(ck.Value) || token == "" {
		return false
	}
	return hmac.Equal([]byte(token), []byte(h.csrfToken(ck.Value)))
}

// render writes the lab page. A template error is returned before
// anything is written, for the error handler.
func (h *labHandler) render(c echo.Context, status int, in labForm, msg string, run *labRun) error {
	providers := make([]string, 0, len(h.registry().All()))
	for _, p := range h.registry().All() {
		providers = append(providers, p.Name)
	}
	v := labView{
		Action:    h.s.basePath() + "/lab",
		CSRF:      h.csrfToken(h.session(c)),
		NeedToken: h.needToken,
		Providers: providers,
		Form:      in,
		Error:     msg,
		Run:       run,
	}
	return writeLabPage(c.Response(), status, v)
}
