package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/status"
	"github.com/unfurld/unfurld/engine/store"
)

// adminHandler serves the operator's routes, guarded by
// server.admin_token: GET /admin/status (issue 4 item 5), the JSON view of
// live updates; POST /admin/connections/:id/delete, which disconnects
// one connection as Notion's deleted-token callback would (TH-40); and
// POST /admin/reload, which loads the configuration file again.
type adminHandler struct{ s *Server }

// Register mounts the admin routes.
func (h *adminHandler) Register(e *echo.Echo) {
	e.GET("/admin/status", h.status)
	e.POST("/admin/connections/:id/delete", h.deleteConnection)
	if h.s.cfg.Reload != nil {
		e.POST("/admin/reload", h.reload)
	}
}

// reload loads the configuration file again and answers the report:
// 200 when the new providers serve, 422 with every file:line:col error
// when the file was refused and the running configuration kept.
func (h *adminHandler) reload(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	if !h.authorized(c) {
		return h.refuse(c)
	}
	r := h.s.cfg.Reload(c.Request().Context())
	code := http.StatusOK
	if r.Status != compiled.StatusReloaded {
		code = http.StatusUnprocessableEntity
	}
	return c.JSON(code, r)
}

// refuse answers a request without the admin token.
func (h *adminHandler) refuse(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="unfurld admin"`)
	return c.JSON(http.StatusUnauthorized, map[string]string{"error": "admin token required"})
}

// deleteConnection erases a connection and revokes its upstream grant
// (Server.Disconnect). 200 means the deletion is committed; the erase of
// the freed pages and the revocation follow.
func (h *adminHandler) deleteConnection(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	if !h.authorized(c) {
		return h.refuse(c)
	}
	ctx := c.Request().Context()
	id := c.Param("id")
	err := h.s.Disconnect(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return c.JSON(http.StatusNotFound, map[string]string{"error": "unknown connection"})
	case err != nil:
		h.s.log.ErrorContext(ctx, "admin delete connection", "connection", id, "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"error": "store unavailable"})
	}
	h.s.log.InfoContext(ctx, "connection deleted by admin", "connection", id)
	return c.JSON(http.StatusOK, map[string]string{"deleted": id})
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
		return h.refuse(c)
	}
	q := status.Query{
		Provider:   c.QueryParam("provider"),
		URI:        c.QueryParam("uri"),
		Connection: c.QueryParam("connection"),
	}
	names := make([]status.Provider, 0, len(h.s.cfg.Registry.All()))
	for _, p := range h.s.cfg.Registry.All() {
		names = append(names, status.Provider{Name: p.Name, Auth: p.AuthType()})
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
