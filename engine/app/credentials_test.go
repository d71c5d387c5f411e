package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/live"
	"github.com/unfurld/unfurld/engine/store"
)

// TestOneCredentialPolicy: the unfurl route and the live refresher
// follow the same credential policy (connect.Service.Unfurl), checked
// through each: an upstream 401 to a connection's own token renews it
// once and retries with the new one; a 401 that carries a Retry-After
// renews nothing; a 401 whose renewal is refused marks the connection
// for reconnecting (issue 3 item 6, TH-37).
func TestOneCredentialPolicy(t *testing.T) {
	// fetch runs one fetch of uri as the connection through the caller
	// under test and reports whether it brought the item's current state.
	callers := []struct {
		name  string
		fetch func(t *testing.T, e *flowEnv, access string, k store.SubscriptionKey) (fresh bool)
	}{
		{"unfurl route", func(t *testing.T, e *flowEnv, access string, k store.SubscriptionKey) bool {
			e.clock.Advance(time.Minute) // past the result cache
			st, out := e.unfurl(access, k.URI)
			require.Equal(t, http.StatusOK, st, out)
			return strings.Contains(out, "Item v2")
		}},
		{"live refresh", func(t *testing.T, e *flowEnv, _ string, k store.SubscriptionKey) bool {
			o, err := e.app.Refresher.Refresh(t.Context(), k, live.TriggerPoll)
			require.NoError(t, err)
			return o.Queued
		}},
	}
	for _, c := range callers {
		t.Run(c.name, func(t *testing.T) {
			e := newFlowEnv(t)
			code := e.connect("nc-policy", "st-policy")
			status, tok := e.tokenCall(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedirect}})
			require.Equal(t, http.StatusOK, status, tok)
			access := tok["access_token"].(string)
			const uri = "https://tracker.example.com/items/1"
			st, out := e.unfurl(access, uri)
			require.Equal(t, http.StatusOK, st, out)
			conns, err := e.st.ListConnections(t.Context(), "tracker")
			require.NoError(t, err)
			require.Len(t, conns, 1)
			k := store.SubscriptionKey{Provider: "tracker", ConnectionID: conns[0].ID, URI: uri}

			// A 401 with a Retry-After: the token is fine, nothing renewed.
			rateLimit(e.up, true)
			setItem(e.up, "1", `{"title":"Item v2","state":"open"}`)
			assert.False(t, c.fetch(t, e, access, k))
			assert.Zero(t, e.up.CountTokenCalls("refresh_token"), "a rate limit renews nothing")
			rateLimit(e.up, false)

			// The token is refused: renewed once, and the retry brings v2.
			e.up.ExpireAccessTokens()
			assert.True(t, c.fetch(t, e, access, k), "the retry with the renewed token")
			assert.Equal(t, 1, e.up.CountTokenCalls("refresh_token"))
			conn, err := e.st.GetConnection(t.Context(), k.ConnectionID)
			require.NoError(t, err)
			assert.Equal(t, store.StatusActive, conn.Status)

			// Refused again and the renewal refused: reconnect.
			e.up.ExpireAccessTokens()
			e.up.FailRefresh(http.StatusBadRequest, "invalid_grant")
			setItem(e.up, "1", `{"title":"Item v3","state":"open"}`)
			assert.False(t, c.fetch(t, e, access, k))
			conn, err = e.st.GetConnection(t.Context(), k.ConnectionID)
			require.NoError(t, err)
			assert.Equal(t, store.StatusReconnect, conn.Status)
		})
	}
}
