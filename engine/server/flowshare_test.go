package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/connect"
	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/notion/notiontest"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/server"
)

// withFlows replaces the harness's server with one that serves the
// connection flow, its pending flows capped at maxFlows.
func withFlows(t *testing.T, h *harness, maxFlows int) {
	t.Helper()
	kr, err := sealing.NewKeyring("t1", bytes.Repeat([]byte{7}, 32), nil)
	require.NoError(t, err)
	nc, err := notion.NewClient(notion.ClientOptions{BaseURL: notiontest.New(t).URL()})
	require.NoError(t, err)
	now := h.clock.Now
	svc, err := connect.New(connect.Options{
		Store: h.st, Keyring: kr, Registry: h.reg, Notion: nc,
		Codes:     &issuer.Issuer{Store: h.st, Keyring: kr, Now: now},
		PublicURL: "https://unfurl.example.com", RedirectURIs: []string{"https://www.notion.so/externalIntegrationAuthCallback"},
		MaxFlows: maxFlows, Now: now,
	})
	require.NoError(t, err)
	h.srv = server.New(server.Config{Settings: h.settings, Store: h.st, Registry: h.reg, Connect: svc, Keyring: kr, Now: now})
}

// authorize sends Notion's authorize redirect (protocol 3.1) from remote.
func (h *harness) authorize(remote string) *httptest.ResponseRecorder {
	v := url.Values{
		"code": {"nc"}, "client_id": {"tracker"}, "redirect_uri": {"https://www.notion.so/externalIntegrationAuthCallback"},
		"response_type": {"code"}, "state": {"st"},
	}
	req := httptest.NewRequest(http.MethodGet, "/providers/tracker/authorize?"+v.Encode(), nil)
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	return rec
}

// TestAuthorizeOneNetworkCannotFillTheFlowCapTH12TH50: addresses of one
// IPv6 /64 share one start budget and one share of the pending-flow cap,
// so however many addresses of it an attacker uses, a user elsewhere can
// still start a flow. Without grouping, 250 addresses of one /64 fill a
// cap of 200 and everyone else gets 503.
func TestAuthorizeOneNetworkCannotFillTheFlowCapTH12TH50(t *testing.T) {
	h := newHarness(t)
	withFlows(t, h, 200) // a share is 10 flows

	admitted := 0
	for i := range 250 {
		rec := h.authorize("[2001:db8:1:2::" + strconv.FormatInt(int64(i+1), 16) + "]:1")
		switch rec.Code {
		case http.StatusSeeOther:
			admitted++
		default:
			require.Equal(t, http.StatusTooManyRequests, rec.Code, rec.Body.String())
			assert.NotEmpty(t, rec.Header().Get("Retry-After"))
		}
	}
	assert.Equal(t, 10, admitted, "one /64 holds one share")

	// Minutes later the start budget is back, but the share is not: its
	// flows are still pending.
	h.clock.Advance(2 * time.Minute)
	rec := h.authorize("[2001:db8:1:2:ffff::1]:1")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	wait, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	require.NoError(t, err)
	assert.InDelta(t, 8*60, wait, 2, "until its oldest flow expires")

	// Users elsewhere are not affected: another /64, IPv4, IPv4-mapped.
	for _, remote := range []string{"[2001:db8:1:3::1]:1", "203.0.113.9:1", "[::ffff:198.51.100.1]:1"} {
		assert.Equal(t, http.StatusSeeOther, h.authorize(remote).Code, remote)
	}

	// Once the flow lifetime has passed, the /64 may start again.
	h.clock.Advance(connect.DefaultFlowTTL)
	assert.Equal(t, http.StatusSeeOther, h.authorize("[2001:db8:1:2::1]:1").Code)
}

// TestAuthorizeStartBudgetPerSlash64TH12: the start rate limit groups an
// IPv6 /64 too.
func TestAuthorizeStartBudgetPerSlash64TH12(t *testing.T) {
	h := newHarness(t)
	withFlows(t, h, 100000) // shares of 1000: only the start budget binds
	for i := range 30 {
		require.Equal(t, http.StatusSeeOther, h.authorize("[2001:db8:5:6::"+strconv.Itoa(i+1)+"]:1").Code, i)
	}
	assert.Equal(t, http.StatusTooManyRequests, h.authorize("[2001:db8:5:6::ffff]:1").Code)
	assert.Equal(t, http.StatusSeeOther, h.authorize("[2001:db8:5:7::1]:1").Code)
}

// TestAuthorizeRefusedStartGivesItsShareBackTH12: a start that stores no
// flow (a bad request) does not use up the address's share.
func TestAuthorizeRefusedStartGivesItsShareBackTH12(t *testing.T) {
	h := newHarness(t)
	withFlows(t, h, 10) // a share is 10 flows, the whole cap
	for range 20 {
		req := httptest.NewRequest(http.MethodGet, "/providers/tracker/authorize?client_id=evil", nil)
		req.RemoteAddr = "192.0.2.1:1"
		rec := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(rec, req)
		require.Equal(t, http.StatusBadRequest, rec.Code)
	}
	assert.Equal(t, http.StatusSeeOther, h.authorize("192.0.2.1:1").Code)
}
