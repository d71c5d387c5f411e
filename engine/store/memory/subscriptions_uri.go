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

// SubscriptionKeysByURIs implements store.Store under one hold of the
// lock, each entry's keys in (uri, connection) order like the bbolt
// index before the limit cuts them.
func (s *Store) SubscriptionKeysByURIs(ctx context.Context, provider string, uris, prefixes []string, limit int) ([]store.SubscriptionKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.SubscriptionKey
	collect := func(match func(uri string) bool) {
		var keys []store.SubscriptionKey
		for k := range s.subs {
			if k.Provider == provider && match(k.URI) {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(a, b store.SubscriptionKey) int {
			return cmp.Or(strings.Compare(a.URI, b.URI), strings.Compare(a.ConnectionID, b.ConnectionID))
		})
		out = append(out, keys[:min(len(keys), max(limit, 0))]...)
	}
	for _, uri := range uris {
		collect(func(u string) bool { return u == uri })
	}
	for _, prefix := range prefixes {
		collect(func(u string) bool { return strings.HasPrefix(u, prefix) })
	}
	return out, nil
}
