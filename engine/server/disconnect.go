package server

import (
	"context"
	"fmt"

	"github.com/unfurld/unfurld/engine/connect"
)

// Disconnect deletes connection id and everything of it, then revokes its
// grant at the upstream when the provider declares how (security.md
// TH-40). The three ways a connection ends come here: Notion's Deleted
// Token Callback, the admin route, and `unfurld disconnect`. The local
// deletion commits first, with no network I/O inside the store's
// transaction (TH-43); the store then erases the freed pages on its own.
// The revocation is best effort: its failure is logged, not returned.
// store.ErrNotFound if there is no such connection.
func (s *Server) Disconnect(ctx context.Context, id string) error {
	conn, err := s.cfg.Store.GetConnection(ctx, id)
	if err != nil {
		return fmt.Errorf("disconnect: %w", err)
	}
	var rev connect.Revocation
	if s.cfg.Connect != nil {
		rev = s.cfg.Connect.RevocationFor(ctx, conn)
	}
	if err := s.cfg.Store.DeleteConnection(ctx, id); err != nil {
		return fmt.Errorf("disconnect: %w", err)
	}
	if p, ok := s.cfg.Registry.Get(conn.Provider); ok {
		// Cached previews may have been fetched with its credential.
		p.Forget()
	}
	if s.cfg.Connect != nil {
		s.cfg.Connect.Revoke(ctx, rev)
	}
	return nil
}
