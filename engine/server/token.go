package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/provider"
)

// Limits of the token URL.
const (
	// tokenBodyLimit caps a token request body (TH-47: 16 KiB); Notion's
	// form is a few hundred bytes.
	tokenBodyLimit = 16 << 10
	// authFailWindow and authFailsPerIP bound failed client
	// authentications per caller address (TH-20). There is deliberately
	// no limit per client id: the id is public (it is in every authorize
	// URL), so such a limit lets anyone lock Notion out of the token URL
	// with a few wrong secrets a minute. Guessing the 256-bit secret
	// stays hopeless however many addresses an attacker holds.
	authFailWindow = time.Minute
	authFailsPerIP = 10
	// authFailMaxKeys bounds the limiter's memory.
	authFailMaxKeys = 10000
)

// Grant types of protocol 2.1.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
)

// tokenJSONType is the success and error content type of RFC 6749 5.1,
// as protocol 2.3 spells it.
const tokenJSONType = "application/json;charset=UTF-8"

// tokenParams are the parameters of protocol 2.1. In a JSON body they must
// be strings; other keys are tolerated with any value.
var tokenParams = map[string]bool{
	"grant_type": true, "code": true, "refresh_token": true, "redirect_uri": true,
	"client_id": true, "client_secret": true, "scope": true,
}

// tokenHandler serves the Token URL (protocol 2): Notion redeems our code
// (R4) and refreshes tokens (R6). Errors are RFC 6749 5.2 bodies, not
// Notion's unfurl error shape, so this handler renders its own refusals
// (and logs each once, in refuse) instead of going through handleError.
type tokenHandler struct {
	s      *Server
	issuer *issuer.Issuer
	// byIP counts failed client authentications per caller address
	// (ipKey: IPv4 /32, IPv6 /64).
	byIP *failLimiter
}

// Register mounts the token route on a /providers/:provider group. Every
// method reaches the handler so that a GET still gets the no-store headers
// and an RFC 6749 body with its 405 (TH-21, TH-22).
func (h *tokenHandler) Register(g *echo.Group) {
	h.issuer = &issuer.Issuer{Store: h.s.cfg.Store, Keyring: h.s.cfg.Keyring, Now: h.s.cfg.Now}
	h.byIP = newFailLimiter(authFailsPerIP, authFailWindow, authFailMaxKeys)
	g.Any("/token", h.token)
}

// tokenError is a refusal of the token URL.
type tokenError struct {
	status int
	body   issuer.Error
	// basic asks for WWW-Authenticate: Basic (RFC 6749 5.2, protocol 2.4).
	basic bool
	// allow is the Allow header of a 405.
	allow string
	// retryAfter is set on a 429.
	retryAfter time.Duration
	// reason is for the audit log only; it never holds a secret.
	reason string
}

func (e *tokenError) Error() string { return e.body.Error() }

func refusal(status int, code, desc, reason string) *tokenError {
	return &tokenError{status: status, body: issuer.Error{Code: code, Description: desc}, reason: reason}
}

func badRequest(desc string) *tokenError {
	return refusal(http.StatusBadRequest, issuer.CodeInvalidRequest, desc, desc)
}

// tokenRequest is what the audit log knows of a request: never a code,
// token or secret (TH-49).
type tokenRequest struct {
	provider    string
	ip          string
	grantType   string
	clientAuth  string // none, body or basic
	clientKnown bool
}

// token answers one token request. Cache-Control and Pragma go on first,
// so every answer carries them, refusals included (TH-22).
func (h *tokenHandler) token(c echo.Context) error {
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderCacheControl, "no-store")
	hdr.Set("Pragma", "no-cache")
	tr := &tokenRequest{provider: c.Param("provider"), ip: c.RealIP(), clientAuth: "none"}
	resp, err := h.serve(c, tr)
	if err != nil {
		h.count(tr, "refused")
		return h.refuse(c, tr, err)
	}
	body, err := json.Marshal(resp)
	if err != nil {
		h.count(tr, "refused")
		return h.refuse(c, tr, err)
	}
	h.count(tr, "granted")
	h.s.log.InfoContext(c.Request().Context(), "token issued",
		"provider", tr.provider, "grant_type", tr.grantType, "client_auth", tr.clientAuth, "token", resp)
	return c.Blob(http.StatusOK, tokenJSONType, body)
}

