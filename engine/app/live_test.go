package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// TestLiveUpdateAfterConnect runs issue 4 over a connection made by the
// real OAuth flow: the subscription recorded by Notion's unfurl, a change
// upstream found by a refresh, exactly one PATCH to Notion with that
// connection's own (sealed, then opened) Notion token and the full new
// attribute set, and nothing more when nothing changed.
func TestLiveUpdateAfterConnect(t *testing.T) {
	e := newFlowEnv(t)
	ctx := t.Context()
	code := e.connect("nc-live", "st-live")
	status, tok := e.tokenCall(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedirect}})
	require.Equal(t, http.StatusOK, status, tok)
	const uri = "https://tracker.example.com/items/1"
	st, out := e.unfurl(tok["access_token"].(string), uri)
	require.Equal(t, http.StatusOK, st, out)

	conns, err := e.st.ListConnections(ctx, "tracker")
	require.NoError(t, err)
	require.Len(t, conns, 1)
	key := store.SubscriptionKey{Provider: "tracker", ConnectionID: conns[0].ID, URI: uri}
	_, err = e.st.GetSubscription(ctx, key)
	require.NoError(t, err, "the unfurl recorded a subscription")

	// Nothing changed upstream: nothing is queued or sent.
	o, err := e.app.Refresher.Refresh(ctx, key, "poll")
	require.NoError(t, err)
	assert.False(t, o.Queued)
	_, err = e.app.Deliverer.DeliverDue(ctx)
	require.NoError(t, err)
	assert.Empty(t, e.notion.PatchCalls())

	// The item is closed upstream: one PATCH with the full new set.
	setItem(e.up, "1", `{"title":"Fix the flux capacitor","state":"closed"}`)
	o, err = e.app.Refresher.Refresh(ctx, key, "poll")
	require.NoError(t, err)
	require.True(t, o.Queued)
	_, err = e.app.Deliverer.DeliverDue(ctx)
	require.NoError(t, err)
	calls := e.notion.PatchCalls()
	require.Len(t, calls, 1)
	assert.Equal(t, "notion-access-nc-live-secretvalue", calls[0].Token, "the connection's own Notion token")
	assert.Equal(t, http.StatusOK, calls[0].Status)
	body := string(calls[0].Raw)
	assert.Contains(t, body, `"uri":"`+uri+`"`)
	assert.Contains(t, body, "closed")
	assert.Contains(t, body, "Fix the flux capacitor", "full set: the title too")
	assert.True(t, strings.Contains(body, `"id":"dev"`), "full set: the dev attribute too")

	// Refreshing again without a change sends nothing more.
	_, err = e.app.Refresher.Refresh(ctx, key, "poll")
	require.NoError(t, err)
	_, err = e.app.Deliverer.DeliverDue(ctx)
	require.NoError(t, err)
	assert.Len(t, e.notion.PatchCalls(), 1)
}
