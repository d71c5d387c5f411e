package postgres

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/unfurld/unfurld/engine/store"
)

// TestChangePayloadRoundTrip: every change survives the notice's text
// payload, bytes that are not UTF-8 and dots included; one too long for
// a notice becomes the coarser ChangeSubscriptions; a payload this
// version cannot read is refused (the listener then drops everything).
func TestChangePayloadRoundTrip(t *testing.T) {
	key := store.SubscriptionKey{Provider: "tracker", ConnectionID: "c.1", URI: "https://t.example/\xff\x00?a=b.c"}
	tests := []struct {
		name string
		in   store.Change
		want store.Change
	}{
		{"token", store.Change{Kind: store.ChangeToken, ID: "ab12"}, store.Change{Kind: store.ChangeToken, ID: "ab12"}},
		{"connection", store.Change{Kind: store.ChangeConnection, ID: "c.1"}, store.Change{Kind: store.ChangeConnection, ID: "c.1"}},
		{"grant", store.Change{Kind: store.ChangeGrant, ID: "g"}, store.Change{Kind: store.ChangeGrant, ID: "g"}},
		{"tokens", store.Change{Kind: store.ChangeTokens}, store.Change{Kind: store.ChangeTokens}},
		{"subscription", store.Change{Kind: store.ChangeSubscription, Sub: key}, store.Change{Kind: store.ChangeSubscription, Sub: key}},
		{"uri", store.Change{Kind: store.ChangeURI, Sub: store.SubscriptionKey{Provider: "p", URI: key.URI}},
			store.Change{Kind: store.ChangeURI, Sub: store.SubscriptionKey{Provider: "p", URI: key.URI}}},
		{"too long", store.Change{Kind: store.ChangeURI, Sub: store.SubscriptionKey{Provider: "p", URI: strings.Repeat("x", maxPayload)}},
			store.Change{Kind: store.ChangeSubscriptions}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := encodeChange(tc.in)
			assert.LessOrEqual(t, len(p), maxPayload)
			got, ok := decodeChange(p)
			assert.True(t, ok)
			assert.Equal(t, tc.want, got)
		})
	}
	for _, bad := range []string{"", "?", "t!!", "s" + "YQ", "u"} {
		_, ok := decodeChange(bad)
		assert.False(t, ok, "%q", bad)
	}
}
