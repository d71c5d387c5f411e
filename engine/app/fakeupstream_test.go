package app_test

import (
	"net/http"
	"testing"

	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// The upstream OAuth app of flowConfig; the secret must reach no log.
const (
	upstreamClientID     = "upstream-app"
	upstreamClientSecret = "upstream-app-secret-0123456789"
)

// newFakeService starts the upstream service of flowConfig: an API that
// answers only its live access tokens and keys, with the signed-in user
// at /api/user, beside an OAuth server that insists on PKCE. It checks
// what a careful upstream checks, so a client mistake fails the test.
func newFakeService(t *testing.T) *upstreamtest.Server {
	t.Helper()
	up := upstreamtest.New(t,
		upstreamtest.WithClient(upstreamClientID, upstreamClientSecret),
		upstreamtest.WithBearerAuth(), upstreamtest.WithRequiredPKCE())
	up.Set("/api/user", upstreamtest.Response{Body: `{"id": 4242, "login": "octo-user", "name": "Octo User"}`})
	return up
}

// setItem makes item id answer body.
func setItem(up *upstreamtest.Server, id, body string) {
	up.Set("/api/items/"+id, upstreamtest.Response{Body: body})
}

// rateLimit makes every API call answer 401 with a Retry-After, as an
// upstream that limits unauthenticated-looking bursts does; off ends it.
func rateLimit(up *upstreamtest.Server, on bool) {
	if !on {
		up.Override(nil)
		return
	}
	up.Override(&upstreamtest.Response{
		Status: http.StatusUnauthorized, Body: `{"message":"Bad credentials"}`,
		Header: map[string]string{"Retry-After": "30"},
	})
}

// apiAuths returns the Authorization header of each API call.
func apiAuths(up *upstreamtest.Server) []string {
	var out []string
	for _, r := range up.Requests() {
		out = append(out, r.Header.Get("Authorization"))
	}
	return out
}

// lastAuth returns the Authorization header of the newest API call.
func lastAuth(up *upstreamtest.Server) string {
	r, _ := up.LastRequest()
	return r.Header.Get("Authorization")
}
