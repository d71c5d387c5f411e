package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/notion/notiontest"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
)

const itemURI = "https://tracker.example.com/items/1"

// notionUser is one Notion user of workspace ws-1: the answer Notion gives
// to that user's code exchange (protocol 4.4).
func notionUser(id, notionToken string) notiontest.TokenResponseJSON {
	return notiontest.TokenResponseJSON{
		AccessToken: notionToken, WorkspaceID: "ws-1", WorkspaceName: "Acme HQ",
		BotID: "bot-" + id, Owner: notiontest.UserOwner(id, id),
	}
}

// redeem is R4 for a code from connect: our access and refresh tokens.
func (e *flowEnv) redeem(code string) (access, refresh string) {
	e.t.Helper()
	status, tok := e.tokenCall(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedirect}})
	require.Equal(e.t, http.StatusOK, status, tok)
	access, _ = tok["access_token"].(string)
	refresh, _ = tok["refresh_token"].(string)
	require.NotEmpty(e.t, access)
	return access, refresh
}

// deleted is R9, the Deleted Token Callback (protocol 8), with a bearer.
func (e *flowEnv) deleted(token string) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodDelete, e.srv.URL+"/providers/tracker/deleted", nil)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// connectionOf returns the one connection of a Notion owner and opens its
// Notion token.
func (e *flowEnv) connectionOf(owner string) (store.Connection, string) {
	e.t.Helper()
	conns, err := e.st.ListConnections(e.t.Context(), "tracker")
	require.NoError(e.t, err)
	var found []store.Connection
	for _, c := range conns {
		if c.Owner == owner {
			found = append(found, c)
		}
	}
	require.Len(e.t, found, 1, "one connection of %s", owner)
	tok, err := sealing.OpenConnectionField(e.app.Keyring, found[0], sealing.FieldNotionToken, found[0].NotionToken)
	require.NoError(e.t, err)
	return found[0], string(tok)
}

// TestNotionUsersKeepOwnConnections drives finding 8 through the real
// flow: two Notion users of one workspace connect the same upstream
// account. Each gets a connection of their own with their own Notion
// token (TH-39), Notion sees the same stable account key for both
// (TH-14), each one's previews work, a reconnect replaces only its own
// connection, and one user's Deleted Token Callback leaves the other's
// previews, connection, tokens and subscriptions as they were.
func TestNotionUsersKeepOwnConnections(t *testing.T) {
	e := newFlowEnv(t)
	ctx := t.Context()
	accessA, refreshA := e.redeem(e.connectAs("nc-a", "st-a", notionUser("user-a", "notion-access-a-secretvalue")))
	accessB, _ := e.redeem(e.connectAs("nc-b", "st-b", notionUser("user-b", "notion-access-b-secretvalue")))

	calls := e.notion.TokenCalls()
	require.Len(t, calls, 2)
	for _, c := range calls {
		require.NotNil(t, c.Body.ExternalAccount)
		assert.Equal(t, "tracker:4242", c.Body.ExternalAccount.Key, "the stable upstream id, for both users (TH-14)")
	}
	connA, tokA := e.connectionOf("user:user-a")
	connB, tokB := e.connectionOf("user:user-b")
	assert.NotEqual(t, connA.ID, connB.ID)
	assert.Equal(t, connA.AccountKey, connB.AccountKey)
	assert.Equal(t, "ws-1", connB.WorkspaceID)
	assert.Equal(t, "bot-user-a", connA.BotID)
	assert.Equal(t, "notion-access-a-secretvalue", tokA, "A's Notion token was not replaced by B's")
	assert.Equal(t, "notion-access-b-secretvalue", tokB)

	for _, access := range []string{accessA, accessB} {
		st, out := e.unfurl(access, itemURI)
		require.Equal(t, http.StatusOK, st, out)
		assert.Contains(t, out, "Fix the flux capacitor")
	}
	subA := store.SubscriptionKey{Provider: "tracker", ConnectionID: connA.ID, URI: itemURI}
	subB := store.SubscriptionKey{Provider: "tracker", ConnectionID: connB.ID, URI: itemURI}
	for _, k := range []store.SubscriptionKey{subA, subB} {
		_, err := e.st.GetSubscription(ctx, k)
		require.NoError(t, err, "each user's unfurl is recorded under their connection")
	}

	// A reconnects: A keeps one connection, with its ID and a new Notion
	// token; B's is untouched.
	accessA2, _ := e.redeem(e.connectAs("nc-a2", "st-a2", notionUser("user-a", "notion-access-a2-secretvalue")))
	again, tokA2 := e.connectionOf("user:user-a")
	assert.Equal(t, connA.ID, again.ID, "a reconnect replaces its own entry")
	assert.Equal(t, "notion-access-a2-secretvalue", tokA2)
	_, tokB = e.connectionOf("user:user-b")
	assert.Equal(t, "notion-access-b-secretvalue", tokB)
	conns, err := e.st.ListConnections(ctx, "tracker")
	require.NoError(t, err)
	assert.Len(t, conns, 2)

	// B disconnects (protocol 8): only B's connection goes.
	require.Equal(t, http.StatusOK, e.deleted(accessB))
	_, err = e.st.GetConnection(ctx, connB.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = e.st.GetSubscription(ctx, subB)
	require.ErrorIs(t, err, store.ErrNotFound)
	st, _ := e.unfurl(accessB, itemURI)
	assert.Equal(t, http.StatusUnauthorized, st, "B's token is revoked")

	_, tokA2 = e.connectionOf("user:user-a")
	assert.Equal(t, "notion-access-a2-secretvalue", tokA2, "A's connection and Notion token stay")
	_, err = e.st.GetSubscription(ctx, subA)
	require.NoError(t, err, "A's subscription stays")
	for _, access := range []string{accessA, accessA2} {
		st, out := e.unfurl(access, itemURI)
		require.Equal(t, http.StatusOK, st, "A's previews still work, no 401: %s", out)
		assert.Contains(t, out, "Fix the flux capacitor")
	}
	status, tok := e.tokenCall(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshA}})
	assert.Equal(t, http.StatusOK, status, "A's refresh token still works: %v", tok)
}

