package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// TestUnfurlKeepsLastFailures: a failed unfurl is kept on its connection
// (which link, when, which status, why) for `unfurld status
// --connection`; a successful one writes nothing; the same failure
// repeated within a minute is written once; the list stays bounded. The
// detail names the upstream's failure, never its body or a credential
// (TH-36, TH-49).
func TestUnfurlKeepsLastFailures(t *testing.T) {
	h := newHarness(t)
	tok, connID := h.token("tracker")
	const okURI = "https://tracker.example.com/acme/items/1"
	const badURI = "https://tracker.example.com/acme/items/2"
	h.up.Set("/api/projects/acme/items/2", upstreamtest.Response{Status: http.StatusBadGateway, Body: `{"message":"` + upstreamBody + `"}`})

	conn := func() store.Connection {
		c, err := h.st.GetConnection(t.Context(), connID)
		require.NoError(t, err)
		return c
	}
	require.Equal(t, http.StatusOK, h.unfurl("tracker", tok, okURI).Code)
	assert.Empty(t, conn().Failures, "a successful unfurl writes no failure")
	before := conn().UpdatedAt

	rec := h.unfurl("tracker", tok, badURI)
	status, _ := errorSet(t, rec)
	require.Equal(t, 503, status)
	c := conn()
	require.Len(t, c.Failures, 1)
	f := c.Failures[0]
	assert.Equal(t, "unfurl", f.Call)
	assert.Equal(t, badURI, f.URI)
	assert.Equal(t, 503, f.Status)
	assert.True(t, f.At.Equal(h.clock.Now()))
	assert.Contains(t, f.Detail, "status in request item")
	assert.NotContains(t, f.Detail, upstreamBody)
	assert.NotContains(t, f.Detail, "sekrit-upstream-token")
	assert.Equal(t, before, c.UpdatedAt, "the record is a diagnostic, not a change of the connection")

	// Notion's retry a few seconds later: not written again.
	h.clock.Advance(10 * time.Second)
	h.unfurl("tracker", tok, badURI)
	assert.Len(t, conn().Failures, 1)

	// Later, or another link: written, and bounded.
	for range store.MaxConnectionFailures + 1 {
		h.clock.Advance(2 * time.Minute)
		h.unfurl("tracker", tok, badURI)
	}
	c = conn()
	require.Len(t, c.Failures, store.MaxConnectionFailures)
	assert.True(t, c.Failures[store.MaxConnectionFailures-1].At.Equal(h.clock.Now()), "the newest is last")
}
