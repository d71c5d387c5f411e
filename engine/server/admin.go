package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/unfurld/unfurld/engine/status"
)

// adminHandler serves GET /admin/status (issue 4 item 5): the operator's
// JSON view of live updates, guarded by server.admin_token.
type adminHandler struct{ s *Server }

// Register mounts the admin route.
func (h *adminHandler) Register(e *echo.Echo) {
	e.GET("/admin/status", h.status)
}

// authorized compares the bearer with the admin token through fixed-length
// digests, in constant time (TH-19's rule, applied here too).
func (h *adminHandler) authorized(c echo.Context) bool {
	scheme, tok, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return false
	}
	got := sha256.Sum256([]byte(tok))
	want := sha256.Sum256([]byte(h.s.cfg.Settings.AdminToken.Reveal()))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func (h *adminHandler) status(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	if !h.authorized(c) {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="unfurld admin"`)
		return c.JSON(http.StatusUnauthorized, map[string]string{"error": "admin token required"})
	}
	q := status.Query{
		Provider:   c.QueryParam("provider"),
		URI:        c.QueryParam("uri"),
		Connection: c.QueryParam("connection"),
	}
	names := make([]string, 0, len(h.s.cfg.Registry.All()))
	for _, p := range h.s.cfg.Registry.All() {
		names = append(names, p.Name)
	}
	if q.Provider != "" {
		if _, ok := h.s.cfg.Registry.Get(q.Provider); !ok {
			return c.JSON(http.StatusNotFound, map[string]string{"error": "unknown provider"})
		}
	}
	var live *status.Live
	if h.s.cfg.LiveStats != nil {
		live = h.s.cfg.LiveStats()
	}
	r, err := status.Build(c.Request().Context(), h.s.cfg.Store, names, q, live, h.s.cfg.Now())
	if err == nil && h.s.cfg.Keyring != nil {
		err = r.AddSealingKeys(c.Request().Context(), h.s.cfg.Store, h.s.cfg.Keyring, h.s.cfg.Now())
	}
	if err != nil {
		h.s.log.ErrorContext(c.Request().Context(), "admin status", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"error": "store unavailable"})
	}
	return c.JSON(http.StatusOK, r)
}