// count feeds the token metrics; a provider that is not ours (its name
// cleared by serve) is the caller's text and never a label.
func (h *tokenHandler) count(tr *tokenRequest, result string) {
	if m := h.s.cfg.Metrics; m != nil && tr.provider != "" {
		if _, ok := h.s.cfg.Registry.Get(tr.provider); ok {
			m.Token(tr.provider, tr.grantType, result)
		}
	}
}

// serve runs the checks in the order that leaks least: method, route,
// rate limit, transport-level shape, client authentication, and only then
// the grant.
func (h *tokenHandler) serve(c echo.Context, tr *tokenRequest) (issuer.TokenResponse, error) {
	req := c.Request()
	if req.Method != http.MethodPost {
		e := refusal(http.StatusMethodNotAllowed, issuer.CodeInvalidRequest, "the token endpoint accepts POST only", "method "+req.Method)
		e.allow = http.MethodPost
		return issuer.TokenResponse{}, e
	}
	p, ok := h.s.cfg.Registry.Get(tr.provider)
	if !ok || p.Config == nil {
		tr.provider = "" // not ours: keep the attacker's text out of logs
		return issuer.TokenResponse{}, refusal(http.StatusNotFound, issuer.CodeInvalidRequest, "unknown provider", "unknown provider")
	}
	now := h.s.cfg.Now()
	if wait := h.byIP.blocked(ipKey(tr.ip), now); wait > 0 {
		return issuer.TokenResponse{}, tooMany(wait, "client ip over the failed-authentication limit")
	}
	// Credentials in the URL end up in access logs and proxies; refuse
	// the whole request rather than pick the body's copy (TH-21). The
	// query is never logged (logRequests logs the path only).
	if req.URL.RawQuery != "" {
		return issuer.TokenResponse{}, badRequest("parameters must be sent in the request body, not in the URL")
	}
	params, err := readTokenParams(c)
	if err != nil {
		return issuer.TokenResponse{}, err
	}
	tr.grantType = logGrantType(params["grant_type"])
	client, err := h.authenticateClient(c, p, params, tr, now)
	if err != nil {
		return issuer.TokenResponse{}, err
	}
	ctx := req.Context()
	switch params["grant_type"] {
	case "":
		return issuer.TokenResponse{}, badRequest("grant_type is missing")
	case grantAuthorizationCode:
		if params["code"] == "" {
			return issuer.TokenResponse{}, badRequest("code is missing")
		}
		return h.issuer.RedeemCode(ctx, client, params["code"], params["redirect_uri"])
	case grantRefreshToken:
		if params["refresh_token"] == "" {
			return issuer.TokenResponse{}, badRequest("refresh_token is missing")
		}
		return h.issuer.Refresh(ctx, client, params["refresh_token"])
	default:
		return issuer.TokenResponse{}, refusal(http.StatusBadRequest, issuer.CodeUnsupportedGrantType,
			"grant_type must be authorization_code or refresh_token", "unsupported grant_type")
	}
}

