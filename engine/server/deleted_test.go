package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/store"
)

const deletedPath = "/providers/tracker/deleted"

// grant is one connection with the tokens Notion holds for it, after a
// real leg B, a refresh and an unfurl (so it has a subscription).
type grant struct {
	conn    string
	spent   string // the refresh token rotated away
	access  string
	refresh string
}

func (h *oauthHarness) grant(providerName string) grant {
	h.t.Helper()
	t := h.t
	code, conn := h.code(providerName)
	form := func(s string) string {
		if providerName == "wiki" {
			s = strings.Replace(s, "client_id=tracker", "client_id=wiki", 1)
			s = strings.Replace(s, url.QueryEscape(trackerSecret), url.QueryEscape(wikiSecret), 1)
		}
		return s
	}
	path := "/providers/" + providerName + "/token"
	first := decodeToken(t, h.send(tokenReq{path: path, body: form(notionForm(code))}))
	g := grant{conn: conn, access: first.AccessToken}
	if first.RefreshToken != "" {
		second := decodeToken(t, h.send(tokenReq{path: path, body: form(refreshForm(first.RefreshToken))}))
		g.spent, g.access, g.refresh = first.RefreshToken, second.AccessToken, second.RefreshToken
	}
	uri := "https://tracker.example.com/acme/items/1"
	if providerName == "wiki" {
		uri = "https://wiki.example.com/pages/home"
	}
	require.Equal(t, http.StatusOK, h.unfurl(providerName, g.access, uri).Code)
	return g
}

// alive reports whether the grant's connection, tokens and subscriptions
// are all still stored; gone whether none are.
func (h *oauthHarness) alive(t *testing.T, g grant) bool {
	t.Helper()
	ctx := t.Context()
	_, connErr := h.st.GetConnection(ctx, g.conn)
	_, accErr := h.st.GetToken(ctx, store.KindAccess, issuer.Digest(g.access))
	subs := 0
	for _, s := range subscriptions(t, h.st) {
		if s.ConnectionID == g.conn {
			subs++
		}
	}
	present := []bool{connErr == nil, accErr == nil, subs > 0}
	if g.refresh != "" {
		_, err := h.st.GetToken(ctx, store.KindRefresh, issuer.Digest(g.refresh))
		present = append(present, err == nil)
	}
	all, none := true, true
	for _, p := range present {
		all = all && p
		none = none && !p
	}
	require.True(t, all || none, "partial state: %v", present)
	return all
}

func (h *oauthHarness) callDeleted(method, path, authz, contentType, body string) *httptest.ResponseRecorder {
	h.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	return rec
}

func TestDeletedErasesTheConnectionProtocol8(t *testing.T) {
	jsonBody := func(k, v string) string {
		b, _ := json.Marshal(map[string]any{k: v, "bot_id": "b-1", "workspace_id": "w-1"})
		return string(b)
	}
	tests := []struct {
		name string
		call func(h *oauthHarness, g grant) *httptest.ResponseRecorder
	}{
		{"DELETE with bearer, no body", func(h *oauthHarness, g grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "Bearer "+g.access, "", "")
		}},
		{"DELETE with JSON access_token", func(h *oauthHarness, g grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "", "application/json", jsonBody("access_token", g.access))
		}},
		{"DELETE with JSON token, no content type", func(h *oauthHarness, g grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "", "", jsonBody("token", g.access))
		}},
		{"DELETE with form refresh_token", func(h *oauthHarness, g grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "", "application/x-www-form-urlencoded", "refresh_token="+url.QueryEscape(g.refresh)+"&bot_id=b-1")
		}},
		{"POST with bearer and JSON", func(h *oauthHarness, g grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodPost, deletedPath, "Bearer "+g.access, "application/json", `{"external_account":{"key":"acct"}}`)
		}},
		{"DELETE with an expired access token", func(h *oauthHarness, g grant) *httptest.ResponseRecorder {
			h.clock.Advance(2 * time.Hour)
			return h.callDeleted(http.MethodDelete, deletedPath, "Bearer "+g.access, "", "")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newOAuthHarness(t, time.Hour)
			g := h.grant("tracker")
			other := h.grant("tracker")
			wiki := h.grant("wiki")
			require.True(t, h.alive(t, g))

			rec := tc.call(h, g)

			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Empty(t, rec.Body.String())
			assert.False(t, h.alive(t, g), "connection, tokens and subscription erased together")
			_, err := h.st.GetToken(t.Context(), store.KindRefresh, issuer.Digest(g.spent))
			require.ErrorIs(t, err, store.ErrNotFound, "the spent marker goes too")
			assert.True(t, h.alive(t, other), "another connection is untouched")
			assert.True(t, h.alive(t, wiki))
			assert.Equal(t, http.StatusUnauthorized, h.unfurl("tracker", g.access, "https://tracker.example.com/acme/items/1").Code)

			// Idempotent: the same call again is a 200 that changes nothing.
			before := h.wc.writes.Load()
			again := tc.call(h, g)
			require.Equal(t, http.StatusOK, again.Code)
			assert.Empty(t, again.Body.String())
			assert.Equal(t, before, h.wc.writes.Load())
			assert.True(t, h.alive(t, other))
		})
	}
}

