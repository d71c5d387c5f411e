package server

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Metrics receives what the server answers, for metrics. engine/metrics
// implements it; the server never imports a metrics library. Labels are
// provider and pattern names from the configuration and fixed words,
// never a URI, a connection, a token or a user. The methods run on the
// request path and must not block.
type Metrics interface {
	// Unfurl counts one answered unfurl callback: outcome is one of the
	// Outcome words, pattern "none" when no pattern ran, cache "hit" or
	// "miss" for an unfurl that reached the provider and "" otherwise.
	Unfurl(provider, pattern, outcome, cache string, d time.Duration)
	// Token counts a token URL request: grantType authorization_code,
	// refresh_token, other or "", result granted or refused.
	Token(provider, grantType, result string)
	// Webhook counts an upstream webhook delivery by result: accepted,
	// unauthorized, bad_request, too_large or error.
	Webhook(provider, result string)
}

// Outcomes of an unfurl callback, as its log line and metrics name them.
const (
	// OutcomeAttributes: Notion got attributes.
	OutcomeAttributes = "attributes"
	// OutcomeNotFound: an error operation saying the link shows nothing
	// (no pattern, upstream 404, no title).
	OutcomeNotFound = "not_found"
	// OutcomeReconnect: an error operation asking the user to reconnect.
	OutcomeReconnect = "reconnect"
	// OutcomeTryLater: an error operation asking Notion to try later
	// (upstream failure, timeout, overload, a subscription not recorded).
	OutcomeTryLater = "try_later"
	// OutcomeBadRequest: the callback itself was refused (body, content
	// type, size).
	OutcomeBadRequest = "bad_request"
	// OutcomeUnauthorized: no valid bearer for the provider.
	OutcomeUnauthorized = "unauthorized"
	// OutcomeError: unfurld failed to answer (a store failure).
	OutcomeError = "error"
)

// patternNone labels an unfurl that ran no pattern.
const patternNone = "none"

// metricsHandler serves GET /metrics: the Prometheus text format from
// Config.MetricsHandler, behind the admin token unless
// server.metrics.require_token is false.
type metricsHandler struct {
	s    *Server
	next http.Handler
}

// Register mounts the route.
func (h *metricsHandler) Register(e *echo.Echo) {
	e.GET("/metrics", h.metrics)
}

func (h *metricsHandler) metrics(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	if h.s.cfg.Settings.Metrics.TokenRequired() && !(&adminHandler{s: h.s}).authorized(c) {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="unfurld admin"`)
		return c.JSON(http.StatusUnauthorized, map[string]string{"error": "admin token required"})
	}
	h.next.ServeHTTP(c.Response(), c.Request())
	return nil
}

// metricsServed reports whether /metrics is mounted: enabled, given a
// handler, and either open (require_token false) or guarded by a token
// that exists.
func (s *Server) metricsServed() bool {
	m := s.cfg.Settings.Metrics
	return s.cfg.MetricsHandler != nil && m.IsEnabled() && (!m.TokenRequired() || !s.cfg.Settings.AdminToken.IsZero())
}
