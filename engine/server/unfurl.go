package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/unfurld/unfurld/engine/connect"
	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
)

// tokenGrace tolerates clock skew between Notion and us on access-token
// expiry (protocol 10 #9).
const tokenGrace = 2 * time.Minute

// unfurlHandler serves the Unfurl Callback URL (protocol 5).
type unfurlHandler struct{ s *Server }

// Register mounts the unfurl routes on a /providers/:provider group.
func (h *unfurlHandler) Register(g *echo.Group) {
	g.POST("/unfurl", h.unfurl)
	g.DELETE("/unfurl", h.delete)
}

// caller is an authenticated bearer on a provider's route.
type caller struct {
	provider *provider.Provider
	token    store.Token
	conn     store.Connection
}

// authenticate checks the bearer token for the route's provider (TH-26,
// TH-27). Tokens in the query string are ignored, never read (RFC 6750
// 2.3).
func (h *unfurlHandler) authenticate(c echo.Context) (*caller, error) {
	p, ok := h.s.cfg.Registry.Get(c.Param("provider"))
	if !ok {
		return nil, echo.NewHTTPError(http.StatusNotFound, "unknown provider")
	}
	// RFC 6750 3.1: a request with no bearer credential (no header, an
	// empty "Bearer", another scheme) gets the challenge without an error
	// code; a presented token that is malformed, unknown or expired gets
	// invalid_token (TH-26).
	scheme, tok, _ := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
	tok = strings.TrimLeft(tok, " ") // "Bearer" 1*SP b64token
	switch {
	case !strings.EqualFold(scheme, "Bearer"):
		return nil, &bearerError{reason: "no bearer token"}
	case tok == "":
		return nil, &bearerError{reason: "empty bearer token"}
	case strings.ContainsAny(tok, " \t"):
		return nil, &bearerError{presented: true, reason: "malformed authorization header"}
	}
	now := h.s.cfg.Now()
	b, err := h.s.lookupBearer(c.Request().Context(), issuer.Digest(tok), now)
	switch {
	case err != nil:
		return nil, err
	case b.Token.Provider != p.Name:
		// A token of provider A on B's route (TH-27).
		return nil, &bearerError{presented: true, reason: "token of another provider"}
	case b.Token.Expired(now.Add(-tokenGrace)):
		return nil, &bearerError{presented: true, reason: "expired token"}
	}
	return &caller{provider: p, token: b.Token, conn: b.Conn}, nil
}

// unfurlRoute is the unfurl callback's route, as echo names it.
const unfurlRoute = "/providers/:provider/unfurl"

// unfurlEvent is what one unfurl callback did, for its request line and
// metrics. It lives on the stack: a warm unfurl allocates nothing for
// it.
type unfurlEvent struct {
	provider string // "" until the route's provider is known to be ours
	result   *provider.Result
	// outcome and cause when the request was refused before the
	// provider ran.
	outcome, cause string
}

// unfurl answers R5 (protocol 5.2) and then accounts for it: metrics
// by provider, pattern and outcome, and one request line that explains
// the answer. It writes error answers itself, so that the line carries
// the status they got.
func (h *unfurlHandler) unfurl(c echo.Context) error {
	start := h.s.cfg.Now()
	var ev unfurlEvent
	if err := h.serveUnfurl(c, &ev); err != nil {
		c.Error(err)
		ev.outcome, ev.cause = refusalOutcome(err)
	}
	h.account(c, &ev, h.s.cfg.Now().Sub(start))
	return nil
}

