package status_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/status"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
)

// TestConnectionStory: --connection explains a connection: the tokens
// Notion holds (kind, expiry), the upstream credential's state, why it
// needs reconnecting, its last failures, and per link the last push
// Notion refused. Nothing in the JSON is a token, digest or sealed value
// (TH-41, TH-49).
func TestConnectionStory(t *testing.T) {
	ctx := t.Context()
	st := memory.New()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	const uri = "https://github.com/o/r/issues/1"
	c := store.Connection{
		ID: "c1", Provider: "github", AccountKey: "k1", AccountName: "octo", Status: store.StatusReconnect,
		NotionToken: []byte("SEALED-NOTION"), UpstreamCredential: []byte("SEALED-UPSTREAM"),
		UpstreamExpiry: now.Add(-time.Hour), UpstreamRefreshedAt: now.Add(-9 * time.Hour),
		CreatedAt: now.Add(-48 * time.Hour), UpdatedAt: now.Add(-time.Hour),
		Reconnect: store.ConnectionEvent{At: now.Add(-time.Hour), Call: "upstream token refresh", Status: 400, Detail: `refresh upstream token for github: status 400, error "invalid_grant"`},
		Failures: []store.ConnectionEvent{
			{At: now.Add(-3 * time.Hour), Call: "notion push", URI: uri, Status: 400, Detail: "validation_error"},
			{At: now.Add(-2 * time.Hour), Call: "unfurl", URI: uri + "0", Status: 503, Detail: "timeout in request issue"},
		},
	}
	require.NoError(t, st.CreateConnection(ctx, c))
	for _, tok := range []store.Token{
		{Digest: "DIGEST-REFRESH", Kind: store.KindRefresh, Provider: "github", ConnectionID: "c1", CreatedAt: now.Add(-2 * time.Hour)},
		{Digest: "DIGEST-ACCESS", Kind: store.KindAccess, Provider: "github", ConnectionID: "c1", CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)},
		{Digest: "DIGEST-USED", Kind: store.KindRefresh, Provider: "github", ConnectionID: "c1", CreatedAt: now.Add(-5 * time.Hour), ConsumedAt: now.Add(-2 * time.Hour)},
	} {
		require.NoError(t, st.CreateToken(ctx, tok))
	}
	k := store.SubscriptionKey{Provider: "github", ConnectionID: "c1", URI: uri}
	_, err := st.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, AttrHash: "h", CreatedAt: now, UpdatedAt: now})
	require.NoError(t, err)
	require.NoError(t, st.AckOutbox(ctx, store.OutboxItem{SubscriptionKey: k, AttrHash: "h2"}, now.Add(-4*time.Hour)))

	r, err := status.Build(ctx, st, []status.Provider{{Name: "github", Auth: "oauth2"}}, status.Query{Connection: "c1"}, nil, now)
	require.NoError(t, err)
	v := r.Story.Connection
	require.NotNil(t, v)
	assert.True(t, v.Notion.PushToken)
	require.Len(t, v.Notion.Tokens, 2, "the consumed refresh token is no longer Notion's")
	assert.Equal(t, status.TokenView{Kind: "access", CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour), Expired: true}, v.Notion.Tokens[0])
	assert.Equal(t, "refresh", v.Notion.Tokens[1].Kind)
	assert.False(t, v.Notion.Tokens[1].Expired)
	assert.Equal(t, status.CredentialView{Kind: "oauth2", Stored: true, ExpiresAt: now.Add(-time.Hour), Expired: true, RefreshedAt: now.Add(-9 * time.Hour)}, v.Upstream)
	require.NotNil(t, v.Reconnect)
	assert.Equal(t, "upstream token refresh", v.Reconnect.Call)
	assert.Equal(t, 400, v.Reconnect.Status)
	require.Len(t, v.Failures, 2)
	assert.Equal(t, "unfurl", v.Failures[0].Call, "newest first")
	require.Len(t, r.Story.Subscriptions, 1)
	require.NotNil(t, r.Story.Subscriptions[0].LastPushFailure)
	assert.Equal(t, "validation_error", r.Story.Subscriptions[0].LastPushFailure.Detail)
	assert.Equal(t, now.Add(-4*time.Hour), r.Story.Subscriptions[0].DeliveredAt.UTC(), "the last PATCH Notion accepted")

	b, err := json.Marshal(r)
	require.NoError(t, err)
	for _, secret := range []string{"SEALED", "DIGEST", "U0VBTEVE"} { // U0VBTEVE: "SEALED" in base64
		assert.NotContains(t, string(b), secret)
	}

	// Active again (reconnected): the old reason is not shown.
	require.NoError(t, st.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
		c.Status = store.StatusActive
		return c, nil
	}))
	r, err = status.Build(ctx, st, []status.Provider{{Name: "github", Auth: "oauth2"}}, status.Query{Connection: "c1"}, nil, now)
	require.NoError(t, err)
	assert.Nil(t, r.Story.Connection.Reconnect)
}
