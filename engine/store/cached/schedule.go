package cached

import (
	"context"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// ExpireSubscriptions implements store.Schedule: the recorder forgets the
// hashes of the expired links, so the next unfurl of one records it again
// at once instead of trusting, for up to knownSubTTL, a subscription that
// is gone. A record of one queued meanwhile may land after the delete:
// the link was just unfurled, so tracking it again is right. The other
// Schedule methods touch no cached state and pass through.
func (s *Store) ExpireSubscriptions(ctx context.Context, provider string, before time.Time, limit int) ([]store.SubscriptionKey, error) {
	keys, err := s.Store.ExpireSubscriptions(ctx, provider, before, limit)
	s.subs.forgetKeys(keys...)
	return keys, err
}
