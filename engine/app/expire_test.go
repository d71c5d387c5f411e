package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// TestSweepExpiresLinksNotUnfurled: with live.expire_after 72h, the
// minute sweep deletes the subscriptions of links last unfurled more than
// 72 hours ago and keeps the others; without the setting nothing is
// deleted.
func TestSweepExpiresLinksNotUnfurled(t *testing.T) {
	for _, set := range []bool{true, false} {
		t.Run(map[bool]string{true: "Set", false: "Unset"}[set], func(t *testing.T) {
			e := newFlowEnv(t, func(yml string) string {
				if !set {
					return yml
				}
				return strings.Replace(yml, "    display_name: Tracker\n", "    display_name: Tracker\n    live: {expire_after: 72h}\n", 1)
			})
			ctx := t.Context()
			now := e.clock.Now()
			conn := store.Connection{ID: "c1", Provider: "tracker", AccountKey: "tracker:1", Status: store.StatusActive, CreatedAt: now}
			require.NoError(t, e.st.CreateConnection(ctx, conn))
			old := store.SubscriptionKey{Provider: "tracker", ConnectionID: "c1", URI: "https://tracker.example.com/items/1"}
			recent := store.SubscriptionKey{Provider: "tracker", ConnectionID: "c1", URI: "https://tracker.example.com/items/2"}
			_, err := e.st.PutSubscriptions(ctx, []store.Subscription{
				{SubscriptionKey: old, AttrHash: "h", CreatedAt: now.Add(-100 * time.Hour), UpdatedAt: now.Add(-100 * time.Hour), UnfurledAt: now.Add(-73 * time.Hour)},
				{SubscriptionKey: recent, AttrHash: "h", CreatedAt: now.Add(-100 * time.Hour), UpdatedAt: now.Add(-100 * time.Hour), UnfurledAt: now.Add(-71 * time.Hour)},
			})
			require.NoError(t, err)

			e.app.Sweep(ctx)
			_, err = e.st.GetSubscription(ctx, old)
			if set {
				require.ErrorIs(t, err, store.ErrNotFound, "not unfurled for 73h: no longer tracked")
				assert.Contains(t, e.logs.String(), "links no longer tracked")
			} else {
				require.NoError(t, err, "kept without expire_after")
			}
			_, err = e.st.GetSubscription(ctx, recent)
			require.NoError(t, err, "unfurled 71h ago: tracked")
		})
	}
}
