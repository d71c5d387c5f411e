package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
)

// Limits of the logged body shape (TH-49: field names only, bounded).
const (
	shapeMaxLen   = 1024
	shapeMaxDepth = 6
	shapeMaxItems = 3
	shapeMaxName  = 64
)

// credentialFields are the body fields that may carry one of our tokens,
// in protocol 8's order of likelihood.
var credentialFields = []string{"access_token", "token", "refresh_token"}

// deletedHandler serves the Deleted Token Callback URL (protocol 8, R9):
// Notion tells us a user removed a preview or disconnected, so we drop
// that user's connection. The body is undocumented, so it is read in any
// shape, but only one of our own tokens identifies the user: other fields
// (external_account.key, bot_id, workspace_id...) are logged, never acted
// on, because anyone can send them (TH-39).
type deletedHandler struct{ s *Server }

// Register mounts the callback on a /providers/:provider group: DELETE as
// documented, POST in case (protocol 8 step 1).
func (h *deletedHandler) Register(g *echo.Group) {
	g.DELETE("/deleted", h.deleted)
	g.POST("/deleted", h.deleted)
}

// deleted answers 200 with an empty body whether or not a presented token
// was known, so the answer is no oracle (RFC 7009 2.2); a request without
// any credential gets 401 and changes nothing (TH-39).
func (h *deletedHandler) deleted(c echo.Context) error {
	p, ok := h.s.cfg.Registry.Get(c.Param("provider"))
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "unknown provider")
	}
	req := c.Request()
	body, err := (&unfurlHandler{s: h.s}).readBody(c)
	if err != nil {
		return err
	}
	fields, shape := looseBody(body)
	scheme, bearer := bearerOf(req.Header.Values(echo.HeaderAuthorization))
	candidates := presentedTokens(bearer, fields)

	ctx := req.Context()
	mt, _, _ := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	// The raw shape teaches us what Notion really sends (protocol 8 step
	// 6), with every value left out (TH-49).
	logArgs := []any{
		"provider", p.Name, "method", req.Method, "content_type", logToken(mt),
		"authorization", scheme, "body_shape", shape, "body_bytes", len(body),
		"headers", headerNames(req.Header), "tokens_presented", len(candidates),
	}
	if len(candidates) == 0 {
		h.s.log.InfoContext(ctx, "deleted token callback without credential", logArgs...)
		return &bearerError{reason: "deleted token callback without credential"}
	}
	removed, err := h.revoke(c, p, candidates)
	if err != nil {
		return err
	}
	h.s.log.InfoContext(ctx, "deleted token callback", append(logArgs, "connections_deleted", removed)...)
	return c.NoContent(http.StatusOK)
}

// revoke deletes the connection of every presented token that is surely
// ours: issued for this provider, still live (not a spent refresh token).
// An expired access token still identifies its connection: Notion may
// well hold only that when the user disconnects. Unknown tokens are
// skipped silently. Disconnect takes the connection's tokens and
// subscriptions with it in one transaction (TH-40, TH-44), and revokes its
// upstream grant after the commit.
func (h *deletedHandler) revoke(c echo.Context, p *provider.Provider, candidates []string) (int, error) {
	ctx := c.Request().Context()
	st := h.s.cfg.Store
	removed := 0
	done := map[string]bool{}
	for _, tok := range candidates {
		kind, ok := issuer.KindOf(tok)
		if !ok || (kind != store.KindAccess && kind != store.KindRefresh) {
			continue
		}
		t, err := st.GetToken(ctx, kind, issuer.Digest(tok))
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return removed, fmt.Errorf("look up token: %w", err)
		}
		if t.Provider != p.Name || !t.ConsumedAt.IsZero() || done[t.GrantID+"\x00"+t.ConnectionID] {
			continue
		}
		done[t.GrantID+"\x00"+t.ConnectionID] = true
		if t.ConnectionID != "" {
			// Erased locally, then revoked upstream (Disconnect).
			err := h.s.Disconnect(ctx, t.ConnectionID)
			switch {
			case err == nil:
				removed++
			case !errors.Is(err, store.ErrNotFound):
				return removed, fmt.Errorf("delete connection: %w", err)
			}
		}
		// Tokens without a connection, or left behind by one already
		// gone, go by their grant.
		if _, err := st.RevokeGrant(ctx, t.GrantID); err != nil {
			return removed, fmt.Errorf("revoke grant: %w", err)
		}
	}
	if removed > 0 {
		// Cached previews may have been fetched with the deleted
		// connection's credential.
		p.Forget()
	}
	return removed, nil
}