// authenticateClient checks pair A (protocol 2.2 step 2) from the body
// (client_secret_post, what Notion sends) or HTTP Basic (RFC 6749 2.3.1),
// never both (TH-21). Unknown client and wrong secret get the same answer
// (TH-19); failures count against the caller's address only, never
// against the client id, which anyone can send (TH-20).
func (h *tokenHandler) authenticateClient(c echo.Context, p *provider.Provider, params map[string]string, tr *tokenRequest, now time.Time) (issuer.Client, error) {
	authz := c.Request().Header.Values(echo.HeaderAuthorization)
	if len(authz) > 1 {
		return issuer.Client{}, badRequest("authorization header is repeated")
	}
	id, secret := params["client_id"], params["client_secret"]
	if len(authz) == 1 {
		tr.clientAuth = "basic"
		if secret != "" {
			return issuer.Client{}, badRequest("client credentials must be sent either in the body or with HTTP Basic, not both")
		}
		bid, bsecret, ok := parseBasic(authz[0])
		if ok && id != "" && id != bid {
			return issuer.Client{}, badRequest("client_id in the body differs from the one in HTTP Basic")
		}
		id, secret = bid, bsecret
		if !ok {
			id, secret = "", ""
		}
	} else if secret != "" || id != "" {
		tr.clientAuth = "body"
	}

	cfg := p.Config.Notion
	// Digests have a fixed length, so ConstantTimeCompare never returns
	// early on a length difference (TH-19). Both comparisons always run.
	idOK := equalDigest(id, cfg.ClientID)
	secretOK := equalDigest(secret, cfg.ClientSecret.Reveal())
	tr.clientKnown = idOK
	// An empty configured secret (development without generated secrets)
	// never authenticates anyone.
	configured := !cfg.ClientSecret.IsZero() && cfg.ClientID != ""
	if !(idOK && secretOK && configured && secret != "") {
		h.byIP.fail(ipKey(tr.ip), now)
		e := refusal(http.StatusUnauthorized, issuer.CodeInvalidClient, "client authentication failed", "client authentication failed")
		e.basic = tr.clientAuth == "basic"
		return issuer.Client{}, e
	}
	return issuer.Client{
		Provider:       p.Name,
		AccessTokenTTL: cfg.AccessTokenTTL.D(),
		RefreshGrace:   cfg.RefreshGrace.D(),
	}, nil
}

// equalDigest compares SHA-256 digests of a and b in constant time.
func equalDigest(a, b string) bool {
	da, db := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(da[:], db[:]) == 1
}

// parseBasic decodes "Basic base64(id:secret)", where id and secret are
// form-encoded first (RFC 6749 2.3.1).
func parseBasic(h string) (id, secret string, ok bool) {
	scheme, rest, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", false
	}
	rid, rsecret, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false
	}
	id, err1 := url.QueryUnescape(rid)
	secret, err2 := url.QueryUnescape(rsecret)
	if err1 != nil || err2 != nil {
		return "", "", false
	}
	return id, secret, true
}

// readTokenParams reads the body under tokenBodyLimit (TH-47) as a form
// (protocol 2.1) or, for robustness, a JSON object. A parameter sent twice
// is refused (RFC 6749 3.2, TH-09); an empty one counts as absent (RFC
// 6749 3.2).
func readTokenParams(c echo.Context) (map[string]string, error) {
	req := c.Request()
	if req.ContentLength > tokenBodyLimit {
		return nil, refusal(http.StatusRequestEntityTooLarge, issuer.CodeInvalidRequest, "request body too large", "body over the limit")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, tokenBodyLimit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, refusal(http.StatusRequestEntityTooLarge, issuer.CodeInvalidRequest, "request body too large", "body over the limit")
		}
		if readTimedOut(err) {
			return nil, refusal(http.StatusRequestTimeout, issuer.CodeInvalidRequest, msgReadTimeout, "slow body")
		}
		return nil, badRequest("could not read the request body")
	}
	if !utf8.Valid(body) {
		return nil, badRequest("request body is not valid UTF-8")
	}
	mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil {
		mt = ""
	}
	var params map[string]string
	switch mt {
	case echo.MIMEApplicationForm:
		params, err = formParams(body)
	case echo.MIMEApplicationJSON:
		params, err = jsonParams(body)
	default:
		return nil, refusal(http.StatusUnsupportedMediaType, issuer.CodeInvalidRequest,
			"content type must be application/x-www-form-urlencoded", "unsupported content type")
	}
	if err != nil {
		return nil, err
	}
	for k, v := range params {
		if v == "" {
			delete(params, k)
		}
	}
	return params, nil
}

