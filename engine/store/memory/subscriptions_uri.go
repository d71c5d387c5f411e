package memory

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/unfurld/unfurld/engine/store"
)

// ListSubscriptionsByURIPrefix implements store.Store, in (uri,
// connection) order like the bbolt index.
func (s *Store) ListSubscriptionsByURIPrefix(ctx context.Context, provider, prefix string, limit int) ([]store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	var out []store.Subscription
	for k, sub := range s.subs {
		if k.Provider == provider && strings.HasPrefix(k.URI, prefix) {
			out = append(out, sub)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b store.Subscription) int {
		return cmp.Or(strings.Compare(a.URI, b.URI), strings.Compare(a.ConnectionID, b.ConnectionID))
	})
	if len(out) > limit {
		out = out[:max(limit, 0)]
	}
	return out, nil
}
