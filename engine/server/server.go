package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
)

// Config holds the server's dependencies; New never builds them (STYLE.md
// 7).
type Config struct {
	// Settings are the server settings from the configuration file.
	Settings config.Server
	// Store is the persistent state.
	Store store.Store
	// Registry holds the compiled providers.
	Registry *provider.Registry
	// Logger receives request logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the HTTP face of unfurld.
type Server struct {
	cfg  Config
	echo *echo.Echo
	log  *slog.Logger
}

// New builds the echo app with every route registered.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	// The direct peer is the client; X-Forwarded-For is not trusted unless
	// a proxy setting says so (TH-50).
	e.IPExtractor = echo.ExtractIPDirect()
	s := &Server{cfg: cfg, echo: e, log: cfg.Logger}
	e.HTTPErrorHandler = s.handleError

	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		RequestIDHandler: func(c echo.Context, id string) {
			c.SetRequest(c.Request().WithContext(withRequestID(c.Request().Context(), id)))
		},
	}))
	e.Use(s.logRequests)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.ErrorContext(c.Request().Context(), "panic", "err", err, "stack", string(stack))
			return errPanic
		},
	}))

	e.GET("/healthz", s.health)
	g := e.Group("/providers/:provider")
	(&unfurlHandler{s: s}).Register(g)
	return s
}

// Handler returns the root http.Handler.
func (s *Server) Handler() http.Handler { return s.echo }

// HTTPServer returns an http.Server for addr with every timeout and the
// header cap set, since Notion calls us from the internet (TH-47).
func (s *Server) HTTPServer(addr string) *http.Server {
	st := s.cfg.Settings
	return &http.Server{
		Addr:              addr,
		Handler:           s.echo,
		ReadHeaderTimeout: st.ReadHeaderTimeout.D(),
		ReadTimeout:       st.ReadTimeout.D(),
		WriteTimeout:      st.WriteTimeout.D(),
		IdleTimeout:       st.IdleTimeout.D(),
		MaxHeaderBytes:    int(st.MaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// health answers /healthz: ok when the store answers a read.
func (s *Server) health(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	_, err := s.cfg.Store.GetToken(ctx, store.KindAccess, "healthz")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "degraded", "store": "unavailable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// logRequests logs one line per request from an allowlist of fields: the
// path without its query (which may hold codes or tokens), never headers
// or bodies (TH-49).
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := s.cfg.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		req := c.Request()
		level := slog.LevelInfo
		if c.Response().Status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(req.Context(), level, "request",
			"method", req.Method,
			"path", req.URL.Path,
			"status", c.Response().Status,
			"duration", s.cfg.Now().Sub(start),
			"provider", c.Param("provider"),
		)
		return nil
	}
}
