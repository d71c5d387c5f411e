package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

// TestReplicasShareClaims: replicas with pools of their own on one
// database claim due polls and pending marks at once; no subscription
// is handed to two of them, and between them they get every one
// (FOR UPDATE SKIP LOCKED; issue 11: each subscription polled once per
// interval by one replica).
func TestReplicasShareClaims(t *testing.T) {
	dsn := cluster.Database(t)
	ctx := t.Context()
	const replicas, subs = 3, 300
	stores := make([]*postgres.Store, replicas)
	for i := range stores {
		s, err := postgres.Open(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		stores[i] = s
	}
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	require.NoError(t, stores[0].CreateConnection(ctx, store.Connection{ID: "c1", Provider: "github", Status: store.StatusActive}))
	var all []store.Subscription
	var marks []store.Subscription
	for i := range subs {
		k := store.SubscriptionKey{Provider: "github", ConnectionID: "c1", URI: fmt.Sprintf("https://github.com/a/b/issues/%d", i)}
		all = append(all, store.Subscription{SubscriptionKey: k, AttrHash: "h", CreatedAt: now, UpdatedAt: now})
		marks = append(marks, store.Subscription{
			SubscriptionKey: k, UpdatedAt: now,
			Refresh: store.RefreshRecord{At: now, Trigger: "webhook", Outcome: store.RefreshPending},
		})
	}
	_, err := stores[0].PutSubscriptions(ctx, all)
	require.NoError(t, err)
	_, err = stores[0].PutSubscriptions(ctx, marks)
	require.NoError(t, err)

	for _, what := range []string{"polls", "pending"} {
		t.Run(what, func(t *testing.T) {
			got := make([][]store.SubscriptionKey, replicas)
			var wg sync.WaitGroup
			for r, s := range stores {
				wg.Go(func() {
					owner := fmt.Sprintf("replica-%d", r)
					for {
						var claimed []store.Subscription
						var err error
						if what == "polls" {
							claimed, err = s.ClaimDuePolls(ctx, "github", owner, now, time.Minute, 7)
						} else {
							claimed, err = s.ClaimPending(ctx, owner, now, time.Minute, 7)
						}
						if !assert.NoError(t, err) || len(claimed) == 0 {
							return
						}
						for _, c := range claimed {
							got[r] = append(got[r], c.SubscriptionKey)
						}
					}
				})
			}
			wg.Wait()
			seen := map[store.SubscriptionKey]int{}
			for r := range got {
				for _, k := range got[r] {
					seen[k]++
				}
			}
			assert.Len(t, seen, subs)
			for k, n := range seen {
				assert.Equal(t, 1, n, "%v claimed %d times", k, n)
			}
		})
	}
}
