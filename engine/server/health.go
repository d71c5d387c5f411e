package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/unfurld/unfurld/engine/store"
)

// probeEvery is how long a write probe's result is reused: a health
// check every second must not cost a commit (an fsync) every second.
const probeEvery = 5 * time.Second

// healthHandler answers /healthz: ok when the store answers a read and
// its write probe passed within probeEvery; 503 degraded otherwise, so a
// full disk shows before a token redemption fails on it (F11, TH-46). A
// failed integrity check of the store after start is degraded too (F12).
type healthHandler struct {
	s *Server

	// mu is held across a probe, so concurrent checks wait for one
	// probe instead of each running their own.
	mu      sync.Mutex
	probed  time.Time
	probeOK bool
}

func (h *healthHandler) health(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	_, err := h.s.cfg.Store.GetToken(ctx, store.KindAccess, "healthz")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.s.log.ErrorContext(ctx, "health: store read", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "degraded", "store": "unavailable"})
	}
	if !h.writable(ctx) {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "degraded", "store": "not writable"})
	}
	if h.s.cfg.Integrity != nil && h.s.cfg.Integrity() != nil {
		// Logged once, loudly, when the check failed (engine/app).
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "degraded", "store": "integrity check failed"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// writable returns the last probe's result, probing again once it is
// probeEvery old. A clock that stepped back probes again too.
func (h *healthHandler) writable(ctx context.Context) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.s.cfg.Now()
	if !h.probed.IsZero() && !now.Before(h.probed) && now.Sub(h.probed) < probeEvery {
		return h.probeOK
	}
	err := h.s.cfg.Store.Probe(ctx)
	if err != nil {
		h.s.log.ErrorContext(ctx, "health: store write probe", "err", err)
	}
	h.probed, h.probeOK = now, err == nil
	return h.probeOK
}