// serveUnfurl authenticates, reads {"uri"}, runs the provider, records
// the subscription and answers the envelope. The answer waits for the
// subscription to be on disk: a 200 means the link is subscribed, even
// across a crash.
func (h *unfurlHandler) serveUnfurl(c echo.Context, ev *unfurlEvent) error {
	if _, ok := h.s.cfg.Registry.Get(c.Param("provider")); ok {
		ev.provider = c.Param("provider")
	}
	cl, err := h.authenticate(c)
	if err != nil {
		return err
	}
	uri, err := h.readURI(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	r := h.run(ctx, cl, uri)
	h.logFailure(ctx, cl.provider.Name, r)
	if r.Error == nil && cl.conn.ID != "" {
		r = h.subscribe(ctx, cl, uri, r)
	}
	ev.result = r
	status := http.StatusOK
	if r.Error != nil {
		status = h.s.cfg.Settings.UnfurlErrorStatus
	}
	err = c.Blob(status, echo.MIMEApplicationJSON, r.Body)
	h.noteFailure(c.Request().Context(), cl, uri, r)
	return err
}

// noteFailure keeps a failed unfurl on the caller's connection for
// `unfurld status --connection`, after the answer is written so Notion
// does not wait for the commit. Successful and cached answers write
// nothing; neither does a connection already waiting for a reconnect,
// whose reason is recorded already. A store failure is logged: the
// record is a diagnostic, not part of the answer.
func (h *unfurlHandler) noteFailure(ctx context.Context, cl *caller, uri string, r *provider.Result) {
	if r.Error == nil || r.Cached || cl.conn.ID == "" || cl.conn.Status == store.StatusReconnect {
		return
	}
	ev := connect.UnfurlFailure(h.s.cfg.Now(), uri, r)
	if err := connect.NoteFailure(ctx, h.s.cfg.Store, cl.conn, ev); err != nil {
		h.s.log.WarnContext(ctx, "record failed unfurl", "provider", cl.provider.Name, "err", err)
	}
}

// resultOutcome classifies an answered envelope (protocol 5.4): error
// operations carry 401/403 for "reconnect", 5xx for "try later" and
// 400/404 for "not found".
func resultOutcome(r *provider.Result) string {
	switch {
	case r.Error == nil:
		return OutcomeAttributes
	case r.Error.Status == http.StatusUnauthorized || r.Error.Status == http.StatusForbidden:
		return OutcomeReconnect
	case r.Error.Status >= 500:
		return OutcomeTryLater
	}
	return OutcomeNotFound
}

// refusalOutcome classifies a callback refused before the provider ran.
func refusalOutcome(err error) (outcome, cause string) {
	var be *bearerError
	var re *requestError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &be):
		return OutcomeUnauthorized, be.reason
	case errors.As(err, &re):
		return OutcomeBadRequest, re.msg
	case errors.As(err, &he) && he.Code < 500:
		return OutcomeBadRequest, http.StatusText(he.Code)
	}
	return OutcomeError, "internal error"
}

