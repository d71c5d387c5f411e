package bolt

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// TestSubKeysMatchCompoundKeys checks that the keys PutSubscriptions
// builds into one buffer are those of subKey and subURIKey, escaping
// included, and that appending to one cannot overwrite the next.
func TestSubKeysMatchCompoundKeys(t *testing.T) {
	tests := []struct {
		name string
		subs []store.SubscriptionKey
	}{
		{"none", nil},
		{"one", []store.SubscriptionKey{{Provider: "github", ConnectionID: "c1", URI: "https://x/1"}}},
		{"escaped parts", []store.SubscriptionKey{
			{Provider: "p", ConnectionID: "c\x00u", URI: "x"},
			{Provider: "p", ConnectionID: "c", URI: "u\x00x\x01\x01"},
			{Provider: "", ConnectionID: "", URI: ""},
			{Provider: "\x01\x00", ConnectionID: "\x00\x00", URI: "\x01"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subs := make([]store.Subscription, len(tt.subs))
			for i, k := range tt.subs {
				subs[i].SubscriptionKey = k
			}
			keys := newSubKeys(subs)
			for i, k := range tt.subs {
				require.Equal(t, subKey(k), keys.sub(i), "subscription key %d", i)
				require.Equal(t, subURIKey(k), keys.uri(i), "index key %d", i)
			}
			for i := range tt.subs {
				_ = append(keys.sub(i), 0xff)
				_ = append(keys.uri(i), 0xff)
			}
			for i, k := range tt.subs {
				require.Equal(t, subKey(k), keys.sub(i), "subscription key %d after appends", i)
				require.Equal(t, subURIKey(k), keys.uri(i), "index key %d after appends", i)
			}
		})
	}
}
