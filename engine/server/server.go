package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/net/netutil"

	"github.com/unfurld/unfurld/engine/compiled"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/connect"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/status"
	"github.com/unfurld/unfurld/engine/store/cached"
)

// Config holds the server's dependencies; New never builds them (STYLE.md
// 7).
type Config struct {
	// Settings are the server settings from the configuration file.
	Settings config.Server
	// Store is the persistent state: the one cached handle every
	// component of the process shares, so that the server sees every
	// write the live updates and the connection flow make, and they see
	// every subscription an unfurl recorded.
	Store *cached.Store
	// Registry holds the compiled providers.
	Registry *provider.Registry
	// Connect runs the connection flow; nil serves no flow routes (unit
	// tests of the unfurl route).
	Connect *connect.Service
	// Live refreshes the links a verified webhook names (engine/live);
	// nil serves no webhook route.
	Live LiveRefresher
	// LiveStats returns the running live-update statistics for the admin
	// endpoint; nil reports from the store alone.
	LiveStats func() *status.Live
	// Reload loads the configuration file again and serves its
	// providers (app.App.Reload), for POST /admin/reload; nil serves no
	// reload route.
	Reload func(ctx context.Context) compiled.Report
	// Keyring seals and opens secrets at rest: upstream credentials,
	// Notion tokens, pending flows, refresh successors (TH-41).
	Keyring *sealing.Keyring
	// Metrics counts unfurls, token requests and webhooks; nil counts
	// nothing.
	Metrics Metrics
	// MetricsHandler serves the Prometheus exposition at GET /metrics
	// (engine/metrics); nil serves no /metrics route.
	MetricsHandler http.Handler
	// Logger receives request logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Integrity, when set, says how the store's integrity check that
	// runs after the server started went: nil while it runs or once it
	// passed, its error once it failed, which makes /healthz degraded.
	Integrity func() error
}

// Server is the HTTP face of unfurld.
type Server struct {
	cfg  Config
	echo *echo.Echo
	// admin serves /metrics and /admin/* on server.admin_listen; nil
	// when they are served by echo.
	admin *echo.Echo
	log   *slog.Logger
}

// New builds the echo app with every route registered.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	e := s.newEcho()
	s.echo = e
	e.GET("/healthz", (&healthHandler{s: s}).health)
	// The operator's routes go to the admin listener when there is one,
	// so that the public listener does not serve them at all.
	ops := e
	if cfg.Settings.AdminListen != "" {
		s.admin = s.newEcho()
		s.admin.GET("/healthz", (&healthHandler{s: s}).health)
		ops = s.admin
	}
	if !cfg.Settings.AdminToken.IsZero() {
		(&adminHandler{s: s}).Register(ops)
	}
	if s.metricsServed() {
		(&metricsHandler{s: s, next: cfg.MetricsHandler}).Register(ops)
	}
	lab := newLabHandler(s)
	lab.Register(e)
	(&homeHandler{s: s, lab: lab != nil}).Register(e)
	g := e.Group("/providers/:provider")
	(&unfurlHandler{s: s}).Register(g)
	(&tokenHandler{s: s}).Register(g)
	(&deletedHandler{s: s}).Register(g)
	if cfg.Connect != nil {
		newConnectHandler(s, cfg.Connect).Register(g)
	}
	if cfg.Live != nil {
		(&webhookHandler{s: s, live: cfg.Live}).Register(g)
	}
	return s
}

// newEcho builds an echo app with the middleware every listener
// shares: request ids, the request log, panic recovery and the one
// error handler.
func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	// The direct peer is the client; X-Forwarded-For is trusted only from
	// server.trusted_proxies (TH-50).
	e.IPExtractor = ipExtractor(s.cfg.Settings.TrustedProxies)
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		Generator: newRequestID,
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
	return e
}

// Handler returns the root http.Handler.
func (s *Server) Handler() http.Handler { return s.echo }

// AdminHandler returns the admin listener's http.Handler (/metrics,
// /admin/status, /healthz), or nil when server.admin_listen is empty
// and Handler serves them.
func (s *Server) AdminHandler() http.Handler {
	if s.admin == nil {
		return nil
	}
	return s.admin
}

// AdminHTTPServer returns an http.Server for the admin listener at addr,
// with the same timeouts as the main one; nil without an admin
// listener.
func (s *Server) AdminHTTPServer(addr string) *http.Server {
	if s.admin == nil {
		return nil
	}
	hs := s.HTTPServer(addr)
	hs.Handler = s.admin
	return hs
}

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

// Listener caps ln at server.max_connections simultaneously open
// connections (TH-47): each costs a file descriptor, and idle connections
// held open on purpose must not use up the process's limit. Connections
// beyond the cap wait in the kernel's accept queue until one closes. A
// cap of 0 (a Config built in Go without defaults) leaves ln as it is.
func (s *Server) Listener(ln net.Listener) net.Listener {
	if n := s.cfg.Settings.MaxConnections; n > 0 {
		return netutil.LimitListener(ln, n)
	}
	return ln
}

// logRequests logs one line per request from an allowlist of fields: the
// path without its query (which may hold codes or tokens), never headers
// or bodies (TH-49).
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Path() == unfurlRoute && c.Request().Method == http.MethodPost {
			// The unfurl handler writes its own, richer request line.
			return next(c)
		}
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
		// Building the attributes costs allocations on every request;
		// production runs at warn, where this line is not written.
		if !s.log.Enabled(req.Context(), level) {
			return nil
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
