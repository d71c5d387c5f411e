package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/notion/notiontest"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
)

// connected runs the whole OAuth connection and returns our access token,
// the stored connection and the upstream refresh token it holds.
func (e *flowEnv) connected(notionCode string) (string, store.Connection, string) {
	t := e.t
	t.Helper()
	code := e.connect(notionCode, "state-"+notionCode)
	status, tok := e.tokenCall(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {notionRedirect}})
	require.Equal(t, http.StatusOK, status, tok)
	conns, err := e.st.ListConnections(t.Context(), "tracker")
	require.NoError(t, err)
	require.Len(t, conns, 1)
	upRefresh := e.up.RefreshTokens()
	require.Len(t, upRefresh, 1)
	return tok["access_token"].(string), conns[0], upRefresh[0]
}

// adminDelete calls the admin route.
func (e *flowEnv) adminDelete(id, token string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/admin/connections/"+url.PathEscape(id)+"/delete", nil)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	return resp.StatusCode, body(e.t, resp)
}

// TestDeletedCallbackErasesAndRevokes_TH40_TH41: Notion's Deleted Token
// Callback deletes the connection, the file then holds nothing of it
// (URI, names, account, sealed credentials in any encoding), and the
// upstream grant is revoked with exactly one call carrying the right
// token and client authentication.
func TestDeletedCallbackErasesAndRevokes_TH40_TH41(t *testing.T) {
	e := newFlowEnv(t)
	access, conn, upRefresh := e.connected("nc-erase")
	// Enough links that the subscriptions span several pages.
	var uris []string
	for i := range 60 {
		id := strconv.Itoa(1000 + i)
		setItem(e.up, id, `{"title":"Item `+id+`","state":"open"}`)
		uri := "https://tracker.example.com/items/" + id
		st, out := e.unfurl(access, uri)
		require.Equal(t, http.StatusOK, st, out)
		uris = append(uris, uri)
	}
	uri := uris[0]
	_, err := e.st.GetSubscription(t.Context(), store.SubscriptionKey{Provider: "tracker", ConnectionID: conn.ID, URI: uri})
	require.NoError(t, err, "the unfurl subscribed")

	needles := map[string][]byte{
		"uri": []byte(uri), "workspace name": []byte("Acme HQ"), "account key": []byte(conn.AccountKey),
		"account name": []byte(conn.AccountName), "upstream refresh token": []byte(upRefresh),
	}
	for i, u := range uris {
		needles["uri "+strconv.Itoa(i)] = []byte(u)
	}
	for name, sealed := range map[string][]byte{"notion token": conn.NotionToken, "upstream credential": conn.UpstreamCredential} {
		require.NotEmpty(t, sealed)
		needles[name] = sealed
		needles[name+" (hex)"] = []byte(hex.EncodeToString(sealed))
		needles[name+" (base64)"] = []byte(base64.StdEncoding.EncodeToString(sealed))
	}
	raw, err := os.ReadFile(e.dbPath)
	require.NoError(t, err)
	require.True(t, bytes.Contains(raw, needles["workspace name"]), "the scan sees the connection before deletion")

	req, err := http.NewRequest(http.MethodDelete, e.srv.URL+"/providers/tracker/deleted", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	revs := e.up.Revocations()
	require.Len(t, revs, 1, "exactly one revocation call")
	assert.Equal(t, upRefresh, revs[0].Token)
	assert.Equal(t, "refresh_token", revs[0].Hint)
	assert.True(t, revs[0].ClientOK, "the client authenticates as at the token endpoint")

	require.NoError(t, e.st.(*bolt.Store).WaitErased(t.Context()))
	raw, err = os.ReadFile(e.dbPath)
	require.NoError(t, err)
	for name, n := range needles {
		assert.False(t, bytes.Contains(raw, n), "the file still holds the deleted connection's %s", name)
	}
	assert.NotContains(t, e.logs.String(), upRefresh)
}

// TestAdminDeleteConnection_TH40: the admin route needs the admin token,
// disconnects like the callback (erase, then one revocation), and answers
// 404 for a connection that is gone.
func TestAdminDeleteConnection_TH40(t *testing.T) {
	e := newFlowEnv(t)
	access, conn, upRefresh := e.connected("nc-admin")

	for _, tok := range []string{"", "wrong-" + adminToken} {
		status, _ := e.adminDelete(conn.ID, tok)
		assert.Equal(t, http.StatusUnauthorized, status)
	}
	_, err := e.st.GetConnection(t.Context(), conn.ID)
	require.NoError(t, err, "refused requests change nothing")
	assert.Empty(t, e.up.Revocations())

	status, out := e.adminDelete(conn.ID, adminToken)
	require.Equal(t, http.StatusOK, status, out)
	assert.JSONEq(t, `{"deleted":"`+conn.ID+`"}`, out)
	_, err = e.st.GetConnection(t.Context(), conn.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	revs := e.up.Revocations()
	require.Len(t, revs, 1)
	assert.Equal(t, upRefresh, revs[0].Token)
	st, _ := e.unfurl(access, "https://tracker.example.com/items/1")
	assert.Equal(t, http.StatusUnauthorized, st, "its tokens died with it")

	status, _ = e.adminDelete(conn.ID, adminToken)
	assert.Equal(t, http.StatusNotFound, status)
	assert.Len(t, e.up.Revocations(), 1)
	require.NoError(t, e.st.(*bolt.Store).WaitErased(t.Context()))
}

// TestAPIKeyDisconnectRevokesNothing: an API-key provider has no grant to
// revoke; deleting its connection makes no upstream call.
func TestAPIKeyDisconnectRevokesNothing(t *testing.T) {
	e := newFlowEnv(t)
	e.up.AddKey("good-key-0123456789")
	e.notion.AddCode("nc-key", notiontest.TokenResponseJSON{WorkspaceID: "ws-k"})
	v := url.Values{"code": {"nc-key"}, "client_id": {"keyed"}, "redirect_uri": {notionRedirect}, "response_type": {"code"}, "state": {"st-key"}}
	r := e.get(e.srv.URL + "/providers/keyed/authorize?" + v.Encode())
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	r = e.get(r.Header.Get("Location"))
	csrf := csrfField.FindStringSubmatch(body(t, r))[1]
	r = e.postForm("/providers/keyed/api-key", url.Values{"csrf": {csrf}, "decision": {"allow"}, "api_key": {"good-key-0123456789"}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	r = e.postForm("/providers/keyed/consent", url.Values{"csrf": {csrf}, "decision": {"allow"}})
	require.Equal(t, http.StatusFound, r.StatusCode)
	conns, err := e.st.ListConnections(context.Background(), "keyed")
	require.NoError(t, err)
	require.Len(t, conns, 1)

	status, out := e.adminDelete(conns[0].ID, adminToken)
	require.Equal(t, http.StatusOK, status, out)
	assert.Empty(t, e.up.Revocations())
	assert.False(t, strings.Contains(e.logs.String(), "upstream grant not revoked"))
}
