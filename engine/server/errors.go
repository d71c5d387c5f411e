package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/unfurld/unfurld/engine/notion"
)

var errPanic = errors.New("internal error")

// bearerError is a failed bearer authentication (RFC 6750 3.1; protocol
// 5.5). presented tells "no token" (no error code) from "bad token"
// (invalid_token), as TH-26 requires.
type bearerError struct {
	presented bool
	reason    string // for logs only
}

func (e *bearerError) Error() string { return "bearer authentication: " + e.reason }

// requestError is malformed input on a Notion-facing JSON route: answered
// with an error operation and the given status (protocol 5.5; TH-48).
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// handleError is the one place errors become responses, and the one place
// they are logged (STYLE.md 6, 7).
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ctx := c.Request().Context()
	var (
		be *bearerError
		re *requestError
		he *echo.HTTPError
	)
	switch {
	case errors.As(err, &be):
		h := `Bearer realm="unfurld"`
		if be.presented {
			h += `, error="invalid_token"`
		}
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, h)
		s.log.InfoContext(ctx, "unauthorized", "err", be.reason)
		_ = c.JSON(http.StatusUnauthorized, notion.AuthError{Error: notion.ErrorSet{Status: 401, Message: "invalid or missing access token"}})
	case errors.As(err, &re):
		s.log.InfoContext(ctx, "bad request", "status", re.status, "err", re.msg)
		_ = c.JSON(re.status, notion.Envelope{URI: "", Operations: []notion.Operation{notion.ErrorOp(re.status, re.msg)}})
	case errors.As(err, &he):
		code := he.Code
		msg := http.StatusText(code)
		if code == http.StatusRequestEntityTooLarge {
			msg = "request body too large"
		}
		s.log.Log(ctx, levelFor(code), "http error", "status", code, "err", he.Message)
		_ = c.JSON(code, map[string]any{"error": map[string]any{"status": code, "message": msg}})
	default:
		status := http.StatusInternalServerError
		if errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusServiceUnavailable
		}
		s.log.ErrorContext(ctx, "internal error", "err", err)
		// Never echo internal error text: it may carry upstream or store
		// details (TH-49).
		_ = c.JSON(status, map[string]any{"error": map[string]any{"status": status, "message": http.StatusText(status)}})
	}
}

func levelFor(code int) slog.Level {
	if code >= 500 {
		return slog.LevelError
	}
	return slog.LevelInfo
}
