package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha1" // HMAC-SHA1, which some upstreams still sign with, is not broken as SHA-1 is
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/unfurld/unfurld/engine/config"
)

// LiveRefresher is what the webhook route needs of the live refresher
// (engine/live.Refresher): queue a refresh of every subscription of the
// links an event names, and say how many were queued. It must return
// quickly; the refreshes run in the background.
type LiveRefresher interface {
	RefreshURIs(ctx context.Context, provider string, uris []string) (int, error)
}

// webhookHandler serves POST /providers/<name>/webhook: an upstream tells
// us an object changed, so its previews are refreshed at once (issue 4
// item 2) instead of at the next poll.
type webhookHandler struct {
	s    *Server
	live LiveRefresher
}

// Register mounts the webhook route on a /providers/:provider group.
func (h *webhookHandler) Register(g *echo.Group) {
	g.POST("/webhook", h.webhook)
}

// webhookAccepted is the answer to a verified event.
type webhookAccepted struct {
	// Links is how many links the event named.
	Links int `json:"links"`
	// Refreshes is how many subscriptions of them are being refreshed.
	Refreshes int `json:"refreshes"`
}

// webhook checks the size, then the signature over the raw body, then
// maps the event to links and queues their refreshes, answering 202
// before any of them runs. Anything unsigned or wrongly signed gets 401
// and changes nothing; the reason is logged, never answered.
func (h *webhookHandler) webhook(c echo.Context) error {
	err := h.serveWebhook(c)
	if m := h.s.cfg.Metrics; m != nil {
		// Only our providers with a webhook are labels; the route's
		// parameter is otherwise the caller's text.
		if p, ok := h.s.cfg.Registry.Get(c.Param("provider")); ok && p.HasWebhook() {
			m.Webhook(p.Name, webhookResult(err))
		}
	}
	return err
}

// webhookResult names the result of a delivery for metrics.
func webhookResult(err error) string {
	var he *echo.HTTPError
	var re *requestError
	switch {
	case err == nil:
		return "accepted"
	case errors.As(err, &he) && he.Code == http.StatusUnauthorized:
		return "unauthorized"
	case errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge:
		return "too_large"
	case errors.As(err, &he) && he.Code < 500, errors.As(err, &re):
		return "bad_request"
	}
	return "error"
}

func (h *webhookHandler) serveWebhook(c echo.Context) error {
	p, ok := h.s.cfg.Registry.Get(c.Param("provider"))
	if !ok || !p.HasWebhook() {
		return echo.NewHTTPError(http.StatusNotFound, "no webhook for this provider")
	}
	w := p.Config.Live.Webhook
	req := c.Request()
	limit := int64(w.MaxBodyBytes)
	if limit <= 0 {
		limit = 1 << 20
	}
	if req.ContentLength > limit {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge)
	}
	body, err := readAll(http.MaxBytesReader(c.Response(), req.Body, limit), req.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge)
		}
		if readTimedOut(err) {
			return &requestError{status: http.StatusRequestTimeout, msg: msgReadTimeout}
		}
		return &requestError{status: http.StatusBadRequest, msg: "could not read the body"}
	}
	if err := verifyWebhook(w, req.Header.Get(w.Header), body); err != nil {
		return echo.NewHTTPError(http.StatusUnauthorized, "webhook signature: "+err.Error())
	}
	event, err := webhookEvent(req.Header.Get(echo.HeaderContentType), body)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	uris, err := p.WebhookURIs(event)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("webhook event: %v", err))
	}
	n := 0
	if len(uris) > 0 {
		n, err = h.live.RefreshURIs(req.Context(), p.Name, uris)
		if err != nil {
			return fmt.Errorf("webhook refresh: %w", err)
		}
	}
	h.s.log.InfoContext(req.Context(), "webhook", "provider", p.Name, "links", len(uris), "refreshes", n)
	return c.JSON(http.StatusAccepted, webhookAccepted{Links: len(uris), Refreshes: n})
}

// verifyWebhook checks got, the signature header, against body with the
// configured secret, in constant time: an HMAC (hex or base64, after an
// optional prefix such as GitHub's "sha256="), or for algorithm token the
// secret itself, as GitLab sends it. Both sides of a token comparison are
// hashed first, so that the time taken does not tell the secret's length.
func verifyWebhook(w config.Webhook, got string, body []byte) error {
	secret := w.Secret.Reveal()
	if secret == "" {
		return errors.New("no secret configured")
	}
	if got == "" {
		return fmt.Errorf("no %s header", w.Header)
	}
	if w.Algorithm == config.WebhookToken {
		a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(secret))
		if !hmac.Equal(a[:], b[:]) {
			return errors.New("token does not match")
		}
		return nil
	}
	var newHash func() hash.Hash
	switch w.Algorithm {
	case config.WebhookHMACSHA256:
		newHash = sha256.New
	case config.WebhookHMACSHA1:
		newHash = sha1.New
	default:
		return fmt.Errorf("unknown algorithm %q", w.Algorithm)
	}
	encoded, ok := strings.CutPrefix(strings.TrimSpace(got), w.Prefix)
	if !ok {
		return fmt.Errorf("signature lacks the %q prefix", w.Prefix)
	}
	var sig []byte
	var err error
	if w.Encoding == "base64" {
		sig, err = base64.StdEncoding.DecodeString(encoded)
	} else {
		sig, err = hex.DecodeString(encoded)
	}
	if err != nil {
		return fmt.Errorf("signature is not %s", w.Encoding)
	}
	mac := hmac.New(newHash, []byte(secret))
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sig) {
		return errors.New("signature does not match")
	}
	return nil
}

// webhookEvent is the JSON event of a verified body. GitHub can deliver
// events form-encoded, with the JSON in the payload field; the signature
// covers the encoded body, which is why this runs after verification.
func webhookEvent(contentType string, body []byte) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/x-www-form-urlencoded" {
		return body, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("payload") == "" {
		return nil, errors.New("form-encoded event without a payload field")
	}
	return []byte(form.Get("payload")), nil
}