// bearerOf returns the Authorization scheme for the log (bearer, basic,
// other or none) and the bearer token if there is exactly one.
func bearerOf(values []string) (scheme, token string) {
	if len(values) == 0 {
		return "none", ""
	}
	if len(values) > 1 {
		return "repeated", ""
	}
	s, tok, _ := strings.Cut(values[0], " ")
	switch {
	case strings.EqualFold(s, "Bearer"):
		return "bearer", strings.TrimSpace(tok)
	case strings.EqualFold(s, "Basic"):
		return "basic", ""
	}
	return "other", ""
}

// presentedTokens lists the distinct non-empty tokens of the bearer header
// and the body's credential fields.
func presentedTokens(bearer string, fields map[string][]string) []string {
	var out []string
	add := func(v string) {
		if v != "" && !strings.ContainsAny(v, " \t\r\n") && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	add(bearer)
	for _, f := range credentialFields {
		for _, v := range fields[f] {
			add(v)
		}
	}
	return out
}

// looseBody reads a body of unknown shape (protocol 8 step 2): a JSON
// object, else a form, else nothing. It returns the top-level string
// fields and a shape for the log that names fields but holds no value.
func looseBody(body []byte) (map[string][]string, string) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, "empty"
	}
	var v any
	if err := json.Unmarshal(body, &v); err == nil {
		fields := map[string][]string{}
		if obj, ok := v.(map[string]any); ok {
			for k, fv := range obj {
				if s, ok := fv.(string); ok {
					fields[k] = []string{s}
				}
			}
		}
		var b strings.Builder
		b.WriteString("json:")
		jsonShape(&b, v, 0)
		return fields, capShape(b.String())
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || len(form) == 0 {
		return nil, "unparsed"
	}
	names := make([]string, 0, len(form))
	for k, vs := range form {
		n := shapeName(k)
		if len(vs) > 1 {
			n += "[" + strconv.Itoa(len(vs)) + "]"
		}
		names = append(names, n)
	}
	slices.Sort(names)
	return form, capShape("form:" + strings.Join(names, ","))
}

// jsonShape writes v's structure: object keys (sanitised) with the type of
// each value, the first few items of an array, nesting capped.
func jsonShape(b *strings.Builder, v any, depth int) {
	if b.Len() > shapeMaxLen {
		return
	}
	if depth > shapeMaxDepth {
		b.WriteString("...")
		return
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(shapeName(k))
			b.WriteByte(':')
			jsonShape(b, x[k], depth+1)
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i == shapeMaxItems {
				b.WriteString(",...")
				break
			}
			if i > 0 {
				b.WriteByte(',')
			}
			jsonShape(b, e, depth+1)
		}
		b.WriteByte(']')
	case string:
		b.WriteString("string")
	case float64:
		b.WriteString("number")
	case bool:
		b.WriteString("bool")
	default:
		b.WriteString("null")
	}
}

// shapeName lets a field name into the log only if it looks like a field
// name: short, [A-Za-z0-9_.-], and not one of our tokens (a body could
// carry a token as a key).
func shapeName(k string) string {
	if k == "" || len(k) > shapeMaxName {
		return "<redacted>"
	}
	if _, isToken := issuer.KindOf(k); isToken {
		return "<redacted>"
	}
	for i := 0; i < len(k); i++ {
		ch := k[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '.' || ch == '-') {
			return "<redacted>"
		}
	}
	return k
}

func capShape(s string) string {
	if len(s) > shapeMaxLen {
		return s[:shapeMaxLen] + "..."
	}
	return s
}

// headerNames lists the request's header names, sorted, without values.
func headerNames(h http.Header) []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, shapeName(k))
	}
	slices.Sort(names)
	return names
}

// logToken lets a media type into the log when it is a plain token like
// "application/json"; anything else is reported as "other".
func logToken(s string) string {
	if s == "" {
		return "none"
	}
	if len(s) > shapeMaxName || strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("/+.-", r))
	}) {
		return "other"
	}
	return s
}
