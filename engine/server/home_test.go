package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/server"
)

// TestHomePage: GET / is a small HTML page naming the providers and
// linking the documentation, with the headers of every other page
// (TH-03, TH-05, TH-10) and nothing from the store or the configuration's
// secrets. Unknown paths stay JSON 404s.
func TestHomePage(t *testing.T) {
	h := newHarness(t)
	rec := h.do(http.MethodGet, "/", "", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	assert.Equal(t, "DENY", rec.Header().Get("X-Frame-Options"))
	assert.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'none'")
	assert.Equal(t, "no-referrer", rec.Header().Get("Referrer-Policy"))
	for _, want := range []string{"<dt>Tracker</dt><dd>tracker.example.com</dd>", "<dt>wiki</dt>", `href="` + server.DocsURL + `"`, `href="/healthz"`} {
		assert.Contains(t, body, want)
	}
	assert.NotContains(t, body, "sekrit-upstream-token")
	assert.NotContains(t, body, h.up.URL, "upstream addresses are not shown")
	for _, third := range []string{"<script", "src=\"http", "href=\"http://"} {
		assert.NotContains(t, body, third, "no script and no third-party resource")
	}

	assert.Contains(t, body, `href="/lab"`, "the lab page is on in development mode: linked")

	// In production without server.lab.enabled there is no lab to link.
	prod := newHarness(t, func(c *config.Config) { c.Server.Mode = config.ModeProduction })
	rec = prod.do(http.MethodGet, "/", "", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.NotContains(t, rec.Body.String(), `href="/lab"`)
	assert.Equal(t, http.StatusNotFound, prod.do(http.MethodGet, "/lab", "", "", "").Code)

	head := h.do(http.MethodHead, "/", "", "", "")
	assert.Equal(t, http.StatusOK, head.Code)

	nf := h.do(http.MethodGet, "/nope", "", "", "")
	assert.Equal(t, http.StatusNotFound, nf.Code)
	assert.True(t, strings.HasPrefix(nf.Header().Get("Content-Type"), "application/json"))
}