// account counts the unfurl and writes its request line: provider,
// pattern, outcome, cause, upstream latency (the request id comes from
// the context). At debug level, one more line per attribute left out
// says why. Nothing here names a token or a credential (TH-49): causes
// name hosts and fields, never a URL query or an upstream body.
func (h *unfurlHandler) account(c echo.Context, ev *unfurlEvent, d time.Duration) {
	pattern, outcome, cache := patternNone, ev.outcome, ""
	r := ev.result
	if r != nil {
		outcome, cache = resultOutcome(r), "miss"
		if r.Cached {
			cache = "hit"
		}
		if r.Pattern != "" {
			pattern = r.Pattern
		}
	}
	// A provider name that is not ours is never a label: it is the
	// caller's text.
	if m := h.s.cfg.Metrics; m != nil && ev.provider != "" {
		m.Unfurl(ev.provider, pattern, outcome, cache, d)
	}
	req := c.Request()
	ctx := req.Context()
	status := c.Response().Status
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	// Building the attributes costs allocations; production runs at
	// warn, where this line is not written.
	if !h.s.log.Enabled(ctx, level) {
		return
	}
	var upstream time.Duration
	cause := ev.cause
	if r != nil {
		upstream = r.UpstreamLatency
		cause = resultCause(r)
	}
	h.s.log.LogAttrs(ctx, level, "request",
		slog.String("method", req.Method),
		slog.String("path", req.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.String("provider", ev.provider),
		slog.String("pattern", pattern),
		slog.String("outcome", outcome),
		slog.String("cause", cause),
		slog.Duration("upstream_latency", upstream),
	)
	if r == nil || len(r.Missing) == 0 || !h.s.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	for _, m := range r.Missing {
		h.s.log.LogAttrs(ctx, slog.LevelDebug, "attribute left out",
			slog.String("provider", ev.provider),
			slog.String("pattern", pattern),
			slog.String("attribute", m.ID),
			slog.String("reason", m.Why),
		)
	}
}

// resultCause says in a few words why a result came out as it did.
func resultCause(r *provider.Result) string {
	switch {
	case r.Cached && r.Error == nil:
		return "cache hit"
	case r.Cached:
		return "cache hit: " + r.Cause
	case r.Error == nil:
		return "fetched"
	}
	return r.Cause
}

// logFailure logs, once per unfurl answered, an upstream failure or a
// refused outbound call, so an operator sees why Notion shows "try later"
// (TH-36, TH-49: the cause names the host, never a credential, a URL
// query or the upstream's body). Cache hits are not logged: their
// upstream call, if any, was logged when it was made, and failures are
// not cached.
func (h *unfurlHandler) logFailure(ctx context.Context, providerName string, r *provider.Result) {
	f := r.Failure
	if f == nil || r.Cached {
		return
	}
	args := []any{"provider", providerName, "pattern", f.Pattern, "request", f.Request, "kind", f.Kind}
	if f.Status != 0 {
		args = append(args, "status", f.Status)
	}
	args = append(args, "err", f.Err)
	h.s.log.WarnContext(ctx, "unfurl upstream failure", args...)
}

// subscribe records (provider, connection, uri) for live updates
// (protocol 1.6) and returns the result to answer. An unchanged
// subscription costs a map lookup; a new one waits for the group commit
// that carries it with the other unfurls of the moment (engine/store/
// cached). If that commit fails, the preview is not answered as if the
// link were subscribed: Notion is asked to try later, and its retry
// records it again.
func (h *unfurlHandler) subscribe(ctx context.Context, cl *caller, uri string, r *provider.Result) *provider.Result {
	now := h.s.cfg.Now().UTC()
	err := h.s.cfg.Store.RecordSubscription(ctx, store.Subscription{
		SubscriptionKey: store.SubscriptionKey{Provider: cl.provider.Name, ConnectionID: cl.conn.ID, URI: uri},
		AttrHash:        r.Hash,
		CreatedAt:       now,
		UpdatedAt:       now,
		// The store keeps it a day at a time (store.UnfurledGranularity),
		// so a warm link still writes nothing on most unfurls.
		UnfurledAt: now,
	})
	if err != nil {
		h.s.log.WarnContext(ctx, "subscription not recorded", "provider", cl.provider.Name, "err", err)
		tl := cl.provider.TryLaterResult(uri) // a new result: ours to change
		tl.Cause = "subscription not recorded"
		return tl
	}
	return r
}

// readURI reads {"uri": "..."} strictly: a JSON object with a string uri,
// one value, no trailing data, valid UTF-8; unknown fields tolerated
// because Notion may add some (TH-48).
func (h *unfurlHandler) readURI(c echo.Context) (string, error) {
	req := c.Request()
	// The header Notion sends is exactly application/json; only other
	// spellings (parameters, case, spaces) need the media-type parser.
	if ct := req.Header.Get(echo.HeaderContentType); ct != echo.MIMEApplicationJSON {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != echo.MIMEApplicationJSON {
			return "", &requestError{status: http.StatusUnsupportedMediaType, msg: "content type must be application/json"}
		}
	}
	body, err := h.readBody(c)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(body) {
		return "", &requestError{status: http.StatusBadRequest, msg: "body is not valid UTF-8"}
	}
	// One Unmarshal checks the syntax of the whole body (trailing data
	// included) and decodes the one field we read.
	var in struct {
		URI *string `json:"uri"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return "", bodyError(body, err)
	}
	if in.URI == nil {
		return "", &requestError{status: http.StatusBadRequest, msg: "uri is missing"}
	}
	if *in.URI == "" {
		return "", &requestError{status: http.StatusBadRequest, msg: "uri is empty"}
	}
	return *in.URI, nil
}

// bodyError says what is wrong with an unfurl body json.Unmarshal
// refused. It runs on failures only, so it may decode twice.
func bodyError(body []byte, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field == "uri" {
		return &requestError{status: http.StatusBadRequest, msg: "uri must be a string"}
	}
	var first json.RawMessage
	if dec := json.NewDecoder(bytes.NewReader(body)); dec.Decode(&first) == nil && len(first) > 0 && first[0] == '{' {
		return &requestError{status: http.StatusBadRequest, msg: "body must hold exactly one JSON object"}
	}
	return &requestError{status: http.StatusBadRequest, msg: "body must be a JSON object like {\"uri\": \"https://...\"}"}
}

// readBody reads the body under the configured cap (TH-47).
func (h *unfurlHandler) readBody(c echo.Context) ([]byte, error) {
	limit := int64(h.s.cfg.Settings.UnfurlBodyLimit)
	req := c.Request()
	if req.ContentLength > limit {
		return nil, echo.NewHTTPError(http.StatusRequestEntityTooLarge)
	}
	body, err := readAll(http.MaxBytesReader(c.Response(), req.Body, limit), req.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, echo.NewHTTPError(http.StatusRequestEntityTooLarge)
		}
		if readTimedOut(err) {
			return nil, &requestError{status: http.StatusRequestTimeout, msg: msgReadTimeout}
		}
		return nil, &requestError{status: http.StatusBadRequest, msg: "could not read the body"}
	}
	return body, nil
}

// readAll reads r to its end. With an announced length the buffer starts
// at that length plus bytes.MinRead, so ReadFrom reads the body and its
// EOF in one allocation instead of growing from a small buffer (issue
// 2). Without one (size -1) it is io.ReadAll: Notion sends the length,
// and the body is a few hundred bytes at most.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size < 0 {
		return io.ReadAll(r)
	}
	var buf bytes.Buffer
	buf.Grow(int(size) + bytes.MinRead)
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// delete answers R8 (protocol 5.6): every preview of a URL was deleted in
// the workspace, so we stop tracking that (uri, connection). The body is
// undocumented: uri is read from a JSON or form body or the query. We
// require the bearer (TH-39: a forged DELETE must change nothing) and
// answer 200 {} whether or not anything was tracked, so the reply is no
// oracle (RFC 7009 2.2).
func (h *unfurlHandler) delete(c echo.Context) error {
	cl, err := h.authenticate(c)
	if err != nil {
		return err
	}
	body, err := h.readBody(c)
	if err != nil {
		return err
	}
	uri := deleteURI(c.Request(), body)
	ctx := c.Request().Context()
	h.s.log.InfoContext(ctx, "unfurl delete", "provider", cl.provider.Name, "uri_present", uri != "", "body_bytes", len(body))
	if uri != "" && cl.conn.ID != "" {
		err := h.s.cfg.Store.DeleteSubscription(ctx, store.SubscriptionKey{Provider: cl.provider.Name, ConnectionID: cl.conn.ID, URI: uri})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete subscription: %w", err)
		}
	}
	cl.provider.Forget()
	return c.JSON(http.StatusOK, struct{}{})
}

// deleteURI finds the uri in whatever shape Notion sends (protocol 5.6,
// 10 #17).
func deleteURI(req *http.Request, body []byte) string {
	var in struct {
		URI string `json:"uri"`
	}
	if json.Unmarshal(body, &in) == nil && in.URI != "" {
		return in.URI
	}
	if form, err := url.ParseQuery(string(body)); err == nil && form.Get("uri") != "" {
		return form.Get("uri")
	}
	return req.URL.Query().Get("uri")
}