func formParams(body []byte) (map[string]string, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("request body is not a valid form")
	}
	params := make(map[string]string, len(form))
	for k, vs := range form {
		if len(vs) > 1 {
			return nil, badRequest("parameter " + logParamName(k) + " is repeated")
		}
		params[k] = vs[0]
	}
	return params, nil
}

// jsonParams reads one JSON object. encoding/json keeps the last of two
// equal keys silently, so the object is walked token by token to refuse
// repeats (TH-09).
func jsonParams(body []byte) (map[string]string, error) {
	malformed := badRequest("request body must be one JSON object of string parameters")
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, malformed
	}
	params := map[string]string{}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, malformed
		}
		k, _ := t.(string)
		if seen[k] {
			return nil, badRequest("parameter " + logParamName(k) + " is repeated")
		}
		seen[k] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, malformed
		}
		if !tokenParams[k] {
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, malformed
		}
		params[k] = v
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, malformed
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, malformed
	}
	return params, nil
}

// logParamName names a parameter in an error description: one of ours by
// name, anything else generically, so attacker text is not reflected.
func logParamName(k string) string {
	if tokenParams[k] {
		return k
	}
	return "(unknown)"
}

// logGrantType keeps attacker text out of the audit log.
func logGrantType(gt string) string {
	switch gt {
	case grantAuthorizationCode, grantRefreshToken, "":
		return gt
	}
	return "other"
}

func tooMany(wait time.Duration, reason string) *tokenError {
	e := refusal(http.StatusTooManyRequests, issuer.CodeInvalidRequest, "too many failed attempts, try again later", reason)
	e.retryAfter = wait
	return e
}

// refuse renders a refusal as RFC 6749 5.2 JSON and audit-logs it
// without secrets (TH-20, TH-49). Anything that is not a refusal is the
// store or the sealer failing: 503 temporarily_unavailable, and no token
// was handed out (TH-46).
func (h *tokenHandler) refuse(c echo.Context, tr *tokenRequest, err error) error {
	ctx := c.Request().Context()
	var (
		te *tokenError
		oe *issuer.Error
	)
	switch {
	case errors.As(err, &te):
	case errors.As(err, &oe):
		status := http.StatusBadRequest
		if oe.Code == issuer.CodeInvalidClient {
			status = http.StatusUnauthorized
		}
		te = refusal(status, oe.Code, oe.Description, oe.Description)
	default:
		h.s.log.ErrorContext(ctx, "token request failed",
			"provider", tr.provider, "grant_type", tr.grantType, "client_ip", tr.ip, "err", err)
		te = refusal(http.StatusServiceUnavailable, issuer.CodeTemporarilyUnavailable, "the server cannot issue tokens right now, try again later", "")
		return h.write(c, te)
	}
	level := slog.LevelInfo
	if te.status == http.StatusUnauthorized || te.status == http.StatusTooManyRequests || te.body.Code == issuer.CodeInvalidGrant {
		level = slog.LevelWarn // security-relevant: guessing, replay, lockout
	}
	h.s.log.Log(ctx, level, "token request refused",
		"provider", tr.provider, "status", te.status, "oauth_error", te.body.Code, "err", te.reason,
		"grant_type", tr.grantType, "client_auth", tr.clientAuth, "client_known", tr.clientKnown, "client_ip", tr.ip)
	return h.write(c, te)
}

func (h *tokenHandler) write(c echo.Context, te *tokenError) error {
	hdr := c.Response().Header()
	if te.basic {
		hdr.Set(echo.HeaderWWWAuthenticate, `Basic realm="unfurld", charset="UTF-8"`)
	}
	if te.allow != "" {
		hdr.Set(echo.HeaderAllow, te.allow)
	}
	if te.retryAfter > 0 {
		hdr.Set(echo.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(te.retryAfter.Seconds()))))
	}
	body, err := json.Marshal(te.body)
	if err != nil {
		return err
	}
	return c.Blob(te.status, tokenJSONType, body)
}
