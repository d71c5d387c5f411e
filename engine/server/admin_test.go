package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/status"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

const explainAdminToken = "admin-token-for-the-server-test-0123456789"

// TestAdminExplainsConnection: /admin/status?connection= carries the
// connection's story (tokens Notion holds, the credential's state, the
// last failures) behind the admin token, and never a token value or
// digest (TH-41, TH-49).
func TestAdminExplainsConnection(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Server.AdminToken = config.Secret(explainAdminToken) })
	tok, connID := h.token("tracker")
	h.up.Set("/api/projects/acme/items/2", upstreamtest.Response{Status: http.StatusBadGateway, Body: `{"message":"` + upstreamBody + `"}`})
	h.unfurl("tracker", tok, "https://tracker.example.com/acme/items/2")

	get := func(bearer string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/admin/status?connection="+connID, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		rec := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(rec, req)
		return rec
	}
	assert.Equal(t, http.StatusUnauthorized, get("").Code)
	assert.Equal(t, http.StatusUnauthorized, get("wrong").Code)

	rec := get(explainAdminToken)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var r status.Report
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r))
	require.NotNil(t, r.Story)
	c := r.Story.Connection
	require.NotNil(t, c)
	assert.Equal(t, store.StatusActive, c.Status)
	assert.Equal(t, status.CredentialView{Kind: config.AuthNone}, c.Upstream, "the provider's shared token: nothing per user")
	require.Len(t, c.Notion.Tokens, 1)
	assert.Equal(t, "access", c.Notion.Tokens[0].Kind)
	require.Len(t, c.Failures, 1)
	assert.Equal(t, "https://tracker.example.com/acme/items/2", c.Failures[0].URI)
	assert.Equal(t, 503, c.Failures[0].Status)

	body := rec.Body.String()
	for _, secret := range []string{tok, issuer.Digest(tok), upstreamBody, "sekrit-upstream-token"} {
		assert.NotContains(t, body, secret)
	}
}
