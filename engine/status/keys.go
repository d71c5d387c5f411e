package status

import (
	"context"
	"fmt"
	"time"

	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
)

// AddSealingKeys fills r.SealingKeys: per key id, primary first, the
// connections, pending flows and refresh successors it seals, so an
// operator rotating keys sees when an old key seals nothing any more and
// may leave server.secret_keys (security.md TH-42). Only the key ids in
// the sealed values' headers are read; nothing is opened.
func (r *Report) AddSealingKeys(ctx context.Context, st store.Store, k *sealing.Keyring, now time.Time) error {
	usage, err := sealing.CountSealed(ctx, st, k, now)
	if err != nil {
		return fmt.Errorf("sealing keys: %w", err)
	}
	r.SealingKeys = usage
	return nil
}