// TestDeletedBadInputsTH39 covers forged and malformed callbacks: nothing
// changes, and the answer tells nothing about which tokens exist.
func TestDeletedBadInputsTH39(t *testing.T) {
	tests := []struct {
		name   string
		call   func(h *oauthHarness, g, wiki grant) *httptest.ResponseRecorder
		status int
	}{
		{"no credential, empty body", func(h *oauthHarness, _, _ grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "", "", "")
		}, 401},
		{"identifying fields only", func(h *oauthHarness, g, _ grant) *httptest.ResponseRecorder {
			conn, err := h.st.GetConnection(t.Context(), g.conn)
			require.NoError(t, err)
			b, _ := json.Marshal(map[string]any{"external_account": map[string]string{"key": conn.AccountKey}, "bot_id": "b-1", "workspace_id": "w-1", "user_id": "u-1"})
			return h.callDeleted(http.MethodDelete, deletedPath, "", "application/json", string(b))
		}, 401},
		{"form with key only", func(h *oauthHarness, g, _ grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "", "application/x-www-form-urlencoded", "key=acct-"+g.conn)
		}, 401},
		{"Basic instead of bearer", func(h *oauthHarness, g, _ grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "Basic dHJhY2tlcjp4", "", "")
		}, 401},
		{"empty bearer", func(h *oauthHarness, _, _ grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "Bearer ", "", "")
		}, 401},
		{"unknown token", func(h *oauthHarness, _, _ grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "Bearer "+issuer.PrefixAccess+"bm90LW91cnM", "", "")
		}, 200},
		{"garbage token", func(h *oauthHarness, _, _ grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "Bearer garbage", "", "")
		}, 200},
		{"another provider's token (TH-27)", func(h *oauthHarness, _, wiki grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "Bearer "+wiki.access, "", "")
		}, 200},
		{"spent refresh token", func(h *oauthHarness, g, _ grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "", "application/json", `{"refresh_token":"`+g.spent+`"}`)
		}, 200},
		{"token in the query only", func(h *oauthHarness, g, _ grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath+"?access_token="+g.access, "", "", "")
		}, 401},
		{"body over the limit (TH-47)", func(h *oauthHarness, g, _ grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, deletedPath, "", "application/json", `{"access_token":"`+g.access+`","pad":"`+strings.Repeat("a", 70<<10)+`"}`)
		}, 413},
		{"GET", func(h *oauthHarness, g, _ grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodGet, deletedPath, "Bearer "+g.access, "", "")
		}, 405},
		{"unknown provider", func(h *oauthHarness, g, _ grant) *httptest.ResponseRecorder {
			return h.callDeleted(http.MethodDelete, "/providers/nope/deleted", "Bearer "+g.access, "", "")
		}, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newOAuthHarness(t, time.Hour)
			g := h.grant("tracker")
			wiki := h.grant("wiki")
			before := h.wc.writes.Load()

			rec := tc.call(h, g, wiki)

			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			switch tc.status {
			case http.StatusOK:
				assert.Empty(t, rec.Body.String(), "the same answer as for a known token")
			case http.StatusUnauthorized:
				assert.Contains(t, rec.Header().Get("WWW-Authenticate"), "Bearer")
				assert.JSONEq(t, `{"error":{"status":401,"message":"invalid or missing access token"}}`, rec.Body.String())
			}
			assert.Equal(t, before, h.wc.writes.Load(), "nothing changes")
			assert.True(t, h.alive(t, g))
			assert.True(t, h.alive(t, wiki))
		})
	}
}

func TestDeletedLogsShapeNotValuesTH49(t *testing.T) {
	h := newOAuthHarness(t, time.Hour)
	g := h.grant("tracker")
	body, _ := json.Marshal(map[string]any{
		"access_token":     g.access,
		"external_account": map[string]string{"key": "acct-private-key", "name": "Jane Private"},
		"bot_id":           "bot-private-id",
		"items":            []any{1, "x", true, nil, 5},
		g.refresh:          "token as a key",
	})

	rec := h.callDeleted(http.MethodDelete, deletedPath, "Bearer "+g.refresh, "application/json", string(body))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.False(t, h.alive(t, g))

	logs := h.logs.String()
	require.Contains(t, logs, "deleted token callback")
	for _, name := range []string{"access_token", "external_account", "key", "name", "bot_id", "items", "<redacted>", "connections_deleted=1"} {
		assert.Contains(t, logs, name)
	}
	for _, secret := range []string{g.access, g.refresh, g.spent, "acct-private-key", "Jane Private", "bot-private-id", "token as a key"} {
		assert.NotContains(t, logs, secret)
	}
}
