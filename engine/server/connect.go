package server

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/unfurld/unfurld/engine/connect"
	"github.com/unfurld/unfurld/engine/provider"
)

// flowCookie holds the handle of a pending connection flow. It is scoped
// to one provider's path, HttpOnly, SameSite=Lax (the upstream's callback
// is a top-level cross-site GET that must carry it) and Secure whenever
// the public URL is https (TH-03, TH-06).
const flowCookie = "unfurld_flow"

// formBodyLimit caps the consent and API-key forms (TH-47).
const formBodyLimit = 8 << 10

// connectHandler serves the browser side of the connection flow (protocol
// 1.5 R1 to R3) over connect.Service.
type connectHandler struct {
	s   *Server
	svc *connect.Service
	// starts counts flow starts per caller address (TH-12): each start
	// writes a pending record, so an unauthenticated GET must not be
	// free.
	starts *failLimiter
	// shares bounds the live flows per caller address (flowshare.go).
	shares *flowShare
}

// Flow-start budget per caller address (ipKey).
const (
	flowStartsPerIP   = 30
	flowStartsWindow  = time.Minute
	flowStartsMaxKeys = 100000
)

func newConnectHandler(s *Server, svc *connect.Service) *connectHandler {
	return &connectHandler{
		s: s, svc: svc,
		starts: newFailLimiter(flowStartsPerIP, flowStartsWindow, flowStartsMaxKeys),
		shares: newFlowShare(svc.MaxFlows(), svc.FlowTTL()),
	}
}

// Register mounts the flow routes on a /providers/:provider group.
func (h *connectHandler) Register(g *echo.Group) {
	g.GET("/authorize", h.authorize)
	g.GET("/connect", h.next)
	g.GET("/callback", h.callback)
	g.POST("/api-key", h.apiKey)
	g.POST("/consent", h.consent)
}

func (h *connectHandler) provider(c echo.Context) (*provider.Provider, error) {
	p, ok := h.s.cfg.Registry.Get(c.Param("provider"))
	if !ok {
		return nil, h.page(c, nil, &connect.Outcome{Page: &connect.Page{Kind: connect.PageError, Status: 404, Title: "Not found", Message: "There is no such service here."}})
	}
	return p, nil
}

func (h *connectHandler) authorize(c echo.Context) error {
	p, err := h.provider(c)
	if p == nil {
		return err
	}
	// Addresses are grouped as the token URL groups them (IPv6 by /64),
	// so one host cannot multiply its budget by its addresses.
	key, now := ipKey(c.RealIP()), h.s.cfg.Now()
	if wait := h.starts.blocked(key, now); wait > 0 {
		return h.slowDown(c, p, wait, "Too many sign-ins from your network. Try again in a minute.")
	}
	if wait := h.shares.take(key, now); wait > 0 {
		return h.slowDown(c, p, wait, "Too many sign-ins from your network are in progress. Finish one, or try again later.")
	}
	h.starts.fail(key, now) // counts starts, not failures
	o := h.svc.Begin(c.Request().Context(), p, c.Request().URL.RawQuery)
	if o.Handle == "" {
		h.shares.giveBack(key) // no flow was stored
	}
	return h.respond(c, p, o)
}

// slowDown answers 429 with Retry-After (TH-12).
func (h *connectHandler) slowDown(c echo.Context, p *provider.Provider, wait time.Duration, msg string) error {
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
	return h.page(c, p, &connect.Outcome{Page: &connect.Page{Kind: connect.PageError, Status: http.StatusTooManyRequests, Title: "Slow down", Message: msg}})
}

func (h *connectHandler) next(c echo.Context) error {
	p, err := h.provider(c)
	if p == nil {
		return err
	}
	return h.respond(c, p, h.svc.Continue(c.Request().Context(), p, h.handle(c)))
}

func (h *connectHandler) callback(c echo.Context) error {
	p, err := h.provider(c)
	if p == nil {
		return err
	}
	return h.respond(c, p, h.svc.Callback(c.Request().Context(), p, h.handle(c), c.Request().URL.RawQuery))
}

func (h *connectHandler) apiKey(c echo.Context) error {
	p, err := h.provider(c)
	if p == nil {
		return err
	}
	form, o := h.readForm(c)
	if o != nil {
		return h.respond(c, p, o)
	}
	return h.respond(c, p, h.svc.SubmitAPIKey(c.Request().Context(), p, h.handle(c), form.Get("csrf"), form.Get("decision"), form.Get))
}

func (h *connectHandler) consent(c echo.Context) error {
	p, err := h.provider(c)
	if p == nil {
		return err
	}
	form, o := h.readForm(c)
	if o != nil {
		return h.respond(c, p, o)
	}
	return h.respond(c, p, h.svc.Decide(c.Request().Context(), p, h.handle(c), form.Get("csrf"), form.Get("decision")))
}

// handle reads the flow cookie.
func (h *connectHandler) handle(c echo.Context) string {
	ck, err := c.Cookie(flowCookie)
	if err != nil {
		return ""
	}
	return ck.Value
}

