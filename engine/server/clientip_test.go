package server_test

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
)

// withTrustedProxies sets server.trusted_proxies.
func withTrustedProxies(ranges ...string) option {
	return func(c *config.Config) {
		for _, r := range ranges {
			c.Server.TrustedProxies = append(c.Server.TrustedProxies, config.CIDR(netip.MustParsePrefix(r)))
		}
	}
}

// TestSpoofedForwardedForIsIgnoredTH50: without trusted proxies, and from
// a peer that is not one, X-Forwarded-For changes nothing: a guesser
// naming a new address in every request is still limited by its own.
func TestSpoofedForwardedForIsIgnoredTH50(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
	}{
		{"no trusted proxies", nil},
		{"peer is not a trusted proxy", []string{"10.0.0.0/8", "127.0.0.1/32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newOAuthHarness(t, 0, withTrustedProxies(tc.trusted...))
			code, _ := h.code("tracker")
			wrong := strings.Replace(notionForm(code), "client_secret=", "client_secret=x", 1)
			const attacker = "198.51.100.7:4000"
			for i := range 10 {
				rec := h.send(tokenReq{body: wrong, remote: attacker, header: map[string]string{
					"X-Forwarded-For": "203.0.113." + strconv.Itoa(i) + ", 10.0.0." + strconv.Itoa(i),
				}})
				require.Equal(t, http.StatusUnauthorized, rec.Code, i)
			}
			rec := h.send(tokenReq{body: notionForm(code), remote: attacker, header: map[string]string{"X-Forwarded-For": "203.0.113.200"}})
			assert.Equal(t, http.StatusTooManyRequests, rec.Code)
			assert.Contains(t, h.logs.String(), "client_ip=198.51.100.7", "the peer is logged, not the header")
			assert.NotContains(t, h.logs.String(), "client_ip=203.0.113.")
		})
	}
}

// TestTrustedProxyNamesTheClientTH50TH20: behind a trusted proxy every
// request comes from the proxy's address; the client's address from
// X-Forwarded-For is what the limit counts, so one guesser does not block
// everyone behind the proxy. A client's own X-Forwarded-For entries to
// the left of what the proxy appended do not help it.
func TestTrustedProxyNamesTheClientTH50TH20(t *testing.T) {
	h := newOAuthHarness(t, time.Hour, withTrustedProxies("127.0.0.1/32", "fd00::/8"))
	code, _ := h.code("tracker")
	wrong := strings.Replace(notionForm(code), "client_secret=", "client_secret=x", 1)
	const proxy = "127.0.0.1:40000"
	for i := range 10 {
		// The guesser sends its own header; the proxy appends the
		// guesser's real address.
		rec := h.send(tokenReq{body: wrong, remote: proxy, header: map[string]string{
			"X-Forwarded-For": "203.0.113." + strconv.Itoa(i) + ", 198.51.100.7",
		}})
		require.Equal(t, http.StatusUnauthorized, rec.Code, i)
	}
	rec := h.send(tokenReq{body: notionForm(code), remote: proxy, header: map[string]string{"X-Forwarded-For": "198.51.100.7"}})
	assert.Equal(t, http.StatusTooManyRequests, rec.Code, "the guesser is limited")

	// Notion, through the same proxy, is not; nor through two trusted
	// hops.
	tb := decodeToken(t, h.send(tokenReq{body: notionForm(code), remote: proxy, header: map[string]string{"X-Forwarded-For": "203.0.113.9"}}))
	decodeToken(t, h.send(tokenReq{body: refreshForm(tb.RefreshToken), remote: "[fd00::5]:1", header: map[string]string{"X-Forwarded-For": "203.0.113.9, 127.0.0.1"}}))
	assert.Contains(t, h.logs.String(), "client_ip=198.51.100.7")
}