// TestNotionOutageDuringConnect is finding 9 and security.md F7: when
// exchanging Notion's code fails because Notion is down, the browser goes
// back to Notion with temporarily_unavailable (RFC 6749 4.1.2.1), not
// access_denied; a refusal (a 4xx) stays access_denied. Either way the
// code exchange is tried once, nothing is stored and the flow is spent.
func TestNotionOutageDuringConnect(t *testing.T) {
	cases := []struct {
		name    string
		answer  notiontest.Response
		want    string // the error code in the redirect
		explain string // part of error_description
	}{
		{"400 invalid_grant is a refusal", notiontest.Response{Status: 400, Body: `{"error":"invalid_grant","error_description":"Invalid code: this code has been revoked."}`}, "access_denied", "expired"},
		{"401 invalid_client is a refusal", notiontest.Response{Status: 401, Body: `{"error":"invalid_client","error_description":"Invalid client."}`}, "access_denied", "did not accept"},
		{"F7 429 rate limited", notiontest.Response{Status: 429, RetryAfter: "2"}, "temporarily_unavailable", "try again"},
		{"F7 500", notiontest.Response{Status: 500}, "temporarily_unavailable", "try again"},
		{"F7 503", notiontest.Response{Status: 503}, "temporarily_unavailable", "try again"},
		{"F7 529 overloaded", notiontest.Response{Status: 529, RetryAfter: "5"}, "temporarily_unavailable", "try again"},
		{"F7 network failure", notiontest.Response{Drop: true}, "temporarily_unavailable", "try again"},
		{"F7 timeout", notiontest.Response{Hang: true}, "temporarily_unavailable", "try again"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var edits []func(string) string
			if tc.answer.Hang {
				// The hung call gives up after notion.timeout; only this
				// case gets a short one, so a slow machine cannot turn
				// the other answers into timeouts.
				edits = append(edits, func(yml string) string {
					return strings.Replace(yml, "  api_base_url: ", "  timeout: 1s\n  api_base_url: ", 1)
				})
			}
			e := newFlowEnv(t, edits...)
			e.notion.AddCode("nc-down", notionUser("user-a", "notion-access-down-secretvalue"))
			csrf := e.consentReady("nc-down")
			e.notion.ScriptToken(tc.answer)
			r := e.postForm("/providers/tracker/consent", url.Values{"csrf": {csrf}, "decision": {"allow"}})
			require.Equal(t, http.StatusFound, r.StatusCode, body(t, r))
			loc, err := url.Parse(r.Header.Get("Location"))
			require.NoError(t, err)
			assert.Equal(t, notionRedirect, loc.Scheme+"://"+loc.Host+loc.Path, "back to the allowlisted redirect_uri")
			q := loc.Query()
			assert.Equal(t, tc.want, q.Get("error"))
			assert.Equal(t, "st-consent", q.Get("state"))
			assert.Contains(t, strings.ToLower(q.Get("error_description")), tc.explain)
			assert.Empty(t, q.Get("code"))
			assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))

			calls := e.notion.TokenCalls()
			require.Len(t, calls, 1, "one exchange, no retry")
			assert.Equal(t, "nc-down", calls[0].Body.Code)
			conns, err := e.st.ListConnections(t.Context(), "")
			require.NoError(t, err)
			assert.Empty(t, conns, "nothing stored")
			// The flow was spent before the exchange: a second Allow
			// cannot run it again.
			r = e.postForm("/providers/tracker/consent", url.Values{"csrf": {csrf}, "decision": {"allow"}})
			assert.Equal(t, http.StatusBadRequest, r.StatusCode)
			assert.Len(t, e.notion.TokenCalls(), 1)
		})
	}
}
