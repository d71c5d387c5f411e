package server

import (
	"context"
	"errors"
	"time"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/cached"
)

// lookupBearer finds the access token with digest and its connection
// through the shared store's bearer cache, and turns what the store says
// into the bearer error the error handler answers (TH-26).
func (s *Server) lookupBearer(ctx context.Context, digest string, now time.Time) (cached.Bearer, error) {
	b, err := s.cfg.Store.LookupBearer(ctx, digest, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return cached.Bearer{}, &bearerError{presented: true, reason: "unknown token"}
	case errors.Is(err, cached.ErrConnectionGone):
		return cached.Bearer{}, &bearerError{presented: true, reason: "token of a deleted connection"}
	}
	return b, err
}