// readForm checks that a POST comes from our own page (TH-04: Sec-Fetch-
// Site and Origin, on top of the CSRF token the service checks) and reads
// its small urlencoded body. Query parameters are ignored.
func (h *connectHandler) readForm(c echo.Context) (url.Values, *connect.Outcome) {
	forbidden := &connect.Outcome{Page: &connect.Page{Kind: connect.PageError, Status: 403, Title: "Forbidden", Message: "This form was not sent from this site."}}
	req := c.Request()
	site := req.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" {
		return nil, forbidden
	}
	// Our pages set Referrer-Policy no-referrer (TH-03), so a browser
	// sends "Origin: null" on their form POST (Fetch, "serializing a
	// request origin"); Sec-Fetch-Site then vouches for the origin.
	if origin := req.Header.Get("Origin"); origin != "" && origin != h.s.publicOrigin() && (origin != "null" || site != "same-origin") {
		return nil, forbidden
	}
	bad := &connect.Outcome{Page: &connect.Page{Kind: connect.PageError, Status: 400, Title: "Invalid form", Message: "The form could not be read. Reload the page and try again."}}
	mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationForm {
		return nil, bad
	}
	req.Body = http.MaxBytesReader(c.Response(), req.Body, formBodyLimit)
	if err := req.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			bad.Page.Status = http.StatusRequestEntityTooLarge
		case readTimedOut(err):
			bad.Page.Status = http.StatusRequestTimeout
			bad.Page.Title, bad.Page.Message = "Too slow", "The form took too long to arrive. Go back and send it again."
		}
		return nil, bad
	}
	for _, vs := range req.PostForm {
		if len(vs) > 1 {
			return nil, bad
		}
	}
	return req.PostForm, nil
}

// respond turns an outcome into a redirect or a page, setting or clearing
// the flow cookie.
func (h *connectHandler) respond(c echo.Context, p *provider.Provider, o *connect.Outcome) error {
	w := c.Response()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	switch {
	case o.Handle != "":
		h.setCookie(c, p, o.Handle, int(h.svc.FlowTTL().Seconds()))
	case o.Clear:
		h.setCookie(c, p, "", -1)
	}
	if o.Page != nil {
		return h.page(c, p, o)
	}
	status := http.StatusSeeOther
	if o.ToNotion {
		status = http.StatusFound // protocol 3.3
	}
	return c.Redirect(status, o.Redirect)
}

func (h *connectHandler) setCookie(c echo.Context, p *provider.Provider, value string, maxAge int) {
	c.SetCookie(&http.Cookie{
		Name:     flowCookie,
		Value:    value,
		Path:     h.s.basePath() + "/providers/" + p.Name + "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   strings.HasPrefix(h.s.cfg.Settings.PublicURL, "https://"),
		SameSite: http.SameSiteLaxMode,
	})
}

// page renders o.Page with the page templates.
func (h *connectHandler) page(c echo.Context, p *provider.Provider, o *connect.Outcome) error {
	pg := o.Page
	w := c.Response()
	if o.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(o.RetryAfter))
	}
	var action string
	if p != nil {
		action = h.s.basePath() + "/providers/" + p.Name
	}
	switch pg.Kind {
	case connect.PageConsent:
		return renderConsent(w, consentPage{
			ServiceName: pg.ServiceName, IconURL: pg.IconURL, AccountName: pg.AccountName,
			Shares: pg.Shares, CSRFToken: pg.CSRF, ActionURL: action + "/consent",
		}, pg.FormAction)
	case connect.PageAPIKey:
		return renderAPIKey(w, apiKeyPage{
			ServiceName: pg.ServiceName, IconURL: pg.IconURL, HelpText: pg.HelpText, HelpURL: pg.HelpURL,
			CSRFToken: pg.CSRF, ActionURL: action + "/api-key", Error: pg.Error, Fields: keyFields(pg.Fields),
		}, pg.FormAction)
	default:
		return renderError(w, errorPage{Title: pg.Title, Message: pg.Message, Status: pg.Status})
	}
}

// publicOrigin is scheme://host of the public URL, for Origin checks.
func (s *Server) publicOrigin() string {
	u, err := url.Parse(s.cfg.Settings.PublicURL)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// basePath is the path prefix of the public URL, "" at the root.
func (s *Server) basePath() string {
	u, err := url.Parse(s.cfg.Settings.PublicURL)
	if err != nil {
		return ""
	}
	return strings.TrimRight(u.Path, "/")
}

// keyFields turns the engine's form fields into the template's, with an
// element id derived from the input name.
func keyFields(in []connect.KeyField) []apiKeyField {
	out := make([]apiKeyField, len(in))
	for i, f := range in {
		out[i] = apiKeyField{Input: f.Input, ID: strings.ReplaceAll(f.Input, "_", "-"), Label: f.Label, Type: f.Type, Value: f.Value}
	}
	return out
}
