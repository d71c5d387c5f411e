package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/unfurld/unfurld/engine/oauth"
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
	authz := c.Request().Header.Get(echo.HeaderAuthorization)
	if authz == "" {
		return nil, &bearerError{reason: "no bearer token"}
	}
	scheme, tok, found := strings.Cut(authz, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
		return nil, &bearerError{presented: true, reason: "malformed authorization header"}
	}
	ctx := c.Request().Context()
	t, err := h.s.cfg.Store.GetToken(ctx, store.KindAccess, oauth.Digest(tok))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, &bearerError{presented: true, reason: "unknown token"}
	case err != nil:
		return nil, fmt.Errorf("look up token: %w", err)
	case t.Provider != p.Name:
		// A token of provider A on B's route (TH-27).
		return nil, &bearerError{presented: true, reason: "token of another provider"}
	case t.Expired(h.s.cfg.Now().Add(-tokenGrace)):
		return nil, &bearerError{presented: true, reason: "expired token"}
	}
	cl := &caller{provider: p, token: t}
	if t.ConnectionID != "" {
		conn, err := h.s.cfg.Store.GetConnection(ctx, t.ConnectionID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, &bearerError{presented: true, reason: "token of a deleted connection"}
		case err != nil:
			return nil, fmt.Errorf("look up connection: %w", err)
		}
		cl.conn = conn
	}
	return cl, nil
}

// unfurl answers R5 (protocol 5.2): authenticate, read {"uri"}, run the
// provider, answer the envelope, record the subscription.
func (h *unfurlHandler) unfurl(c echo.Context) error {
	cl, err := h.authenticate(c)
	if err != nil {
		return err
	}
	uri, err := h.readURI(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), h.s.cfg.Settings.UnfurlTimeout.D())
	defer cancel()

	var r *provider.Result
	if cl.conn.Status == store.StatusReconnect {
		r = cl.provider.ReconnectResult(uri)
	} else {
		r = cl.provider.Unfurl(ctx, uri, provider.Credential{Key: credentialKey(cl)}, provider.UnfurlOptions{})
	}
	if r.Error == nil && cl.conn.ID != "" {
		h.subscribe(c.Request().Context(), cl, uri, r)
	}
	status := http.StatusOK
	if r.Error != nil {
		status = h.s.cfg.Settings.UnfurlErrorStatus
	}
	return c.Blob(status, echo.MIMEApplicationJSON, r.Body)
}

// credentialKey names whose upstream credential an unfurl runs with. Until
// per-user upstream credentials exist every connection shares the
// provider's service-wide token, so they share cache entries too.
func credentialKey(cl *caller) string {
	if len(cl.conn.UpstreamCredential) > 0 {
		return cl.conn.ID
	}
	return "static"
}

// subscribe records (provider, connection, uri) for live updates
// (protocol 1.6). PutSubscription writes only when the attributes changed,
// so a warm unfurl costs no fsync'd commit. A store failure must not cost
// the user their preview: it is logged, not returned.
func (h *unfurlHandler) subscribe(ctx context.Context, cl *caller, uri string, r *provider.Result) {
	now := h.s.cfg.Now().UTC()
	_, err := h.s.cfg.Store.PutSubscription(ctx, store.Subscription{
		SubscriptionKey: store.SubscriptionKey{Provider: cl.provider.Name, ConnectionID: cl.conn.ID, URI: uri},
		AttrHash:        r.Hash,
		CreatedAt:       now,
		UpdatedAt:       now,
	})
	if err != nil {
		h.s.log.WarnContext(ctx, "record subscription", "provider", cl.provider.Name, "err", err)
	}
}

// readURI reads {"uri": "..."} strictly: a JSON object with a string uri,
// one value, no trailing data, valid UTF-8; unknown fields tolerated
// because Notion may add some (TH-48).
func (h *unfurlHandler) readURI(c echo.Context) (string, error) {
	req := c.Request()
	mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return "", &requestError{status: http.StatusUnsupportedMediaType, msg: "content type must be application/json"}
	}
	body, err := h.readBody(c)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(body) {
		return "", &requestError{status: http.StatusBadRequest, msg: "body is not valid UTF-8"}
	}
	var in struct {
		URI *json.RawMessage `json:"uri"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		return "", &requestError{status: http.StatusBadRequest, msg: "body must be a JSON object like {\"uri\": \"https://...\"}"}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", &requestError{status: http.StatusBadRequest, msg: "body must hold exactly one JSON object"}
	}
	if in.URI == nil {
		return "", &requestError{status: http.StatusBadRequest, msg: "uri is missing"}
	}
	var uri string
	if err := json.Unmarshal(*in.URI, &uri); err != nil {
		return "", &requestError{status: http.StatusBadRequest, msg: "uri must be a string"}
	}
	if uri == "" {
		return "", &requestError{status: http.StatusBadRequest, msg: "uri is empty"}
	}
	return uri, nil
}

// readBody reads the body under the configured cap (TH-47).
func (h *unfurlHandler) readBody(c echo.Context) ([]byte, error) {
	limit := int64(h.s.cfg.Settings.UnfurlBodyLimit)
	req := c.Request()
	if req.ContentLength > limit {
		return nil, echo.NewHTTPError(http.StatusRequestEntityTooLarge)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, echo.NewHTTPError(http.StatusRequestEntityTooLarge)
		}
		return nil, &requestError{status: http.StatusBadRequest, msg: "could not read the body"}
	}
	return body, nil
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
